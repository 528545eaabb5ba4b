# SPDX-License-Identifier: GPL-2.0-only
"""Interrupting real runs at random moments leaves nothing behind and keeps the logs."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.proc import signals_as_at_a_terminal

ROOT = Path(__file__).parent.parent
RUNS = int(os.environ.get("SEEDCHAIN_INTERRUPT_RUNS", "8"))


def _leftovers(folder: Path) -> list[str]:
    """QEMU or bubblewrap processes of this test's runs, by their artifact folder."""
    out = subprocess.run(["pgrep", "-af", "qemu-system|bwrap"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line]


@pytest.mark.vm
def test_random_interruptions_leave_no_process(seedchain, tmp_path):
    rng = random.Random(int(os.environ.get("SEEDCHAIN_INTERRUPT_SEED", "0")) or None)
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    left = []
    kept_logs = 0
    for attempt in range(RUNS):
        artifacts = tmp_path / f"run{attempt}"
        sig = signals[attempt % len(signals)]
        delay = rng.uniform(0.5, 14.0)      # anywhere from image checks to layer 2's boot
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", "scenarios/kexec-file-2.yaml",
             "--artifacts", str(artifacts)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root)}, preexec_fn=signals_as_at_a_terminal)
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        time.sleep(0.5)                      # PR_SET_PDEATHSIG is delivered asynchronously
        leftovers = _leftovers(artifacts)
        left += leftovers
        assert b"Traceback" not in err, err.decode()
        if proc.returncode == 0:
            continue                         # the run finished before the signal
        if sig != signal.SIGKILL:
            assert proc.returncode == 130, (sig, proc.returncode, err.decode())
            assert b"interrupted" in err
        folder = artifacts / "kexec-file-2"
        if (folder / "qemu-cmdline.txt").exists():          # QEMU had been started
            console = folder / "console.log"
            assert console.exists(), "console log lost"
            kept_logs += console.stat().st_size > 0
            if sig != signal.SIGKILL:                       # an orderly unwind saves the facts
                assert (folder / "layer-1.json").exists()
    assert left == [], f"{len(left)} processes left over {RUNS} interrupted runs: {left}"
    assert kept_logs, "no run was interrupted while QEMU was writing its console"


def _until_none_left(folder: Path, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _leftovers(folder)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.vm
def test_interrupting_parallel_runs_stops_every_qemu(seedchain, tmp_path):
    """`run -j 2` stopped at random moments: Ctrl-C (the terminal signals the whole process
    group), SIGTERM to seedchain, or seedchain killed (its workers then get SIGTERM through
    PR_SET_PDEATHSIG). No QEMU is left, and every run whose QEMU had started kept its console."""
    rng = random.Random(int(os.environ.get("SEEDCHAIN_INTERRUPT_SEED", "0")) or None)
    hows = ["ctrl-c", "sigterm", "sigkill"]
    left = []
    interrupted = 0
    for attempt in range(max(RUNS, 3)):
        artifacts = tmp_path / f"run{attempt}"
        how = hows[attempt % len(hows)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", "-j", "2", "scenarios/kexec-file-2.yaml",
             "scenarios/kexec-load.yaml", "--artifacts", str(artifacts)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env={**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root)}, preexec_fn=signals_as_at_a_terminal)
        time.sleep(rng.uniform(0.5, 20.0))
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        elif how == "sigterm":
            proc.terminate()
        else:
            proc.kill()
        out, err = proc.communicate(timeout=120)
        left += _until_none_left(artifacts, 45)
        assert b"Traceback" not in err, err.decode()
        if proc.returncode in (0, 1):
            continue                                 # both runs ended before the signal
        interrupted += 1
        if how != "sigkill":
            assert proc.returncode == 130, (how, proc.returncode, err.decode())
            assert b"interrupted" in err
        for name in ("kexec-file-2", "kexec-load"):
            folder = artifacts / name
            if (folder / "qemu-cmdline.txt").exists():
                assert (folder / "console.log").exists(), f"{how}: {name}'s console log lost"
                # After SIGKILL the workers unwind on their own, maybe still saving the facts.
                deadline = time.monotonic() + 30
                while not (folder / "layer-1.json").exists() and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert (folder / "layer-1.json").exists(), f"{how}: {name} did not unwind"
    assert left == [], f"{len(left)} processes left over: {left}"
    assert interrupted, "no attempt was interrupted while running"


@pytest.mark.vm
def test_a_qmp_command_cut_short_leaves_no_task_behind(tmp_path, caplog):
    """Ctrl-C while a QMP command waits for its answer (QEMU stopped, so it never comes),
    then QEMU gone (Ctrl-C reaches the whole process group): closing the machine must not
    leave asyncio a task whose exception nobody took, which it prints as a traceback
    when the task is collected."""
    import gc
    import logging
    from harness.arch.x86_64 import find_qemu
    from harness.boot.qemu import Machine

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    machine = Machine(find_qemu("system"), ["-nodefaults", "-display", "none", "-S"], tmp_path)
    previous = signal.signal(signal.SIGALRM, interrupt)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    try:
        machine.start()
        assert machine.qmp.cmd("query-status")["status"] == "prelaunch"
        os.kill(machine.proc.pid, signal.SIGSTOP)            # QEMU cannot answer now
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            machine.qmp.cmd("query-status")
        os.kill(machine.proc.pid, signal.SIGKILL)            # as Ctrl-C to the process group
        machine.close()
        assert machine.exit_code is not None                 # QEMU went
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if machine.proc is not None and machine.proc.poll() is None:
            machine.proc.kill()
    del machine
    gc.collect()
    unretrieved = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unretrieved == []
