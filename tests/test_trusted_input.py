# SPDX-License-Identifier: GPL-2.0-only
"""A scenario or matrix file from someone else is data: it cannot give QEMU an option that
names a host file, socket, plugin or program (qemu.extra_args is an allow-list, machine
and CPU values carry no file-naming property), cannot make seedchain run a program it
names (a QEMU binary needs --allow-scenario-binaries, or the user's own --qemu), and a
matrix's values pass the same checks as a scenario's. `check` runs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.errors import ScenarioError
from harness.matrix.expand import expand
from harness.scenario import qemu_options
from harness.scenario.load import check_binaries, check_paths, load_scenario
from test_cli import seedchain

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "scenarios" / "schema.json").read_text())


def scenario(folder: Path, qemu: str, name: str = "s") -> Path:
    """A one-layer scenario whose qemu mapping (block style) starts on line 3."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\ndescription: d\nqemu:\n{qemu}layers:\n  - kernel: debian:bookworm/6.1\n")
    return path


HOSTILE = [  # (extra_args, index of the item refused)
    (["-plugin", "file=x.so"], 0),
    (["-chardev", "file,id=c,path=/tmp/victim"], 0),
    (["-fw_cfg", "name=opt/x,file=/root/secret"], 0),
    (["-monitor", "tcp:0.0.0.0:4444,server"], 0),
    (["-drive", "file=/etc/shadow"], 0),
    (["-seed", "42", "-serial", "file:x"], 2),
    (["-global", "virtio-net-pci.romfile=x"], 1),
    (["-global", "driver=isa-fdc,property=driveA,value=x"], 1),
    (["-smp", "2", "-S"], 2),
    (["-seed"], 0),
    (["file=x.so"], 0),
    (["--plugin", "file=x.so"], 0),
    (["-icount", "shift=1,rr=record,rrfile=x"], 1),
]


def extra_args(items: list[str]) -> str:
    return "  extra_args:\n" + "".join(f"    - {json.dumps(item)}\n" for item in items)


@pytest.mark.parametrize("items,index", HOSTILE, ids=[" ".join(h[0]) for h in HOSTILE])
def test_check_refuses_an_extra_arg_that_is_not_allowed(tmp_path, items, index):
    path = scenario(tmp_path, extra_args(items))
    proc = seedchain("check", path)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith(f"seedchain: error: {path}:{5 + index}: "), proc.stderr
    assert "extra_args" in proc.stderr and "--qemu-arg" in proc.stderr


@pytest.mark.parametrize("items", [["-seed", "42"], ["-smp", "2"], ["-smp", "cpus=2,cores=2"],
                                   ["-global", "kvm-pit.lost_tick_policy=discard"],
                                   ["-rtc", "base=utc,clock=vm"], ["-icount", "shift=auto,sleep=off"]])
def test_the_allowed_options_load(tmp_path, items):
    assert load_scenario(scenario(tmp_path, extra_args(items))).qemu.extra_args == tuple(items)
    assert qemu_options.check_extra_args(items) is None


def test_the_schema_refuses_what_the_loader_refuses_first():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    base = {"name": "s", "description": "d", "layers": [{"kernel": "debian:bookworm/6.1"}]}
    for items in (["-plugin", "x"], ["-drive", "file=/etc/shadow"], ["-seed", "/etc/passwd"], ["-smp", "2 -S"]):
        assert not validator.is_valid({**base, "qemu": {"extra_args": items}}), items
    assert validator.is_valid({**base, "qemu": {"extra_args": ["-seed", "42", "-smp", "2"]}})


@pytest.mark.parametrize("key,value", [("machine", "virt,dumpdtb=out.dtb"), ("machine", "virt,dtb=x"),
                                       ("machine", "pc,memory-backend=m"), ("cpu", "max,x-file=y")])
def test_a_machine_or_cpu_property_that_names_a_file_is_refused(tmp_path, key, value):
    arch = "arch: aarch64\n" if value.startswith("virt") else ""
    path = scenario(tmp_path, f"  {key}: '{value}'\n")
    path.write_text(arch + path.read_text())
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.where == f"{path}:{5 if arch else 4}"
    assert "may name a host file" in info.value.what


def test_shipped_machine_options_still_load():
    loaded = load_scenario(ROOT / "scenarios" / "a64-dtb-randomness-off.yaml")
    assert "dtb-randomness=off" in loaded.qemu.machine


# --- QEMU binaries a file names -----------------------------------------------------------

def payload(folder: Path) -> tuple[Path, Path]:
    """An executable that, if ever run, leaves a marker file."""
    marker = folder / "ran"
    script = folder / "payload.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho 'QEMU emulator version 9.9.9'\n")
    script.chmod(0o755)
    return script, marker


