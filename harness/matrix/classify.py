# SPDX-License-Identifier: GPL-2.0-only
"""Classification of a result (RunResult.to_json()) against the known gaps:

  error            the harness failed (the result's `error` is set)
  fail             a failing (layer, check) that no gap explains
  unexpected-pass  every failure is explained, but a gap that matches a layer did
                   not happen there (observed another value): news, the gap may be
                   closed in that version
  known-gap        failed, and every failing (layer, check) is explained by a gap
  pass             passed, and no matching gap was contradicted

A failing check that only follows from another observation is explained along
with it: nothing can be zeroed, credited or exposed when no seed was received,
nothing is checked in a layer that did not boot, and a layer's `passed_on` is
its child's `received`. Pure functions over plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.matrix.gaps import Gap, Values
from harness.matrix.versions import component_version, describe_layer, layer_index
from harness.scenario.model import CHECKS
STATUSES = ("pass", "known-gap", "unexpected-pass", "fail", "error")

# Checks whose value follows from `received` (None or False when nothing came).
_NEEDS_SEED = ("fresh", "zeroed_sysfs", "zeroed_ram", "credited", "exposed")



@dataclass(frozen=True)
class Finding:
    """A failing (layer, check), with the gaps that explain it (none: unexplained)."""

    layer: int
    check: str
    expected: bool | None
    observed: bool | None
    components: str                          # describe_layer()
    gaps: tuple[str, ...] = ()
    root: tuple[int, str] | None = None      # (layer, check) this one only follows from

    @property
    def explained(self) -> bool:
        return bool(self.gaps)

    @property
    def via(self) -> str | None:
        return None if self.root is None else f"layer {self.root[0]} {self.root[1]}"

    def text(self) -> str:
        line = (f"{self.components}: {self.check} expected {_word(self.expected)}, "
                f"observed {_word(self.observed)}")
        if self.gaps:
            line += f" (known gap: {', '.join(self.gaps)}"
            line += f", through {self.via})" if self.root else ")"
        elif self.root:
            line += f" (follows from {self.via})"
        return line

    def to_json(self) -> dict:
        return {"layer": self.layer, "check": self.check, "expected": self.expected,
                "observed": self.observed, "components": self.components,
                "gaps": list(self.gaps), "via": self.via, "text": self.text()}


@dataclass(frozen=True)
class Contradiction:
    """A gap that matched a layer but did not happen there."""

    gap: str
    layer: int
    check: str
    predicted: Values
    observed: bool | None
    component: str                   # e.g. "qemu 11.1.3 (Debian ...)"
    versions: str                    # the gap's range

    def text(self) -> str:
        said = " or ".join(_word(v) for v in self.predicted)
        return (f"UNEXPECTED: known gap {self.gap} ({self.component}, in {self.versions}) says "
                f"layer {self.layer} {self.check} is {said}, but it was {_word(self.observed)}")

    def to_json(self) -> dict:
        return {"gap": self.gap, "layer": self.layer, "check": self.check,
                "predicted": list(self.predicted), "observed": self.observed,
                "component": self.component, "versions": self.versions, "text": self.text()}


@dataclass(frozen=True)
class Classification:
    id: str
    status: str                                           # one of STATUSES
    explained: tuple[Finding, ...] = ()
    unexplained: tuple[Finding, ...] = ()
    unexpected: tuple[Contradiction, ...] = ()
    matched: tuple[tuple[int, tuple[str, ...]], ...] = ()  # layer -> gaps that applied
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def gaps(self) -> tuple[str, ...]:
        """Ids of the gaps that explain a failure here, in order."""
        seen: dict[str, None] = {}
        for finding in self.explained:
            seen.update(dict.fromkeys(finding.gaps))
        return tuple(seen)

    def headlines(self) -> list[tuple[Finding, int]]:
        """The unexplained findings that do not just follow from another unexplained
        one, each with how many follow from it."""
        failing = {(f.layer, f.check) for f in self.unexplained}
        followers: dict[tuple[int, str], int] = {}
        for f in self.unexplained:
            if f.root in failing:
                followers[f.root] = followers.get(f.root, 0) + 1
        return [(f, followers.get((f.layer, f.check), 0)) for f in self.unexplained
                if f.root not in failing]

    def layer_findings(self, layer: int) -> tuple[list[Finding], list[Finding], list[Contradiction]]:
        """(explained, unexplained, contradictions) of one layer."""
        return ([f for f in self.explained if f.layer == layer],
                [f for f in self.unexplained if f.layer == layer],
                [c for c in self.unexpected if c.layer == layer])

    def lines(self) -> list[str]:
        """What a person needs to read, loudest first."""
        out = []
        if self.error:
            out.append(f"harness error: {self.error}")
        out += [f"UNEXPLAINED: {f.text()}" + (f" (and {n} checks that follow from it)" if n else "")
                for f, n in self.headlines()]
        out += list(self.notes)
        out += [c.text() for c in self.unexpected]
        out += [f.text() for f in self.explained]
        return out

    def summary(self) -> str:
        head = f"{self.id}: {self.status}"
        if self.status == "known-gap":
            head += f" ({', '.join(self.gaps)})"
        elif self.status == "unexpected-pass":
            head += f" (gap no longer seen: {', '.join(dict.fromkeys(c.gap for c in self.unexpected))})"
        return head

    def to_json(self) -> dict:
        return {"id": self.id, "status": self.status, "error": self.error,
                "gaps": list(self.gaps),
                "explained": [f.to_json() for f in self.explained],
                "unexplained": [f.to_json() for f in self.unexplained],
                "headlines": [{**f.to_json(), "followers": n} for f, n in self.headlines()],
                "unexpected": [c.to_json() for c in self.unexpected],
                "matched": {str(layer): list(ids) for layer, ids in self.matched},
                "notes": list(self.notes), "summary": self.summary()}


def result_id(result: dict) -> str:
    """The cell id; the scenario name for a result from outside a matrix."""
    return str(result.get("id") or result.get("scenario") or "?")


def _outcome(layer: dict, check: str) -> str:
    outcome = layer.get("outcome")
    if isinstance(outcome, dict) and check in outcome:
        return outcome[check]
    expected = (layer.get("expect") or {}).get(check)
    if expected is None:
        return "-"
    return "pass" if layer.get(check) == expected else "fail"


def _root(layers: list[dict], position: int, check: str) -> tuple[int, str] | None:
    """The observation a failing check follows from, if it only follows from one."""
    layer = layers[position]
    if check == "booted" and position and layers[position - 1].get("booted") is False:
        return position - 1, "booted"           # never reached: its parent did not boot
    if check != "booted" and layer.get("booted") is False:
        return position, "booted"
    if check in _NEEDS_SEED and layer.get("received") is False:
        return position, "received"
    if check == "passed_on" and position + 1 < len(layers):
        child = layers[position + 1]
        return position + 1, "booted" if child.get("booted") is False else "received"
    return None


def classify(result: dict, gaps: Sequence[Gap]) -> Classification:
    """Classify one result against the known gaps (see the module's docstring)."""
    cid = result_id(result)
    layers = [layer for layer in (result.get("layers") or []) if isinstance(layer, dict)]
    applicable = [[g for g in gaps if g.applies({**result, "layers": layers}, i)]
                  for i in range(len(layers))]
    matched = tuple((layer_index(layer, i), tuple(g.id for g in applicable[i]))
                    for i, layer in enumerate(layers) if applicable[i])

    def explaining(position: int, check: str) -> tuple[str, ...]:
        observed = layers[position].get(check)
        return tuple(g.id for g in applicable[position]
                     if observed in g.predicts.get(check, ()))

    explained: list[Finding] = []
    unexplained: list[Finding] = []
    for i, layer in enumerate(layers):
        for check in CHECKS:
            if _outcome(layer, check) != "fail":
                continue
            found = _root(layers, i, check)
            root = None if found is None else (layer_index(layers[found[0]], found[0]), found[1])
            ids = explaining(i, check)
            if ids:
                root = None
            else:
                # Follow the chain of causes (a check <- its layer's boot <- its parent's
                # boot ...) to the first one a gap explains.
                hop, steps = found, 0
                while hop is not None and not ids and steps < len(layers) * len(CHECKS):
                    ids = explaining(*hop)
                    hop, steps = _root(layers, *hop), steps + 1
            finding = Finding(layer=layer_index(layer, i), check=check,
                              expected=(layer.get("expect") or {}).get(check),
                              observed=layer.get(check),
                              components=describe_layer({**result, "layers": layers}, i),
                              gaps=ids, root=root)
            (explained if ids else unexplained).append(finding)

    unexpected = []
    for i, layer in enumerate(layers):
        for gap in applicable[i]:
            text, _ = component_version({**result, "layers": layers}, i, gap.component)
            for check, values in gap.checks:
                observed = layer.get(check)
                if observed is None or observed in values:
                    continue            # None: not measured or does not apply here
                unexpected.append(Contradiction(
                    gap=gap.id, layer=layer_index(layer, i), check=check, predicted=values,
                    observed=observed, component=f"{gap.component} {text}",
                    versions=gap.versions_text))

    notes = []
    error = result.get("error")
    if not error and result.get("passed") is False and not explained and not unexplained:
        notes.append("the result says it failed, but no check failed")
    if not error and not layers:
        notes.append("the result has no layers")

    if error:
        status = "error"
    elif unexplained or notes:
        status = "fail"
    elif unexpected:
        status = "unexpected-pass"
    elif explained:
        status = "known-gap"
    else:
        status = "pass"
    return Classification(id=cid, status=status, explained=tuple(explained),
                          unexplained=tuple(unexplained), unexpected=tuple(unexpected),
                          matched=matched, notes=tuple(notes),
                          error=str(error) if error else None)


def _word(value) -> str:
    return {True: "yes", False: "no", None: "n/a"}.get(value, str(value))
