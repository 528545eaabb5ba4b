"""Known gaps: behaviour of QEMU, kernels and kexec-tools we know today, and the
classification of a result (RunResult.to_json()) against them.

The gaps live in scenarios/known-gaps.yaml, a file people review. Each gap says:
for layers whose `component` version lies in `versions` (and that match the
optional `loader`, `layer` and `when` selectors), these `checks` take these
observed values. A matrix cell is then classified:

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
its child's `received`.

Pure functions over plain data; only load_gaps() reads a file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Sequence

from jsonschema.exceptions import relevance

from harness.scenario import load as _scenario
from harness.errors import ScenarioError, SeedchainError
from harness.scenario.model import CHECKS, LOADERS

COMPONENTS = ("qemu", "kernel", "parent-kernel", "kexec-tools")
STATUSES = ("pass", "known-gap", "unexpected-pass", "fail", "error")
LAYER_SELECTORS = ("first",)
MAX_BYTES = 256 * 1024

# Checks whose value follows from `received` (None or False when nothing came).
_NEEDS_SEED = ("zeroed_sysfs", "zeroed_ram", "credited", "exposed")


class KnownGapsError(SeedchainError):
    """A known-gaps file that cannot be loaded or does not validate."""


# --- versions ----------------------------------------------------------------------------

_EPOCH = re.compile(r"^\d+:")
_NUMBERS = re.compile(r"v?(\d+(?:\.\d+)*)")
_OPS = (">=", "<=", "==", "!=", ">", "<")
_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)?\s*(\d+(?:\.\d+)*)\s*")


def upstream_version(text: str | None) -> tuple[int, ...] | None:
    """The upstream version as numbers, or None when there is none to read.

    Debian's epoch (`1:`) and revision (`-3+deb12u3`) are dropped, and so is
    anything after the leading dotted numbers: '1:2.0.25-3+deb12u3' -> (2, 0, 25),
    '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)' -> (7, 2, 22), '6.1.0-56-amd64'
    -> (6, 1, 0), '7.2.13+deb14-amd64' -> (7, 2, 13).
    """
    if not text:
        return None
    match = _NUMBERS.match(_EPOCH.sub("", text.strip()))
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """-1, 0 or 1; missing parts count as 0, so 6.0 == 6.0.0."""
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


_HOLDS = {">=": lambda c: c >= 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0,
          "<": lambda c: c < 0, "==": lambda c: c == 0, "!=": lambda c: c != 0}


@dataclass(frozen=True)
class VersionRange:
    """Comma-separated clauses that must all hold, e.g. '>=2.0.20,<2.0.25';
    '*' is every version. A version without an operator means '=='."""

    text: str
    clauses: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "VersionRange":
        """Raises ValueError saying what is wrong."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty version range")
        if text.strip() == "*":
            return cls("*")
        clauses = []
        for part in text.split(","):
            match = _CLAUSE.fullmatch(part)
            if not match:
                raise ValueError(f"{part.strip()!r} is not a version clause")
            op, numbers = match.group(1) or "==", match.group(2)
            clauses.append((op, tuple(int(n) for n in numbers.split("."))))
        result = cls(text.strip(), tuple(clauses))
        if result._empty():
            raise ValueError("no version satisfies all its clauses")
        return result

    def __contains__(self, version: tuple[int, ...] | str | None) -> bool:
        if isinstance(version, str):
            version = upstream_version(version)
        if version is None:
            return False
        return all(_HOLDS[op](_compare(version, bound)) for op, bound in self.clauses)

    def _empty(self) -> bool:
        # The largest lower bound against the smallest upper bound; == pins both.
        low = high = None                    # (version, inclusive)
        for op, bound in self.clauses:
            if op in (">=", ">", "=="):
                inclusive = op != ">"
                if low is None or _compare(bound, low[0]) > 0 or (
                        _compare(bound, low[0]) == 0 and not inclusive):
                    low = (bound, inclusive)
            if op in ("<=", "<", "=="):
                inclusive = op != "<"
                if high is None or _compare(bound, high[0]) < 0 or (
                        _compare(bound, high[0]) == 0 and not inclusive):
                    high = (bound, inclusive)
        if low is None or high is None:
            return False
        order = _compare(low[0], high[0])
        return order > 0 or (order == 0 and not (low[1] and high[1]))

    def __str__(self) -> str:
        return self.text


