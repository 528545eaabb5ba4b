# SPDX-License-Identifier: GPL-2.0-only
"""A bug of seedchain is seedchain's error, never a verdict about the guest: an unexpected
exception raised while the chain reads the guest goes up (`seedchain run` exits 125, the
traceback kept in the run folder's error.log), while what QEMU or the guest answers (the
monitor's complaint, a device tree that does not parse) stays a diagnostic field."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

import recorded
from harness import cli
from harness.arch.fdt import DtbError
from harness.boot import chain, channel
from harness.boot.qemu import Machine
from harness.errors import QemuError
from harness.facts.layer import LayerFacts
from harness.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parent.parent


class _Machine:
    """Stands in for a running QEMU: guest RAM reads answer with `raised`."""

    def __init__(self, raised: BaseException):
        self.raised = raised
        self.answers: list[str] = []

    def read_memory(self, address: int, size: int) -> bytes:
        raise self.raised

    def answer_agent(self, word: str) -> None:
        self.answers.append(word)


class _Stream:
    started_at = None


def _replayed_layer(monkeypatch, raised: BaseException) -> tuple[LayerFacts, _Machine]:
    """Layer 2 of the recorded kexec-file-2 run (its setup_data list not empty), its report
    replayed, its RAM reads raising."""
    block = recorded.agent_blocks("kexec-file-2")[1]
    monkeypatch.setattr(chain, "wait_block", lambda *args, **kwargs: block)
    machine = _Machine(raised)
    f = LayerFacts(index=2, loader="kexec_file_load")
    return f, machine


@pytest.mark.parametrize("raised", [
    QemuError("reading 16 bytes at 0x1000 gave 0: Cannot access memory"),
    ConnectionResetError(104, "Connection reset by peer"),
    DtbError("no FDT magic"),
])
def test_what_the_monitor_answers_stays_a_diagnostic_field(monkeypatch, raised):
    f, machine = _replayed_layer(monkeypatch, raised)
    chain._boot_layer(2, 10.0, machine, _Stream(), None, f, start=0.0)
    assert f.booted and f.ram_error == f"{type(raised).__name__}: {raised}"
    assert machine.answers == ["go"]


def test_a_bug_while_reading_the_guest_is_raised_not_recorded(monkeypatch):
    # The old code caught every Exception here and set ram_error "RuntimeError: ...".
    f, machine = _replayed_layer(monkeypatch, RuntimeError("a bug in the setup_data reader"))
    with pytest.raises(RuntimeError, match="a bug in the setup_data reader"):
        chain._boot_layer(2, 10.0, machine, _Stream(), None, f, start=0.0)
    assert f.ram_error is None and machine.answers == []


def test_a_bug_is_not_read_as_qemus_exit(tmp_path, monkeypatch):
    """QEMU gone when a bug is raised: the old code read any exception as QEMU's exit (a
    fault of the layer); a bug now goes up, while the stub's complaint still is that exit."""
    monkeypatch.setattr(channel, "KILLED_GRACE", 0.0, raising=False)
    scenario = load_scenario(ROOT / "scenarios" / "kexec-file-2.yaml")

    def boot(raised: BaseException) -> list[LayerFacts]:
        machine = Machine("qemu-system-x86_64", [], tmp_path)
        machine.exit_code = 0
        machine.qemu_log_path.write_text("qemu-system-x86_64: terminating on signal 15 from pid 4242 (bash)\n")
        monkeypatch.setattr(machine, "wait_exit", lambda timeout: 0)
        monkeypatch.setattr(machine, "read_agent", lambda wait: b"", raising=False)

        class Watch:
            def first_hop(self, f):
                raise raised

            def close(self):
                pass
        monkeypatch.setattr(chain, "_watch", lambda scenario, machine, outdir: Watch())
        facts = [LayerFacts(index=layer.index, loader=layer.loader) for layer in scenario.layers]
        chain.boot_chain(scenario, machine, facts, tmp_path, lambda message: None)
        return facts

    with pytest.raises(KeyError):
        boot(KeyError("a bug in the watch"))
    facts = boot(QemuError("QEMU's gdbstub did not answer: the stub closed the connection"))
    assert facts[0].fault == "qemu-killed"


def _qemu_processes(folder: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line]


@pytest.mark.vm
def test_a_bug_during_a_real_run_exits_125_with_its_traceback_kept(tmp_path, monkeypatch, capsys):
    """A real boot of qemu-only whose setup_data reader has a bug: no verdict, exit 125,
    result.json carries the error, error.log the traceback, and QEMU is gone."""
    previous = signal.getsignal(signal.SIGTERM)          # cli.main installs its own
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)   # as at a terminal

    def broken(machine, head, arch=None):
        raise RuntimeError("a bug in the setup_data reader")
    monkeypatch.setattr(chain, "read_setup_data", broken)
    out = tmp_path / "out"
    try:
        status = cli.main(["run", str(ROOT / "scenarios" / "qemu-only.yaml"), "--artifacts", str(out)])
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    err = capsys.readouterr().err
    assert status == 125, err
    assert "seedchain: internal error" in err and "RuntimeError: a bug in the setup_data reader" in err
    folder = out / "qemu-only"
    result = json.loads((folder / "result.json").read_text())
    assert result["error"] == "could not run: a bug in seedchain: RuntimeError: a bug in the setup_data reader"
    assert result["passed"] is False and result["layers"] == []
    log = (folder / "error.log").read_text()
    assert log.startswith("Traceback") and "in broken" in log and "a bug in the setup_data reader" in log
    assert f"the traceback is kept in {folder / 'error.log'}" in err
    assert (folder / "console.log").stat().st_size > 0
    assert not _qemu_processes(tmp_path), "QEMU left running"
