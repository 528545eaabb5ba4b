# SPDX-License-Identifier: GPL-2.0-only
"""Load scenario files (YAML) into harness.scenario.model.Scenario.

The file is read, parsed and validated against harness.scenario.schema.SCHEMA by
harness.yamldoc (every problem a ScenarioError naming file:line and the key path),
then converted: relative kernel and QEMU paths resolve against the file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness import yamldoc
from harness.errors import ScenarioError, SeedchainError
from harness.paths import PROJECT
from harness.scenario import qemu_options
from harness.scenario.model import (ARCHES, DEFAULT_ARCH, BootLoader, Capture, Expect, Layer, QemuConfig,
                                     Scenario, named_kernel)
from harness.scenario.schema import PATTERN_WORDS, SCHEMA
from harness.yamldoc import MAX_BYTES, Validator, Words, line_at, line_of, load_document  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from yaml.nodes import Node

_VALIDATOR = Validator(SCHEMA)
# What yamldoc's messages say about a scenario file.
WORDS = Words(
    too_long="a scenario is a short file",
    size_hint="a scenario is a short file; is this the right one?",
    empty_hint="a scenario needs at least name, description and layers",
    top_hint="a scenario is a mapping with the keys name, description, layers and maybe tags, qemu",
    patterns=PATTERN_WORDS,
)

NOT_SCENARIOS = {"matrix.yaml", "known-gaps.yaml"}


def discover(directory: str | os.PathLike) -> list[Path]:
    """The scenario files in a folder, sorted; `_*.yaml` and the non-scenario
    YAML files the project keeps beside them are left out."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ScenarioError("no such folder", where=str(directory))
    return sorted(
        p for p in folder.glob("*.yaml")
        if p.is_file() and not p.name.startswith("_") and p.name not in NOT_SCENARIOS
    )


def load_folder(directory: str | os.PathLike, tag: str | None = None) -> tuple[list[Scenario], list[SeedchainError]]:
    """The scenarios of a folder (with `tag`, only those carrying it) and the problems of the
    files that could not be loaded: one bad file does not hide the others. A file that parses
    but whose tags leave `tag` out is passed over even when it would not validate."""
    found: list[Scenario] = []
    errors: list[SeedchainError] = []
    for path in discover(directory):
        try:
            if tag is not None:
                _, data = yamldoc.parse(read_text(path), str(path), WORDS)
                tags = data.get("tags") if isinstance(data, dict) else None
                if isinstance(tags, list) and tag not in tags:
                    continue
            scenario = load_scenario(path)
        except SeedchainError as exc:
            errors.append(exc)
            continue
        if tag is None or tag in scenario.tags:
            found.append(scenario)
    return found, errors


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read, validate and convert one scenario file."""
    return load_text(read_text(path), str(path))


def read_text(path: str | os.PathLike) -> str:
    """A scenario file's text (yamldoc.read_text with the scenario words)."""
    return yamldoc.read_text(path, WORDS)


def load_text(text: str, path: str | os.PathLike) -> Scenario:
    """Validate and convert scenario text; `path` is used for messages and to
    resolve relative kernel paths."""
    where = str(path)
    yamldoc.check_size(len(text.encode("utf-8", "surrogatepass")), where, WORDS)
    root, data = yamldoc.parse(text, where, WORDS)
    yamldoc.validate(data, root, where, _VALIDATOR, WORDS)
    assert isinstance(data, dict)       # the schema's top level is an object
    return _build(data, root, where)


def check_paths(scenario: Scenario, *, allowed: bool = False, replaced: Collection[int] = ()) -> None:
    """Refuse a kernel path that leads out of both the scenario's folder and the project (to
    any file of the host's: a scenario from elsewhere must not pick one), unless `allowed`
    (--allow-outside-paths). Symlinks count where they lead. The layers in `replaced` boot a
    kernel given on the command line instead (--kernel), which is the user's own choice."""
    if allowed:
        return
    folder = os.path.realpath(Path(scenario.path).parent)
    for layer in scenario.layers:
        if layer.index in replaced or named_kernel(layer.kernel):
            continue
        target = os.path.realpath(layer.kernel)
        if not any(Path(target).is_relative_to(root) for root in (folder, PROJECT)):
            raise ScenarioError(
                f"the kernel path leads out of the scenario's folder and the project, to {target}",
                where=f"{scenario.path}:{layer.line}: layer {layer.index}",
                hint="put the kernel beside the scenario or in the project, give it with --kernel "
                     "[N=]PATH, or allow this with --allow-outside-paths if you trust the scenario file")