def in_ranges(version: tuple[int, ...] | str | None, ranges: Sequence[VersionRange]) -> bool:
    """True when the version lies in any of the ranges."""
    return any(version in r for r in ranges)


# --- the gaps ----------------------------------------------------------------------------

Values = tuple  # of True / False / None: the observed values a check may take


@dataclass(frozen=True)
class Gap:
    id: str
    component: str                                  # one of COMPONENTS
    versions: tuple[VersionRange, ...]              # any of them
    checks: tuple[tuple[str, Values], ...]          # check -> values it takes instead
    reason: str
    source: tuple[str, ...]
    loader: tuple[str, ...] = ()                    # () = any loader
    layer: str | None = None                        # "first": layer 1 only
    when: tuple[tuple[str, Values], ...] = ()       # applies only with these observations
    informational: bool = False                     # shown, never matched
    where: str = ""                                 # file:line, for messages
    # Further conditions, all of which must hold too: another component's range,
    # and the QEMU CPU model (some faults need a combination to show).
    also: tuple[tuple[str, tuple[VersionRange, ...]], ...] = ()
    cpu: tuple[str, ...] = ()
    firmware: tuple[str, ...] = ()                  # () = any; results before it are seabios

    @property
    def predicts(self) -> dict[str, Values]:
        return dict(self.checks)

    @property
    def versions_text(self) -> str:
        return " or ".join(str(r) for r in self.versions)

    def applies(self, result: dict, position: int) -> bool:
        """Does this gap hold for result["layers"][position]?"""
        if self.informational:
            return False
        layers = result.get("layers") or []
        layer = layers[position]
        if self.layer == "first" and _index(layer, position) != 1:
            return False
        if self.loader and layer.get("loader") not in self.loader:
            return False
        _, version = component_version(result, position, self.component)
        if not in_ranges(version, self.versions):
            return False
        for component, ranges in self.also:
            if not in_ranges(component_version(result, position, component)[1], ranges):
                return False
        if self.cpu and (result.get("qemu") or {}).get("cpu") not in self.cpu:
            return False
        if self.firmware and (result.get("qemu") or {}).get("firmware", "seabios") not in self.firmware:
            return False
        return all(layer.get(name) in values for name, values in self.when)

    def to_json(self) -> dict:
        return {"id": self.id, "component": self.component, "versions": self.versions_text,
                "loader": list(self.loader), "layer": self.layer,
                "when": {k: list(v) for k, v in self.when},
                "also": {c: " or ".join(str(r) for r in rs) for c, rs in self.also},
                "cpu": list(self.cpu),
                "checks": {k: list(v) for k, v in self.checks},
                "reason": self.reason, "source": list(self.source),
                "informational": self.informational, "where": self.where}


def _index(layer: dict, position: int) -> int:
    index = layer.get("index")
    return index if isinstance(index, int) else position + 1


def kernel_version_text(layer: dict) -> str:
    """The version to compare a layer's kernel by: the Debian package version, else
    `uname -r`, else the series of a 'debian:SUITE/SERIES' spec; '' when unknown."""
    for text in (layer.get("kernel_version"), layer.get("kernel")):
        if text and upstream_version(text) is not None:
            return text
    spec = layer.get("kernel_spec") or ""
    if spec.startswith("debian:") and "/" in spec:
        series = spec.rsplit("/", 1)[1]
        if upstream_version(series) is not None:
            return series
    return ""


