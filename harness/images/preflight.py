"""A scenario checked before anything is fetched, built or booted.

What `seedchain check` says of a file, and what `run` makes sure of first, so that a
mistake costs no download and no build: the Debian suites of the layers' kernels and
userlands and of a `debian:SUITE` QEMU, the recipe of a `source:VERSION` QEMU, that a QEMU
binary is an executable ELF file or script (it is not run: resolve() asks it `--version`
when the scenario runs), and the kernel files the layers boot (their header
and embedded configuration: harness.images.kconfig). Each problem names the scenario
file and the line of the layer, or of `qemu.build`; no network is needed for any of it.
"""

from __future__ import annotations

from harness import arch
from harness.errors import SeedchainError
from harness.images import debian, kernel_source, qemu_builds
from harness.images.kconfig import check_kernels
from harness.scenario.model import Scenario


def check_scenario(scenario: Scenario) -> list[str]:
    """Notes for the user (options of a kernel file that change what a check sees); the
    first problem as a SeedchainError whose `where` is the file and line."""
    if scenario.arch not in arch.ARCHES:
        raise SeedchainError(f"arch {scenario.arch} is not available yet: harness/arch has no complete "
                             f"module for it (known: {', '.join(arch.ARCHES)})", where=f"{scenario.path}: arch",
                             hint="use another arch, or a seedchain whose harness/arch registers this one")
    for layer in scenario.layers:
        where = f"{scenario.path}:{layer.line}: layer {layer.index}"
        if layer.kernel.startswith("debian:"):
            _at(where, debian.parse_kernel_spec, layer.kernel)
        elif layer.kernel.startswith(kernel_source.PREFIX):
            _at(where, kernel_source.check, layer.kernel)
        _at(where, _userland_suite, layer.userland)
    line = f":{scenario.qemu_line}" if scenario.qemu_line else ""
    notes = _at(f"{scenario.path}{line}: qemu.build", lambda build: qemu_builds.check(build, scenario.arch),
                scenario.qemu.build)
    return [*notes, *check_kernels(scenario)]


def _userland_suite(spec: str) -> None:
    suite = spec.removeprefix("debian:")
    if not spec.startswith("debian:") or suite not in debian.SUITES:
        raise SeedchainError(f"unknown Debian suite {suite!r} in userland {spec!r}",
                             hint=f"use one of: {', '.join('debian:' + s for s in debian.SUITES)}")


def _at(where: str, check, value: str):
    try:
        return check(value)
    except SeedchainError as exc:
        exc.where = where
        raise
