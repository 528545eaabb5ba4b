# SPDX-License-Identifier: GPL-2.0-only
"""Known gaps: behaviour of QEMU, kernels and kexec-tools we know today.

The gaps live in scenarios/known-gaps.yaml, a file people review. Each gap says:
for layers whose `component` version lies in `versions` (and that match the
optional `loader`, `layer` and `when` selectors), these `checks` take these
observed values. harness.matrix.classify judges a result against them.

Only load_gaps() reads a file.
"""

from __future__ import annotations

import os

from harness import yamldoc
from harness.errors import SeedchainError
from harness.matrix.classify import (STATUSES, Classification, Contradiction, Finding,  # noqa: F401
                                     classify, result_id)
from harness.matrix.gaps import COMPONENTS, LAYER_SELECTORS, Gap, Values  # noqa: F401 (re-exported)
from harness.matrix.versions import (VersionRange, component_version, describe_layer,  # noqa: F401
                                     in_ranges, kernel_version_text, layer_index, upstream_version)
from harness.scenario.model import CHECKS, LOADERS

MAX_BYTES = yamldoc.MAX_BYTES          # the same size rule as scenarios


class KnownGapsError(SeedchainError):
    """A known-gaps file that cannot be loaded or does not validate."""


# --- the gaps ----------------------------------------------------------------------------

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
                                     "parent-kernel (the layer that loaded this one), "
                                     "kexec-tools (in the layer that loaded this one) or "
                                     "bootloader (the one that started layer 1 from an ESP)."},
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
        "machine": {**_STRINGS, "description": "Only on this QEMU machine type (qemu.machine without its "
                                               "options, e.g. q35, pc-q35-7.1, microvm), one or a list."},
        "firmware": {**_STRINGS, "description": "Only with this firmware (qemu.firmware: seabios or "
                                                "ovmf; none or uefi on aarch64), one or a list."},
        "arch": {**_STRINGS, "description": "Only on this guest architecture (the scenario's arch: "
                                            "x86_64 or aarch64), one or a list."},
        "checks": _check_map("The checks this gap makes fail, with the value observed instead."),
        "reason": {"type": "string", "minLength": 1,
                   "description": "Why, in a sentence or two."},
        "source": {**_STRINGS, "description": "Upstream commits and files, measurements, docs/facts.md sections."},
        "informational": {"type": "boolean",
                          "description": "true: listed in reports but never matched."},
    },
}

# What yamldoc's messages say about this file.
_WORDS = yamldoc.Words(
    empty_hint="write [] for no known gaps, or a list of entries starting with '- id: ...'",
    patterns={GAP_SCHEMA["properties"]["id"]["pattern"]:
              "lower-case letters, digits, '.' and '-', starting with a letter or digit"})


def load_gaps(path: str | os.PathLike) -> tuple[Gap, ...]:
    """Read and validate a known-gaps file; KnownGapsError names file:line."""
    # the same size and encoding rules as scenarios
    return parse_gaps(yamldoc.read_text(path, _WORDS, KnownGapsError), str(path))


