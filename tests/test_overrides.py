# SPDX-License-Identifier: GPL-2.0-only
"""A user's kernels and QEMU over a scenario's: `--kernel PATH` (every layer), `--kernel
N=PATH` (layer N, repeatable), `--qemu PATH`, the same in seedchain run and in pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import SeedchainError
from harness.scenario.load import kernel_options, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def test_kernel_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kernel_options([]) == (None, {})
    assert kernel_options(["linux/bzImage"]) == (str(tmp_path / "linux/bzImage"), {})
    assert kernel_options(["2=/a", "3=b", "/c"]) == ("/c", {2: "/a", 3: str(tmp_path / "b")})
    assert kernel_options(["./2=odd-name"]) == (str(tmp_path / "2=odd-name"), {})
    assert kernel_options(["2=~/bzImage"])[1] == {2: os.path.expanduser("~/bzImage")}


@pytest.mark.parametrize("values,message", [
    (["0=/a"], "--kernel 0=/a: layers are numbered from 1"),
    (["2=/a", "2=/b"], "--kernel 2= is given twice (/a and /b)"),
    (["/a", "/b"], "--kernel for every layer is given twice (/a and /b)"),
    (["2="], "--kernel 2= names no file"),
])
def test_kernel_options_refused(values, message):
    with pytest.raises(SeedchainError) as info:
        kernel_options(values)
    assert info.value.what == message and info.value.where == "--kernel" and info.value.hint


def test_one_layers_kernel_wins_over_every_layers():
    s = load_scenario(SCENARIOS / "kexec-file-4.yaml")
    assert [layer.kernel for layer in s.with_overrides(layer_kernels={2: "/k2"}).layers] == [
        "debian:bookworm/6.1", "/k2", "debian:bookworm/6.1", "debian:sid/7.2"]
    both = s.with_overrides(kernel="/all", layer_kernels={1: "/k1", 4: "/k4"}, qemu_build="/q")
    assert [layer.kernel for layer in both.layers] == ["/k1", "/all", "/all", "/k4"]
    assert both.qemu.build == "/q" and both.layers[1].loader == s.layers[1].loader
    assert s.with_overrides() == s


@pytest.mark.parametrize("name,count", [("kexec-file-4.yaml", "4 layers"), ("qemu-only.yaml", "1 layer")])
def test_a_layer_the_scenario_lacks(name, count):
    s = load_scenario(SCENARIOS / name)
    with pytest.raises(SeedchainError) as info:
        s.with_overrides(layer_kernels={5: "/k"})
    assert str(info.value).startswith(f"{SCENARIOS / name}: scenario {s.name} has {count}; "
                                      "--kernel 5=/k names none")


def test_pytest_refuses_a_wrong_kernel_option_as_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "--kernel", "2=/a", "--kernel", "2=/b", "tests/test_layout.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr        # pytest's usage error
    assert "--kernel 2= is given twice (/a and /b)" in proc.stderr
    assert "Traceback" not in proc.stderr
