# SPDX-License-Identifier: GPL-2.0-only
"""The version matrix: scenarios x QEMU builds x kernels x userlands, from scenarios/matrix.yaml.

Each cell is an ordinary Scenario with some fields swapped and a `cell` naming the
values, so it runs through the same runner and checks as any scenario.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.scenario import qemu_options
from harness.scenario.model import FIRMWARES, Scenario, named_kernel
from harness.scenario.load import discover, load_scenario
from harness.scenario.schema import CPU, DEBIAN_KERNEL, KERNEL_PATH, MACHINE, ONE_LINE, PATTERN_WORDS, USERLAND
from harness.yamldoc import Words, line_of, load_document

# What each axis changes in a scenario.
AXES = {
    "qemu": "the QEMU build (qemu.build): system, debian:SUITE or a path",
    "machine": "the machine type (qemu.machine)",
    "cpu": "the CPU model (qemu.cpu)",
    "firmware": "the firmware (qemu.firmware)",
    "kernel": "every layer's kernel",
    "child_kernel": "the kernel of every layer after the first",
    "userland": "every layer's busybox and kexec-tools (debian:SUITE)",
}

def _value(value_schema: Any) -> dict[str, Any]:
    """An axis's value: a string of value_schema, or {value, label} (if/then rather than
    oneOf, so that a refused value is named by what its pattern allows)."""
    return {
        "type": ["string", "object"],
        "if": {"type": "string"},
        "then": {"minLength": 1, **value_schema},
        "else": {"additionalProperties": False, "required": ["value"],
                 "properties": {"value": {"type": "string", "minLength": 1, "description": "The axis's value.",
                                          **value_schema},
                                "label": {"type": "string", "pattern": r"^[A-Za-z0-9._+-]+$"}}},
        "description": "A value, or {value, label}: the label names the cell in test ids.",
    }


# What each axis's values may be: what the scenario's own key allows (the same patterns,
# so a matrix file cannot give what a scenario file may not).
_KERNEL = {"if": {"pattern": "^debian(-source)?:"}, "then": {"pattern": DEBIAN_KERNEL},
           "else": {"pattern": KERNEL_PATH}}
_AXIS_VALUES = {"qemu": {"pattern": ONE_LINE}, "machine": {"pattern": MACHINE}, "cpu": {"pattern": CPU},
                "firmware": {"enum": list(FIRMWARES)}, "kernel": _KERNEL, "child_kernel": _KERNEL,
                "userland": {"pattern": USERLAND}}
assert set(_AXIS_VALUES) == set(AXES)

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "seedchain matrix",
    "type": "object",
    "additionalProperties": False,
    "required": ["matrices"],
    "properties": {"matrices": {
        "type": "object",
        "description": "The matrices by name, each a list of groups.",
        "minProperties": 1,
        "propertyNames": {"pattern": r"^[a-z0-9][a-z0-9-]*$"},
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "description": {"type": "string"},
                "groups": {"type": "array", "minItems": 1,
                           "description": "Groups of scenarios, each run over its axes.", "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["scenarios", "axes"],
                    "properties": {
                        "scenarios": {"type": "array", "minItems": 1,
                                      "description": "Names of scenarios in the matrix file's folder.",
                                      "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$"}},
                        "axes": {"type": "object", "minProperties": 1, "additionalProperties": False,
                                 "description": f"What the cells vary: {', '.join(AXES)}.",
                                 "properties": {axis: {"type": "array", "minItems": 1, "maxItems": 32,
                                                       "items": _value(_AXIS_VALUES[axis]),
                                                       "description": words}
                                                for axis, words in AXES.items()}},
                    },
                }},
            },
        },
    }},
}

MAX_CELLS = 2000
_WORDS = Words(patterns=PATTERN_WORDS)     # scenario and matrix names follow the same rule


def default_label(axis: str, value: str) -> str:
    """debian:trixie -> trixie, debian:sid/7.2 -> 7.2, a path -> its file name."""
    if value.startswith("debian:"):
        return value.split("/", 1)[1] if "/" in value else value.split(":", 1)[1]
    return Path(value).name if "/" in value else value


def apply(scenario: Scenario, values: dict[str, str], labels: dict[str, str]) -> Scenario:
    qemu = scenario.qemu
    qemu_fields: dict[str, str] = {"qemu": "build", "machine": "machine", "cpu": "cpu", "firmware": "firmware"}
    qemu_changes: dict[str, Any] = {qemu_fields[a]: v for a, v in values.items() if a in qemu_fields}
    qemu = replace(qemu, **qemu_changes)
    layers = []
    for layer in scenario.layers:
        changes: dict[str, Any] = {}
        if "kernel" in values:
            changes["kernel"] = values["kernel"]
        if "child_kernel" in values and layer.index > 1:
            changes["kernel"] = values["child_kernel"]
        if "userland" in values:
            changes["userland"] = values["userland"]
        layers.append(replace(layer, **changes))
    # Every cell searches RAM for lingering seeds (too slow to be on for every scenario).
    capture = replace(scenario.capture, ram_search=scenario.capture.seed_in_flight)
    return replace(scenario, qemu=qemu, layers=tuple(layers), capture=capture,
                   cell=tuple((axis, labels[axis]) for axis in values),
                   cell_values=tuple(values.items()))


def expand(matrix_file: Path, name: str) -> list[Scenario]:
    """Every cell of matrix `name`, in file order, ids unique."""
    data, root = load_document(matrix_file, SCHEMA, _WORDS)
    assert isinstance(data, dict)       # the schema's top level is an object
    matrices = data["matrices"]
    if name not in matrices:
        raise ScenarioError(f"no matrix named {name!r}", where=f"{matrix_file}:{line_of(root, ['matrices'])}",
                            hint=f"known: {', '.join(matrices)}")
    folder = matrix_file.parent
    scenarios = {load_scenario(p).name: p for p in discover(folder)}
    cells: list[Scenario] = []
    seen: set[str] = set()
    for g, group in enumerate(matrices[name]["groups"]):
        axes = list(group["axes"])
        options = [[(v, None) if isinstance(v, str) else (v["value"], v.get("label"))
                    for v in group["axes"][axis]] for axis in axes]
        where = ["matrices", name, "groups", g]
        _check_labels(axes, options, matrix_file, root, where)
        options = _checked(axes, options, matrix_file, root, where)
        if math.prod(map(len, options)) * len(group["scenarios"]) > MAX_CELLS:
            raise ScenarioError(f"matrix {name!r}: group {g + 1} has over {MAX_CELLS} cells",
                                where=f"{matrix_file}:{line_of(root, where)}",
                                hint="split it, or give its axes fewer values")
        for s, scenario_name in enumerate(group["scenarios"]):
            if scenario_name not in scenarios:
                line = line_of(root, ["matrices", name, "groups", g, "scenarios", s])
                raise ScenarioError(f"no scenario named {scenario_name!r} in {folder}",
                                    where=f"{matrix_file}:{line}",
                                    hint=f"known: {', '.join(sorted(scenarios))}")
            base = load_scenario(scenarios[scenario_name])
            for combo in itertools.product(*options):
                values = {axis: value for axis, (value, _) in zip(axes, combo, strict=True)}
                labels = {axis: label or default_label(axis, value)
                          for axis, (value, label) in zip(axes, combo, strict=True)}
                cell = apply(base, values, labels)
                if cell.id not in seen:
                    seen.add(cell.id)
                    cells.append(cell)
                if len(cells) > MAX_CELLS:
                    raise ScenarioError(f"matrix {name!r} has over {MAX_CELLS} cells",
                                        where=f"{matrix_file}:{line_of(root, ['matrices', name])}",
                                        hint="split it into smaller matrices")
    return cells


def _check_labels(axes: list[str], options: list[list[tuple]], matrix_file: Path, root, where: list) -> None:
    """Two values of one axis named alike would make two cells with one id."""
    for axis, values in zip(axes, options, strict=True):
        seen: dict[str, str] = {}
        for i, (value, label) in enumerate(values):
            shown = label or default_label(axis, value)
            if shown in seen and seen[shown] != value:
                line = line_of(root, [*where, "axes", axis, i])
                raise ScenarioError(f"axis {axis}: {value!r} and {seen[shown]!r} are both labelled {shown!r}",
                                    where=f"{matrix_file}:{line}",
                                    hint="give them labels of their own: {value: ..., label: ...}")
            seen[shown] = value


def _checked(axes: list[str], options: list[list[tuple]], matrix_file: Path, root, where: list) -> list[list[tuple]]:
    """The values as a scenario file would have them: a machine or CPU with no property that
    names a host file, and the paths of kernels and QEMU binaries made absolute against the
    matrix file's folder (then checked, as a scenario's, by check_paths and check_binaries)."""
    folder = matrix_file.parent
    checked = []
    for axis, values in zip(axes, options, strict=True):
        out = []
        for i, (value, label) in enumerate(values):
            if axis in ("machine", "cpu") and (prop := qemu_options.file_property(value)):
                raise ScenarioError(f"axis {axis}: {value!r}: property {prop} may name a host file or object",
                                    where=f"{matrix_file}:{line_of(root, [*where, 'axes', axis, i])}",
                                    hint=f"a matrix's {axis} values are a name and properties that name no "
                                         "file; give such options yourself on the command line (--qemu-arg)")
            is_path = (not named_kernel(value) if axis in ("kernel", "child_kernel")
                       else axis == "qemu" and "/" in value and not value.startswith(("debian:", "source:")))
            if is_path:
                value, label = os.path.abspath(folder / value), label or default_label(axis, value)
            out.append((value, label))
        checked.append(out)
    return checked