def test_check_never_runs_a_binary_the_scenario_names(tmp_path):
    script, marker = payload(tmp_path)
    path = scenario(tmp_path, "  build: ./payload.sh\n")
    proc = seedchain("check", path)
    assert proc.returncode == 2 and not marker.exists()
    assert proc.stderr.startswith(f"seedchain: error: {path}:4: qemu.build: names a program to run"), proc.stderr
    assert "--allow-scenario-binaries" in proc.stderr
    # Allowed, it is checked as a file and still not run: `check` runs nothing.
    proc = seedchain("check", path, "--allow-scenario-binaries")
    assert proc.returncode == 0, proc.stderr
    assert "(a script) is asked `--version` when the scenario runs" in proc.stdout
    assert not marker.exists()


def test_run_refuses_a_binary_the_scenario_names_before_running_it(tmp_path):
    script, marker = payload(tmp_path)
    path = scenario(tmp_path, "  build: payload.sh\n")
    proc = seedchain("run", path, "--artifacts", tmp_path / "out",
                     env={"SEEDCHAIN_CACHE": str(tmp_path / "cache"), "SEEDCHAIN_OFFLINE": "1"})
    assert proc.returncode == 125 and "names a program to run" in proc.stderr
    assert not marker.exists()


def test_pytest_refuses_a_binary_the_scenario_names(tmp_path):
    script, marker = payload(tmp_path)
    path = scenario(tmp_path, "  build: ./payload.sh\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.pytest_session", str(path),
                           "-p", "no:cacheprovider", "-q",
                           "--seedchain-cache", str(tmp_path / "cache"), "--artifacts", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SEEDCHAIN_OFFLINE": "1"})
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "names a program to run" in proc.stdout
    assert not marker.exists()


def test_a_qemu_binary_is_the_users_choice_on_the_command_line(tmp_path):
    script, _ = payload(tmp_path)
    loaded = load_scenario(scenario(tmp_path, "  build: ./payload.sh\n"))
    with pytest.raises(ScenarioError):
        check_binaries(loaded)
    check_binaries(loaded, allowed=True)
    check_binaries(loaded.with_overrides(qemu_build="system"))


# --- the matrix ---------------------------------------------------------------------------

def matrix(folder: Path, axes: str) -> Path:
    scenario(folder, "  build: system\n", name="base")
    path = folder / "matrix.yaml"
    path.write_text(f"matrices:\n  m:\n    groups:\n      - scenarios: [base]\n        axes:\n{axes}")
    return path


@pytest.mark.parametrize("axes,line,words", [
    ("          machine: ['q35 -plugin evil.so']\n", 6, "allowed: a QEMU machine type"),
    ("          machine: ['q35,dumpdtb=x']\n", 6, "property dumpdtb may name a host file"),
    ("          cpu: ['max -plugin x']\n", 6, "a QEMU CPU model"),
    ("          firmware: ['x -plugin y']\n", 6, "is not allowed; allowed: seabios"),
    ("          userland: ['/etc/passwd']\n", 6, "debian:SUITE"),
])
def test_a_matrix_value_is_checked_like_a_scenarios(tmp_path, axes, line, words):
    with pytest.raises(ScenarioError) as info:
        expand(matrix(tmp_path, axes), "m")
    assert info.value.where == f"{tmp_path / 'matrix.yaml'}:{line}"
    assert words in info.value.what


def test_a_matrix_kernel_out_of_the_folder_needs_allow_outside_paths(tmp_path):
    (cell,) = expand(matrix(tmp_path, "          kernel: [/etc/shadow]\n"), "m")
    with pytest.raises(ScenarioError, match="leads out of the scenario's folder"):
        check_paths(cell)
    (cell,) = expand(matrix(tmp_path, "          kernel: [kernels/bzImage]\n"), "m")
    assert cell.layers[0].kernel == str(tmp_path / "kernels" / "bzImage")     # against the matrix's folder
    check_paths(cell)


def test_a_matrix_qemu_binary_needs_allow_scenario_binaries(tmp_path):
    script, marker = payload(tmp_path)
    (cell,) = expand(matrix(tmp_path, "          qemu: [./payload.sh]\n"), "m")
    assert cell.qemu.build == str(script)
    with pytest.raises(ScenarioError, match="qemu axis"):
        check_binaries(cell)
    assert not marker.exists()


def test_qemu_arg_adds_any_option_of_the_users(tmp_path):
    loaded = load_scenario(scenario(tmp_path, extra_args(["-seed", "42"])))
    mine = loaded.with_overrides(qemu_args=("-d", "int", "-D", "/tmp/qemu.log"))
    assert mine.qemu.extra_args == ("-seed", "42", "-d", "int", "-D", "/tmp/qemu.log")
    assert "--qemu-arg" in seedchain("run", "--help").stdout
