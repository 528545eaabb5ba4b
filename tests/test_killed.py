# SPDX-License-Identifier: GPL-2.0-only
"""A QEMU that something outside ended, and a Ctrl-C at the RAM search: read truly.

A QEMU killed by a signal is no verdict on the guest: the run could not be tested (125),
and its result says so; when seedchain itself is interrupted too it is an interruption
(130). A Ctrl-C while the guest stands still for the RAM search is an interruption too,
quiet, with QEMU gone and the logs kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.boot import channel
from harness.boot.qemu import Machine
from harness.errors import QemuError
from harness.proc import signals_as_at_a_terminal
from runs import reaped, until_qemu_started

ROOT = Path(__file__).resolve().parent.parent


def _scenario(tmp_path: Path, base: str, name: str, extra: str = "") -> Path:
    text = (ROOT / "scenarios" / f"{base}.yaml").read_text()
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(f"name: {base}", f"name: {name}", 1) + extra)
    return path


def _processes_naming(text: str, kind: str = "") -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and kind in cmdline and state != "Z":
            found.append(int(proc.name))
    return found



def _start(command: list[str], seedchain) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=signals_as_at_a_terminal,
                            env={**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root)})



def _qemu_of(folder: Path) -> int:
    deadline = time.monotonic() + 10
    while not (found := _processes_naming(str(folder), "qemu-system")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.vm
@pytest.mark.parametrize("how", ["qemu-term", "qemu-int-first"])
def test_a_qemu_killed_from_outside_is_no_verdict(how, seedchain, tmp_path):
    """kill -TERM of the QEMU process: not a guest that reset (exit 1, "bad" to bisect),
    but a run that could not be tested (125), its result.json's error naming the signal.
    A Ctrl-C that reaches QEMU a moment before seedchain: interrupted (130), no verdict."""
    name = f"k-{how}"
    scenario = _scenario(tmp_path, "qemu-only", name)
    out = tmp_path / "out"
    proc = _start([sys.executable, "-m", "harness.cli", "run", str(scenario), "--artifacts", str(out)], seedchain)
    with reaped(proc, seedchain.cache.root, name):
        until_qemu_started(proc)
        qemu = _qemu_of(out / name)
        time.sleep(2.0)                 # the kernel boots (layer 1 takes some 8 s)
        if how == "qemu-term":
            os.kill(qemu, signal.SIGTERM)
        else:
            os.kill(qemu, signal.SIGINT)
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    outdir = out / name
    assert "Traceback" not in stderr, stderr
    assert _processes_naming(str(outdir)) == []
    assert (outdir / "console.log").exists() and (outdir / "layer-1.json").exists()    # logs kept
    layer = json.loads((outdir / "layer-1.json").read_text())
    if how == "qemu-term":
        assert proc.returncode == 125, stdout + stderr
        result = json.loads((outdir / "result.json").read_text())
        assert "signal 15 (SIGTERM) from pid" in result["error"], result["error"]
        assert layer["fault"] == "qemu-killed"
        assert "signal 15" in stdout and "no panic message" not in stdout
    else:
        assert proc.returncode == 130, stdout + stderr
        assert "interrupted" in stderr
        assert not (outdir / "result.json").exists()      # no verdict was written


@pytest.mark.vm
def test_ctrl_c_during_the_ram_search_is_a_quiet_interruption(seedchain, tmp_path):
    """Ctrl-C (the terminal signals the whole process group: seedchain and QEMU) while the
    guest stands still for the RAM search: exit 130, no traceback, QEMU gone, logs kept."""
    name = "ctrl-c-ram-search"
    scenario = _scenario(tmp_path, "kexec-file-2", name, "capture: {ram_search: true}\n")
    out = tmp_path / "out"
    code = f"""
import os, signal, sys, time
from harness.boot import ram
def find(self, seeds):
    os.killpg(0, signal.SIGINT)            # as a terminal's Ctrl-C, at this moment
    time.sleep(30)
ram.GuestRam.find = find
from harness.cli import main
sys.exit(main(["run", {str(scenario)!r}, "--artifacts", {str(out)!r}]))
"""
    proc = _start([sys.executable, "-c", code], seedchain)
    with reaped(proc, seedchain.cache.root, name):
        stdout, stderr = proc.communicate(timeout=600)
    outdir = out / name
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr
    assert _processes_naming(str(outdir)) == []
    assert (outdir / "console.log").stat().st_size > 0
    assert (outdir / "layer-2.json").exists()


class _Dead:
    """A Machine's exit as the fault reader sees it, without a QEMU."""

    def __init__(self, tmp_path: Path, exit_code: int, said: str):
        self.machine = Machine("qemu-system-x86_64", [], tmp_path)
        self.machine.exit_code = exit_code
        self.machine.qemu_log_path.write_text(said)


@pytest.mark.parametrize("exit_code, said, killed", [
    (0, "qemu-system-x86_64: terminating on signal 15 from pid 4242 (bash)\n", "signal 15 (SIGTERM) from pid 4242"),
    (0, "qemu-system-x86_64: terminating on signal 2\n", "signal 2 (SIGINT)"),
    (-9, "", "signal 9 (SIGKILL)"),
    (0, "", None),
    (1, "qemu-system-x86_64: some error\n", None),
])
def test_what_ended_qemu_is_read_from_its_status_and_its_last_words(exit_code, said, killed, tmp_path, monkeypatch):
    monkeypatch.setattr(channel, "KILLED_GRACE", 0.0)
    machine = _Dead(tmp_path, exit_code, said).machine
    assert machine.killed_by() == killed
    fault = channel._exit_fault(machine, channel.Console(tmp_path / "console.log"), "report from layer 1")
    assert fault.kind == ("qemu-killed" if killed else "reset" if exit_code == 0 else "qemu-exit")


def test_a_stub_command_cut_short_by_qemus_death_is_read_as_that_death(tmp_path, monkeypatch):
    """QEMU killed while the host talks to its gdbstub (here: arming layer 1's hand-over):
    the stub's complaint (the link closed) is read as the fault of QEMU's exit, which names
    the signal, not as an error about the stub."""
    from harness.boot import chain
    from harness.facts.layer import LayerFacts
    from harness.scenario.load import load_scenario

    monkeypatch.setattr(channel, "KILLED_GRACE", 0.0, raising=False)
    machine = _Dead(tmp_path, 0, "qemu-system-x86_64: terminating on signal 15 from pid 4242 (bash)\n").machine
    machine.proc = None
    monkeypatch.setattr(machine, "wait_exit", lambda timeout: 0)
    monkeypatch.setattr(machine, "read_agent", lambda wait: b"", raising=False)

    class Watch:
        def first_hop(self, f):
            raise QemuError("QEMU's gdbstub did not answer 'Z1,100000,1': the stub closed the connection")

        def close(self):
            pass
    monkeypatch.setattr(chain, "_watch", lambda scenario, machine, outdir: Watch())
    scenario = load_scenario(ROOT / "scenarios" / "kexec-file-2.yaml")
    facts = [LayerFacts(index=layer.index, loader=layer.loader) for layer in scenario.layers]
    chain.boot_chain(scenario, machine, facts, tmp_path, lambda message: None)
    assert facts[0].fault == "qemu-killed" and "signal 15" in facts[0].fault_detail
    assert facts[1].fault == "not-reached"
