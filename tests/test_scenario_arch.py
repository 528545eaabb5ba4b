# SPDX-License-Identifier: GPL-2.0-only
"""The scenario's top-level `arch:` key: its defaults per architecture, and the qemu keys
that must agree with it, each refused with the file, the line and what to write instead."""

from __future__ import annotations

import pytest

from harness.errors import ScenarioError
from harness.scenario.load import load_text

HEAD = "name: t\ndescription: d\n"
LAYERS = "layers:\n  - kernel: debian:bookworm/6.1\n  - kernel: debian:bookworm/6.1\n    loader: kexec_load\n"


def load(text: str):
    return load_text(HEAD + text, "scenarios/t.yaml")


def error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(text)
    return info.value


def test_x86_64_is_the_default_with_its_machine_cpu_and_firmware():
    s = load(LAYERS)
    assert s.arch == "x86_64"
    assert (s.qemu.machine, s.qemu.cpu, s.qemu.firmware) == ("q35", "max", "seabios")


def test_aarch64_gets_virt_and_the_fast_max_cpu():
    s = load("arch: aarch64\n" + LAYERS)
    assert s.arch == "aarch64"
    assert (s.qemu.machine, s.qemu.cpu, s.qemu.firmware) == ("virt", "max,pauth-impdef=on", "none")
    s = load("arch: aarch64\nqemu: {machine: 'virt,dtb-randomness=off', cpu: cortex-a57, firmware: uefi}\n" + LAYERS)
    assert (s.qemu.machine, s.qemu.cpu, s.qemu.firmware) == ("virt,dtb-randomness=off", "cortex-a57", "uefi")
    assert load("arch: aarch64\nqemu: {machine: virt-7.2}\n" + LAYERS).qemu.machine == "virt-7.2"


@pytest.mark.parametrize("text, line, what, hint", [
    ("arch: aarch64\nqemu:\n  machine: q35\n", 5, "qemu.machine: q35 is an x86_64 machine type; the "
     "scenario's arch is aarch64", "aarch64 runs on virt or virt-7.2; or set arch: x86_64"),
    ("arch: aarch64\nqemu:\n  machine: microvm,rtc=on\n", 5, "microvm is an x86_64 machine type", "virt"),
    ("arch: aarch64\nqemu:\n  machine: raspi3b\n", 5, "raspi3b is not a machine type seedchain runs it on",
     "aarch64 runs on virt"),
    ("qemu:\n  machine: virt\n", 4, "virt is an aarch64 machine type; the scenario's arch is x86_64 "
     "(the default)", "or set arch: aarch64"),
    ("arch: aarch64\nqemu:\n  cpu: max\n  firmware: ovmf\n", 6, "qemu.firmware: ovmf is x86_64's firmware; "
     "the scenario's arch is aarch64", "use one of: none, uefi"),
    ("arch: x86_64\nqemu: {firmware: uefi}\n", 4, "uefi is aarch64's firmware; the scenario's arch is x86_64",
     "use one of: seabios, ovmf"),
    ("arch: arm64\n", 3, "arch: 'arm64' is not allowed; allowed: x86_64, aarch64", "did you mean 'aarch64'?"),
])
def test_keys_of_the_other_arch_are_refused_at_their_line(text, line, what, hint):
    err = error(text + LAYERS)
    assert err.where == f"scenarios/t.yaml:{line}" or err.where.startswith(f"scenarios/t.yaml:{line}")
    assert what in err.what and hint in (err.hint or "")


def test_x86_64_keeps_machines_it_does_not_list():
    assert load("qemu: {machine: pc-1.0}\n" + LAYERS).qemu.machine == "pc-1.0"


def test_a_boot_loader_is_x86_64_only():
    err = error("arch: aarch64\nqemu: {firmware: uefi}\nbootloader: {name: systemd-boot}\n" + LAYERS)
    assert err.where == "scenarios/t.yaml:5: bootloader" and "x86_64 only" in err.what