def parse_gaps(text: str, where: str = "<known gaps>") -> tuple[Gap, ...]:
    """Validate and convert the text of a known-gaps file."""
    root, data = yamldoc.parse(text, where, _WORDS, KnownGapsError)
    if not isinstance(data, list):
        raise KnownGapsError(f"top level: expected a list of gaps, got {yamldoc.show(data, root)}",
                             where=f"{where}:{root.start_mark.line + 1}",
                             hint="each gap is a list item: '- id: ...' with component, "
                                  "versions, checks, reason and source")
    yamldoc.validate(data, root, where, _VALIDATOR, _WORDS, KnownGapsError, explainer=_explain)
    gaps: list[Gap] = []
    first_line: dict[str, int] = {}
    for position, raw in enumerate(data):
        def fail(keys: list, what: str, hint: str | None = None, _p=position):
            line = yamldoc.line_at(root, [_p, *keys])
            raise KnownGapsError(f"{yamldoc.keypath([_p, *keys], data)}: {what}",
                                 where=f"{where}:{line}", hint=hint)

        line = yamldoc.line_at(root, [position], of_value=True)
        if raw["id"] in first_line:
            fail(["id"], f"duplicate id {raw['id']!r}", f"it is already used on line {first_line[raw['id']]}")
        first_line[raw["id"]] = line
        def ranges(keys: list, value) -> tuple[VersionRange, ...]:
            parsed, listed = [], isinstance(value, list)
            for number, text_range in enumerate(value if listed else [value]):
                try:
                    parsed.append(VersionRange.parse(text_range))
                except ValueError as e:
                    fail([*keys, number] if listed else keys, f"{text_range!r} is not a version range: {e}",
                         "write e.g. '>=7.2.1', '<6.0' or '>=2.0.20,<2.0.25' (operators >=, >, "
                         "<=, <, ==, !=; '*' for every version)")
            return tuple(parsed)

        versions = ranges(["versions"], raw["versions"])
        loader = raw.get("loader", [])
        loader = tuple(loader if isinstance(loader, list) else [loader])
        if raw["component"] in ("parent-kernel", "kexec-tools"):
            if raw.get("layer") == "first":
                fail(["layer"], f"layer 1 has no parent, so a {raw['component']} gap never "
                                "applies to it")
            if "qemu" in loader:
                fail(["loader"], f"QEMU starts layer 1, which has no parent, so a "
                                 f"{raw['component']} gap never applies to it")
        if raw["component"] == "bootloader" and raw.get("layer") != "first":
            fail(["layer"] if "layer" in raw else [], "a boot loader starts layer 1 only, so a bootloader "
                                                      "gap needs layer: first")
        informational = raw.get("informational", False)
        if not informational and not raw.get("checks"):
            fail([] if "checks" not in raw else ["checks"],
                 "missing required key 'checks'" if "checks" not in raw
                 else "must name at least one check",
                 "checks: the checks this gap makes fail, with the value observed instead "
                 "(or set informational: true)")
        gaps.append(Gap(
            id=raw["id"], component=raw["component"], versions=versions,
            checks=tuple((k, _values(v)) for k, v in (raw.get("checks") or {}).items()),
            when=tuple((k, _values(v)) for k, v in (raw.get("when") or {}).items()),
            reason=" ".join(raw["reason"].split()),
            source=tuple(raw["source"] if isinstance(raw["source"], list) else [raw["source"]]),
            loader=loader, layer=raw.get("layer"), informational=informational,
            where=f"{where}:{line}",
            also=tuple((component, ranges(["also", component], value))
                       for component, value in (raw.get("also") or {}).items()),
            cpu=_values(raw["cpu"]) if "cpu" in raw else (),
            firmware=_values(raw["firmware"]) if "firmware" in raw else (),
            machine=_values(raw["machine"]) if "machine" in raw else (),
            arch=_values(raw["arch"]) if "arch" in raw else ("x86_64",)))
    return tuple(gaps)


def _values(value) -> Values:
    return tuple(value) if isinstance(value, list) else (value,)


_VALIDATOR = yamldoc.Validator({"type": "array", "items": GAP_SCHEMA})


def _explain(error, data, root, words: yamldoc.Words = _WORDS) -> tuple[int, str, str | None]:
    """yamldoc.explain, with this file's words where they differ."""
    if error.validator == "pattern" and error.schema.get("pattern") in words.patterns:
        keys = list(error.absolute_path)        # the whole id, where explain would clip it
        return (yamldoc.line_at(root, keys),
                f"{yamldoc.keypath(keys, data)}: {error.instance!r} is not valid; allowed: "
                f"{words.patterns[error.schema['pattern']]}", None)
    if error.validator == "anyOf":
        # A wrong item inside a list that is allowed (source: [a, 3]): name the item.
        deeper = [e for e in error.context if e.relative_path]
        if deeper:
            return _explain(max(deeper, key=lambda e: len(e.relative_path)), data, root, words)
        keys = list(error.absolute_path)
        node = yamldoc.locate(root, keys)[1]
        if any(e.validator in ("minItems", "minLength") for e in error.context):
            return (yamldoc.line_at(root, keys), f"{yamldoc.keypath(keys, data)}: must not be empty",
                    yamldoc.uncap(error.schema.get("description", "")) or None)
        if not isinstance(error.instance, (str, list, dict)) and error.instance is not None and any(
                "string" in str(s.get("type")) for s in error.schema.get("anyOf", [])):
            written = yamldoc.clip(getattr(node, "value", str(error.instance)))
            return (yamldoc.line_at(root, keys),
                    f"{yamldoc.keypath(keys, data)}: expected text, got "
                    f"{yamldoc.show(error.instance, node)}",
                    f"YAML does not read {written} as text; put it in quotes: '{written}'")
        description = error.schema.get("description")
        if not description and keys and isinstance(keys[-1], str):
            # the anyOf of a check value sits inside the check map's properties
            description = _CHECK_VALUE["description"]
        node = yamldoc.locate(root, keys)[1]
        return (yamldoc.line_at(root, keys),
                f"{yamldoc.keypath(keys, data)}: {yamldoc.show(error.instance, node)} "
                f"is not allowed here", yamldoc.uncap(description or "") or None)
    return yamldoc.explain(error, data, root, words)