def builds_a_program(build: str) -> bool:
    """Does a qemu.build name a program to run (a path or a name on PATH), rather than one
    seedchain finds or builds itself (system, debian:SUITE, source:VERSION)?"""
    return build != "system" and not build.startswith(("debian:", "source:"))


def check_binaries(scenario: Scenario, *, allowed: bool = False) -> None:
    """Refuse a QEMU binary that a scenario or matrix file names (a path, or a name on PATH):
    seedchain would run it, as the user, to ask its `--version` and then to boot. A binary is
    the user's own choice on the command line (--qemu, which replaces it: call this only
    without one), or allowed for a trusted file with --allow-scenario-binaries."""
    build = scenario.qemu.build
    if allowed or not builds_a_program(build):
        return
    if "qemu" in dict(scenario.cell_values):
        where = f"{scenario.path}: matrix cell {scenario.id}: qemu axis"
    else:
        where = f"{scenario.path}{f':{scenario.qemu_line}' if scenario.qemu_line else ''}: qemu.build"
    raise ScenarioError(f"names a program to run ({build}); a scenario or matrix file may not make "
                        "seedchain run a program", where=where,
                        hint="give the QEMU binary yourself with --qemu PATH, or allow this with "
                             "--allow-scenario-binaries if you trust the file")


def kernel_options(values: Sequence[str]) -> tuple[str | None, dict[int, str]]:
    """The --kernel values of a command line: PATH for every layer, N=PATH for layer N
    (which wins over PATH there); paths made absolute against the current folder. A
    file whose name starts with digits and '=' is written ./2=name."""
    every: str | None = None
    layers: dict[int, str] = {}
    for value in values:
        m = re.fullmatch(r"(\d+)=(.*)", value)
        path = m[2] if m else value
        if not path:
            raise SeedchainError(f"--kernel {value} names no file", where="--kernel",
                                 hint="write --kernel PATH (every layer) or --kernel N=PATH (layer N)")
        path = os.path.abspath(os.path.expanduser(path))
        if m is None:
            if every is not None:
                raise SeedchainError(f"--kernel for every layer is given twice ({every} and {path})",
                                     where="--kernel", hint="give one PATH for every layer, and N=PATH "
                                                            "for the layers that differ")
            every = path
            continue
        n = int(m[1])
        if n < 1:
            raise SeedchainError(f"--kernel {value}: layers are numbered from 1", where="--kernel",
                                 hint="layer 1 is the one QEMU boots, 2 the first kexec'd one")
        if n in layers:
            raise SeedchainError(f"--kernel {n}= is given twice ({layers[n]} and {path})", where="--kernel",
                                 hint="give each layer one kernel")
        layers[n] = path
    return every, layers


# --- validated data to the model -------------------------------------------------------

def _check_arch(arch: str, explicit: bool, qemu: dict, root: Node, where: str) -> None:
    """The qemu keys that must agree with the scenario's arch: a firmware of that arch,
    and a machine type of its QEMU (not q35 on aarch64, not virt on x86_64)."""
    own = ARCHES[arch]
    said = f"; the scenario's arch is {arch}" + ("" if explicit else " (the default)")
    firmware = qemu.get("firmware")
    if firmware is not None and firmware not in own.firmwares:
        others = [name for name, a in ARCHES.items() if firmware in a.firmwares]
        raise ScenarioError(f"qemu.firmware: {firmware} is {' and '.join(others)}'s firmware{said}",
                            where=f"{where}:{line_at(root, ['qemu', 'firmware'])}",
                            hint=f"use one of: {', '.join(own.firmwares)}")
    machine = qemu.get("machine")
    if machine is None:
        return
    name = machine.split(",", 1)[0]
    if re.fullmatch(own.machines, name):
        return
    others = [other for other, a in ARCHES.items() if other != arch and re.fullmatch(a.machines, name)]
    if others or arch != DEFAULT_ARCH:
        kind = f"an {others[0]} machine type" if others else "not a machine type seedchain runs it on"
        raise ScenarioError(f"qemu.machine: {name} is {kind}{said}",
                            where=f"{where}:{line_at(root, ['qemu', 'machine'])}",
                            hint=f"{arch} runs on {own.machine_words}"
                                 + (f"; or set arch: {others[0]}" if others else ""))