def component_version(result: dict, position: int, component: str) -> tuple[str, tuple[int, ...] | None]:
    """(version as written, upstream numbers) of a component, seen from a layer.

    qemu: the QEMU that ran the chain; kernel: the layer's kernel; parent-kernel:
    the kernel of the layer before (none for layer 1); kexec-tools: the kexec-tools
    of the layer before, which loaded this one (none for layer 1)."""
    layers = result.get("layers") or []
    if component == "qemu":
        text = (result.get("qemu") or {}).get("version") or ""
    elif component == "kernel":
        text = kernel_version_text(layers[position])
    elif position == 0:
        text = ""
    elif component == "parent-kernel":
        text = kernel_version_text(layers[position - 1])
    elif component == "kexec-tools":
        text = layers[position - 1].get("kexec_tools") or ""
    else:
        raise ValueError(f"unknown component {component!r}")
    return text, upstream_version(text)


def describe_layer(result: dict, position: int) -> str:
    """Layer, components and versions, e.g. 'layer 2: kernel 5.10.262-1 (5.10.0-46-amd64),
    loaded by kexec_file_load from layer 1 (kernel 6.1.192-2, kexec-tools 1:2.0.25-3+deb12u3)'."""
    layers = result.get("layers") or []
    layer = layers[position]
    index = _index(layer, position)
    parts = [f"layer {index}: kernel {_kernel_words(layer)}"]
    loader = layer.get("loader") or "?"
    if position == 0:
        qemu = (result.get("qemu") or {}).get("version") or "?"
        parts.append(f"booted by QEMU {qemu}")
    else:
        parent = layers[position - 1]
        parts.append(f"loaded by {loader} from layer {_index(parent, position - 1)} "
                     f"(kernel {_kernel_words(parent)}, "
                     f"kexec-tools {parent.get('kexec_tools') or '?'})")
    return ", ".join(parts)


def _kernel_words(layer: dict) -> str:
    package, release = layer.get("kernel_version") or "", layer.get("kernel") or ""
    if package and release:
        return f"{package} ({release})"
    return package or release or layer.get("kernel_spec") or "?"


# --- classification ----------------------------------------------------------------------

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
    matched = tuple((_index(layer, i), tuple(g.id for g in applicable[i]))
                    for i, layer in enumerate(layers) if applicable[i])

    def explaining(position: int, check: str) -> tuple[str, ...]:
        observed = layers[position].get(check)
        return tuple(g.id for g in applicable[position]
                     if observed in g.predicts.get(check, ()))

    explained, unexplained = [], []
    for i, layer in enumerate(layers):
        for check in CHECKS:
            if _outcome(layer, check) != "fail":
                continue
            found = _root(layers, i, check)
            root = None if found is None else (_index(layers[found[0]], found[0]), found[1])
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
            finding = Finding(layer=_index(layer, i), check=check,
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
                    gap=gap.id, layer=_index(layer, i), check=check, predicted=values,
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


# --- loading -----------------------------------------------------------------------------

_CHECK_VALUE = {
    "description": "The value the check takes: true, false or null, or a list of them.",
    "anyOf": [{"type": ["boolean", "null"]},
              {"type": "array", "minItems": 1, "items": {"type": ["boolean", "null"]}}],
}


def _check_map(description: str) -> dict:
    return {"type": "object", "description": description, "additionalProperties": False,
            "properties": {name: _CHECK_VALUE for name in CHECKS}}


_STRINGS = {"anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "minItems": 1,
                       "items": {"type": "string", "minLength": 1}}]}

