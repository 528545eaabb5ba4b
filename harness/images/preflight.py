# SPDX-License-Identifier: GPL-2.0-only
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

import os

from harness import arch
from harness.errors import SeedchainError
from harness.images import debian, kernel_source, qemu_builds
from harness.images.cache import Cache
from harness.images.kconfig import check_kernels
from harness.scenario.model import Scenario


def check_scenario(scenario: Scenario, cache: Cache | None = None) -> list[str]:
    """Notes for the user (options of a kernel file that change what a check sees, what is
    left to run time); the first problem as a SeedchainError whose `where` is the file and line."""
    notes: list[str] = []
    if scenario.arch not in arch.ARCHES:
        raise SeedchainError(f"arch {scenario.arch} is not available yet: harness/arch has no complete "
                             f"module for it (known: {', '.join(arch.ARCHES)})", where=f"{scenario.path}: arch",
                             hint="use another arch, or a seedchain whose harness/arch registers this one")
    for layer in scenario.layers:
        where = f"{scenario.path}:{layer.line}: layer {layer.index}"
        if layer.kernel.startswith("debian:"):
            notes += _at(where, lambda spec: _kernel_series(spec, scenario.arch, cache or Cache()), layer.kernel)
        elif layer.kernel.startswith(kernel_source.PREFIX):
            _at(where, kernel_source.check, layer.kernel)
        _at(where, _userland_suite, layer.userland)
    line = f":{scenario.qemu_line}" if scenario.qemu_line else ""
    notes += _at(f"{scenario.path}{line}: qemu.build", lambda build: qemu_builds.check(build, scenario.arch),
                 scenario.qemu.build)
    return [*dict.fromkeys(notes), *check_kernels(scenario)]


def _kernel_series(spec: str, arch_name: str, cache: Cache) -> list[str]:
    """A debian:SUITE/SERIES spec whose series the suite has, asked of the package lists in
    the cache (no network: run fetches them); a note when there are none yet."""
    ks = debian.parse_kernel_spec(spec)
    apt = debian.Apt(ks.suite, cache, arch.get(arch_name).DEBIAN_ARCH)
    # Lists older than a day are fetched again by run, and may name a series the old ones lack.
    usable = apt._fresh() or (os.environ.get("SEEDCHAIN_OFFLINE") == "1" and apt._has_lists())
    if not (usable and apt._config_current()):
        return [f"{spec}: no current {apt.label} package lists in the cache; whether {ks.suite} has "
                f"series {ks.series} is checked when the scenario runs"]
    debian._pick_kernel(apt, ks, arch_name, fetch=False)
    return []


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