def _build(data: dict, root: Node, where: str) -> Scenario:
    folder = Path(where).parent
    qemu = dict(data.get("qemu", {}))
    if "memory" in qemu:
        qemu["memory"] = int(qemu["memory"])          # 2048.0 is a valid integer to JSON Schema
    if "build" in qemu and qemu["build"] != "system" and not qemu["build"].startswith(("debian:", "source:")):
        qemu["build"] = os.path.abspath(folder / qemu["build"])
    if "extra_args" in qemu:
        qemu["extra_args"] = tuple(qemu["extra_args"])
        if refused := qemu_options.check_extra_args(qemu["extra_args"]):
            index, what = refused
            raise ScenarioError(f"qemu.extra_args[{index + 1}]: {what}",
                                where=f"{where}:{line_at(root, ['qemu', 'extra_args', index])}",
                                hint=qemu_options.HINT)
    for key in ("machine", "cpu"):
        if key in qemu and (prop := qemu_options.file_property(qemu[key])):
            raise ScenarioError(f"qemu.{key}: property {prop} may name a host file or object",
                                where=f"{where}:{line_at(root, ['qemu', key])}",
                                hint=f"a scenario's {key} is a name and properties that name no file; "
                                     "give such options yourself on the command line (--qemu-arg)")
    arch = data.get("arch", DEFAULT_ARCH)
    _check_arch(arch, "arch" in data, qemu, root, where)
    defaults = ARCHES[arch]
    for key in ("machine", "cpu", "firmware"):
        qemu.setdefault(key, getattr(defaults, key))
    capture = Capture(**data.get("capture", {}))
    layers = []
    for index, raw in enumerate(data["layers"], start=1):
        kernel = raw["kernel"]
        if not named_kernel(kernel):
            kernel = os.path.abspath(folder / kernel)
        optional = {key: raw[key] for key in ("userland", "cmdline", "pad_kernel") if key in raw}
        if "timeout" in raw:
            optional["timeout"] = float(raw["timeout"])
        layers.append(Layer(
            index=index,
            kernel=kernel,
            loader=raw["loader"] if index > 1 else "qemu",
            expect=Expect.from_mapping(raw.get("expect", {}), caught=capture.seed_in_flight),
            line=line_at(root, ["layers", index - 1], of_value=True),
            **optional,
        ))
    bootloader = None
    if "bootloader" in data:
        line = line_at(root, ["bootloader"], of_value=True)
        if arch != "x86_64":
            raise ScenarioError(f"bootloader {data['bootloader']['name']} is x86_64 only: its ESP recipe "
                                "and variable store are OVMF's", where=f"{where}:{line}: bootloader",
                                hint=f"remove bootloader, or drop arch: {arch}")
        if qemu.get("firmware", QemuConfig.firmware) != "ovmf":
            raise ScenarioError(f"bootloader {data['bootloader']['name']} needs UEFI firmware",
                                where=f"{where}:{line}: bootloader",
                                hint="add firmware: ovmf to the qemu mapping, or remove bootloader")
        bootloader = BootLoader(line=line, **data["bootloader"])
    return Scenario(
        bootloader=bootloader,
        name=data["name"],
        description=data["description"],
        path=where,
        qemu=QemuConfig(**qemu),
        layers=tuple(layers),
        tags=tuple(data.get("tags", ())),
        arch=arch,
        capture=capture,
        repeat=int(data.get("repeat", 1)),
        qemu_line=(line_at(root, ["qemu", "build"]) if "build" in qemu
                   else line_at(root, ["qemu"]) if "qemu" in data else 0),
    )