GAP_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "component", "versions", "reason", "source"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.-]*$", "maxLength": 80,
               "description": "A short name shown in reports, e.g. kernel-ignores-seed."},
        "component": {"enum": list(COMPONENTS),
                      "description": "Whose version decides: qemu, kernel (this layer's), "
                                     "parent-kernel (the layer that loaded this one) or "
                                     "kexec-tools (in the layer that loaded this one)."},
        "versions": {**_STRINGS,
                     "description": "A version range such as '>=7.2.1', '<6.0' or "
                                    "'>=2.0.20,<2.0.25', or a list of them (any matches)."},
        "loader": {"anyOf": [{"enum": ["qemu", *LOADERS]},
                             {"type": "array", "minItems": 1,
                              "items": {"enum": ["qemu", *LOADERS]}}],
                   "description": "Only layers started this way (one or a list)."},
        "layer": {"enum": list(LAYER_SELECTORS),
                  "description": "'first': only layer 1, the one QEMU boots."},
        "when": _check_map("Only when the layer observed these values, e.g. {received: true}."),
        "also": {"type": "object", "minProperties": 1, "additionalProperties": False,
                 "properties": {c: {**_STRINGS, "description": f"{c} must be in this range too"}
                                for c in COMPONENTS},
                 "description": "Other components whose versions must match too, e.g. "
                                "{kernel: '>=6.12'}."},
        "cpu": {**_STRINGS, "description": "Only with this QEMU CPU model (qemu.cpu), one or a list."},
        "firmware": {**_STRINGS, "description": "Only with this firmware (qemu.firmware: seabios or "
                                                "ovmf), one or a list."},
        "checks": _check_map("The checks this gap makes fail, with the value observed instead."),
        "reason": {"type": "string", "minLength": 1,
                   "description": "Why, in a sentence or two."},
        "source": {**_STRINGS, "description": "Commit ids, FACTS.md sections, measurements."},
        "informational": {"type": "boolean",
                          "description": "true: listed in reports but never matched."},
    },
}

_PATTERN_WORDS = {GAP_SCHEMA["properties"]["id"]["pattern"]:
                  "lower-case letters, digits, '.' and '-', starting with a letter or digit"}


def load_gaps(path: str | os.PathLike) -> tuple[Gap, ...]:
    """Read and validate a known-gaps file; KnownGapsError names file:line."""
    try:
        text = _scenario.read_text(path)     # the same size and encoding rules as scenarios
    except ScenarioError as e:
        raise KnownGapsError(e.what, where=e.where, hint=e.hint) from None
    return parse_gaps(text, str(path))


def parse_gaps(text: str, where: str = "<known gaps>") -> tuple[Gap, ...]:
    """Validate and convert the text of a known-gaps file."""
    try:
        root, data = _scenario._parse(text, where)
    except ScenarioError as e:
        hint = e.hint
        if e.what == "the file is empty":
            hint = "write [] for no known gaps, or a list of entries starting with '- id: ...'"
        raise KnownGapsError(e.what.replace("a scenario is a short file", "this is too long"),
                             where=e.where, hint=hint) from None
    if not isinstance(data, list):
        raise KnownGapsError(f"top level: expected a list of gaps, got {_scenario._show(data, root)}",
                             where=f"{where}:{root.start_mark.line + 1}",
                             hint="each gap is a list item: '- id: ...' with component, "
                                  "versions, checks, reason and source")
    errors = sorted(_VALIDATOR.iter_errors(data), key=relevance, reverse=True)
    if errors:
        _, line, what, hint = min(
            ((e.validator == "required", *_explain(e, data, root)) for e in errors),
            key=lambda m: m[:2])
        raise KnownGapsError(what, where=f"{where}:{line}", hint=hint)
    gaps, first_line = [], {}
    for position, raw in enumerate(data):
        def fail(keys: list, what: str, hint: str | None = None, _p=position):
            line = _scenario._line(root, [_p, *keys])
            raise KnownGapsError(f"{_scenario._keypath([_p, *keys], data)}: {what}",
                                 where=f"{where}:{line}", hint=hint)

        line = _scenario._line(root, [position], of_value=True)
        if raw["id"] in first_line:
            fail(["id"], f"duplicate id {raw['id']!r}", f"it is already used on line {first_line[raw['id']]}")
        first_line[raw["id"]] = line
        versions = []
        listed = isinstance(raw["versions"], list)
        for number, text_range in enumerate(raw["versions"] if listed else [raw["versions"]]):
            try:
                versions.append(VersionRange.parse(text_range))
            except ValueError as e:
                fail(["versions", number] if listed else ["versions"],
                     f"{text_range!r} is not a version range: {e}",
                     "write e.g. '>=7.2.1', '<6.0' or '>=2.0.20,<2.0.25' (operators >=, >, "
                     "<=, <, ==, !=; '*' for every version)")
        loader = raw.get("loader", [])
        loader = tuple(loader if isinstance(loader, list) else [loader])
        if raw["component"] in ("parent-kernel", "kexec-tools"):
            if raw.get("layer") == "first":
                fail(["layer"], f"layer 1 has no parent, so a {raw['component']} gap never "
                                "applies to it")
            if "qemu" in loader:
                fail(["loader"], f"QEMU starts layer 1, which has no parent, so a "
                                 f"{raw['component']} gap never applies to it")
        informational = raw.get("informational", False)
        if not informational and not raw.get("checks"):
            fail([] if "checks" not in raw else ["checks"],
                 "missing required key 'checks'" if "checks" not in raw
                 else "must name at least one check",
                 "checks: the checks this gap makes fail, with the value observed instead "
                 "(or set informational: true)")
        gaps.append(Gap(
            id=raw["id"], component=raw["component"], versions=tuple(versions),
            checks=tuple((k, _values(v)) for k, v in (raw.get("checks") or {}).items()),
            when=tuple((k, _values(v)) for k, v in (raw.get("when") or {}).items()),
            reason=" ".join(raw["reason"].split()),
            source=tuple(raw["source"] if isinstance(raw["source"], list) else [raw["source"]]),
            loader=loader, layer=raw.get("layer"), informational=informational,
            where=f"{where}:{line}",
            also=tuple((component, tuple(VersionRange.parse(r) for r in _values(ranges)))
                       for component, ranges in (raw.get("also") or {}).items()),
            cpu=_values(raw["cpu"]) if "cpu" in raw else (),
            firmware=_values(raw["firmware"]) if "firmware" in raw else ()))
    return tuple(gaps)


def _values(value) -> Values:
    return tuple(value) if isinstance(value, list) else (value,)


_VALIDATOR = _scenario._Validator({"type": "array", "items": GAP_SCHEMA})


def _explain(error, data, root) -> tuple[int, str, str | None]:
    """scenario._explain, with this file's words where they differ."""
    if error.validator == "pattern" and error.schema.get("pattern") in _PATTERN_WORDS:
        keys = list(error.absolute_path)
        return (_scenario._line(root, keys),
                f"{_scenario._keypath(keys, data)}: {error.instance!r} is not valid; allowed: "
                f"{_PATTERN_WORDS[error.schema['pattern']]}", None)
    if error.validator == "anyOf":
        # A wrong item inside a list that is allowed (source: [a, 3]): name the item.
        deeper = [e for e in error.context if e.relative_path]
        if deeper:
            return _explain(max(deeper, key=lambda e: len(e.relative_path)), data, root)
        keys = list(error.absolute_path)
        node = _scenario._locate(root, keys)[1]
        if any(e.validator in ("minItems", "minLength") for e in error.context):
            return (_scenario._line(root, keys), f"{_scenario._keypath(keys, data)}: must not be empty",
                    _scenario._uncap(error.schema.get("description", "")) or None)
        if not isinstance(error.instance, (str, list, dict)) and error.instance is not None and any(
                "string" in str(s.get("type")) for s in error.schema.get("anyOf", [])):
            written = _scenario._clip(getattr(node, "value", str(error.instance)))
            return (_scenario._line(root, keys),
                    f"{_scenario._keypath(keys, data)}: expected text, got "
                    f"{_scenario._show(error.instance, node)}",
                    f"YAML does not read {written} as text; put it in quotes: '{written}'")
        description = error.schema.get("description")
        if not description and keys and isinstance(keys[-1], str):
            # the anyOf of a check value sits inside the check map's properties
            description = _CHECK_VALUE["description"]
        node = _scenario._locate(root, keys)[1]
        return (_scenario._line(root, keys),
                f"{_scenario._keypath(keys, data)}: {_scenario._show(error.instance, node)} "
                f"is not allowed here", _scenario._uncap(description or "") or None)
    return _scenario._explain(error, data, root)
