# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain run -j N`: N scenarios at once, each in a process of its own; progress lines
prefixed by the scenario, verdict tables at the end in the order given, the worst exit
status; an interrupt stops every run, which unwinds and keeps its logs.

No QEMU here: pipeline.run is replaced by stand-ins (inherited by the forked workers),
judged over recorded runs or holding a `sleep` where a run holds its QEMU.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from harness import cli, jobs, pipeline
from harness.proc import signals_as_at_a_terminal
from test_bisect import BAD, GOOD, replayed, write_chain

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sigterm_kept():
    """cli.main installs its SIGTERM handler; put pytest's back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def chains(tmp_path: Path, children: dict[str, str]) -> list[str]:
    """A scenario file per name, its layer 2 running that child kernel."""
    files = []
    for name, child in children.items():
        (tmp_path / name).mkdir()
        files.append(str(write_chain(tmp_path / name, name, child)))
    return files


def timed(log: Path, seconds: dict[str, float]):
    """A pipeline.run that takes its scenario's time and writes down when and where it ran."""
    def run(scenario, *, cache, artifacts, progress):
        started = time.monotonic()
        progress(f"{scenario.name}: building images")
        time.sleep(seconds[scenario.name])
        progress("layer 2: booted")
        (log / f"{scenario.name}.ran").write_text(f"{os.getpid()} {started} {time.monotonic()}")
        return replayed(scenario)
    return run


def ran(log: Path) -> dict[str, tuple[int, float, float]]:
    return {p.stem: _ran_line(p.read_text()) for p in log.glob("*.ran")}


def _ran_line(text: str) -> tuple[int, float, float]:
    """(pid, started, ended) as timed() wrote them."""
    pid, started, ended = text.split()
    return int(pid), float(started), float(ended)


def test_tables_come_in_the_order_given_whatever_order_the_runs_end(tmp_path, monkeypatch, capsys, sigterm_kept):
    monkeypatch.setattr(pipeline, "run", timed(tmp_path, {"slow": 3.0, "middle": 2.0, "quick": 1.0}))
    files = chains(tmp_path, {"slow": GOOD, "middle": BAD, "quick": GOOD})
    assert cli.main(["run", "-j", "3", *files, "--artifacts", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    progress, tables = out.split("\n\n", 1)
    # Progress: a line per step, each prefixed by its scenario; the runs end quick first.
    lines = progress.splitlines()
    assert all(re.match(r"(slow  |middle|quick ) \| \S", line) for line in lines), lines
    assert "slow   | building images" in lines and "middle | layer 2: booted" in lines
    ends = [line for line in lines if re.search(r"\| (PASS|FAIL) \(", line)]
    assert [line.split()[0] for line in ends] == ["quick", "middle", "slow"]
    # The tables: in the order given, after every progress line.
    heads = re.findall(r"^(\w+): (PASS|FAIL)  \(", tables, re.M)
    assert heads == [("slow", "PASS"), ("middle", "FAIL"), ("quick", "PASS")]
    assert tables.rstrip().endswith("2 passed, 1 failed")
    # Each in a process of its own, all three at once.
    runs = ran(tmp_path)
    assert len({pid for pid, _, _ in runs.values()} | {os.getpid()}) == 4
    assert max(start for _, start, _ in runs.values()) < min(end for _, _, end in runs.values())


def test_never_more_than_n_at_once(tmp_path, monkeypatch, capsys, sigterm_kept):
    monkeypatch.setattr(pipeline, "run", timed(tmp_path, {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5}))
    files = chains(tmp_path, dict.fromkeys("abcd", GOOD))
    assert cli.main(["run", "-j", "2", *files, "--artifacts", str(tmp_path / "out")]) == 0
    spans = sorted((start, end) for _, start, end in ran(tmp_path).values())
    assert len(spans) == 4
    for moment, _ in spans:
        assert sum(start <= moment < end for start, end in spans) <= 2
    assert re.findall(r"^(\w): PASS", capsys.readouterr().out, re.M) == list("abcd")


def test_the_worst_status_and_what_could_not_run(tmp_path, monkeypatch, capsys, sigterm_kept):
    def run(scenario, **kwargs):
        if scenario.name == "crashes":
            raise RuntimeError("a bug in the stand-in")
        if scenario.name == "vanishes":
            os._exit(3)                             # as a process the OOM killer took
        return replayed(scenario)
    monkeypatch.setattr(pipeline, "run", run)
    files = chains(tmp_path, {"fine": GOOD, "untestable": "debian:trixie/6.12", "crashes": GOOD,
                              "vanishes": GOOD})
    assert cli.main(["run", "-j", "4", *files, "--artifacts", str(tmp_path / "out"),
                     "--json", str(tmp_path / "all.json")]) == 125
    out, err = capsys.readouterr()
    assert "fine       | PASS" in out and "untestable | could not be run (error, see below)" in out
    assert "crashes    | could not be run (a bug in seedchain, see below)" in out
    assert out.rstrip().endswith("1 passed, 0 failed, 3 could not be run")
    assert "seedchain: error: layer 2: no package for debian:trixie/6.12" in err
    assert "RuntimeError: a bug in the stand-in" in err and "seedchain: internal error" in err
    assert "vanishes: the process running it ended without a result (exit status 3)" in err
    data = json.loads((tmp_path / "all.json").read_text())
    assert [(d["id"], d["passed"], bool(d["error"])) for d in data] == [
        ("fine", True, False), ("untestable", False, True), ("crashes", False, True), ("vanishes", False, True)]


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_j_wants_a_positive_number(tmp_path, capsys, sigterm_kept, value):
    files = chains(tmp_path, {"one": GOOD})
    assert cli.main(["run", "-j", value, *files]) == 125
    assert f"argument -j/--jobs: {value!r}: give the number of scenarios to boot at once (1 or more)" \
        in capsys.readouterr().err


def test_one_scenario_twice_at_once_is_refused(tmp_path, capsys, sigterm_kept):
    files = chains(tmp_path, {"one": GOOD})
    assert cli.main(["run", "-j", "2", files[0], files[0]]) == 125
    err = capsys.readouterr().err
    assert err.startswith("seedchain: error: -j: scenario one is given twice") and "same artifacts folder" in err


def test_more_jobs_than_scenarios_and_j1_run_here(tmp_path, monkeypatch, capsys, sigterm_kept):
    pids = []
    monkeypatch.setattr(pipeline, "run", lambda scenario, **kw: pids.append(os.getpid()) or replayed(scenario))
    files = chains(tmp_path, {"one": GOOD})
    assert cli.main(["run", "-j", "8", *files, "--artifacts", str(tmp_path / "out")]) == 0
    assert pids == [os.getpid()]                    # one scenario: no worker process needed
    assert capsys.readouterr().out.startswith("one: PASS")


# ---------------------------------------------------------------- interrupting

STAND_IN = """\
import os, subprocess, sys, time
sys.path.insert(0, {root!r})
from harness import cli, pipeline
from harness.proc import die_with_parent

def run(scenario, *, cache, artifacts, progress):
    out = artifacts / scenario.slug
    out.mkdir(parents=True, exist_ok=True)
    qemu = None
    try:
        qemu = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent,   # stands in for QEMU
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (out / "pids").write_text(f"{{os.getpid()}} {{qemu.pid}}")
        progress(f"{{scenario.name}}: QEMU started")
        while True:
            time.sleep(0.05)
    finally:                                   # as the real run quits QEMU and saves its facts
        if qemu is not None:
            qemu.terminate()
            qemu.wait()
        (out / "console.log").write_text("kept")

pipeline.run = run
sys.exit(cli.main(sys.argv[1:]))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _start_stand_in(tmp_path, jobs: int):
    """`seedchain run -j JOBS` over three good chains, with the stand-in for QEMU, in a
    process group of its own (as a terminal's job); (the process, its artifacts folder)."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN.format(root=str(ROOT)))
    files = chains(tmp_path, {"a": GOOD, "b": GOOD, "c": GOOD})
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(script), "run", "-j", str(jobs), *files, "--artifacts", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=signals_as_at_a_terminal)
    return proc, out


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigkill"])
def test_an_interrupt_stops_every_run_and_keeps_its_logs(tmp_path, how):
    proc, out = _start_stand_in(tmp_path, jobs=2)
    pids: list[int] = []
    try:
        assert _until(lambda: len(list(out.glob("*/pids"))) == 2, 30), "the two runs did not start"
        time.sleep(0.3)
        pids = [int(p) for f in out.glob("*/pids") for p in f.read_text().split()]
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)      # the terminal signals the whole group
        elif how == "sigterm":
            proc.terminate()                        # only the parent: it stops the workers
        else:
            proc.kill()                             # the parent dies: PR_SET_PDEATHSIG stops the workers
        stdout, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr
        if how == "sigkill":
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 130, stderr
            assert stderr.rstrip().endswith("seedchain: interrupted; QEMU stopped, logs kept")
        assert _until(lambda: not any(map(_alive, pids)), 20), [p for p in pids if _alive(p)]
        started = sorted(p.parent.name for p in out.glob("*/pids"))
        assert len(started) == 2                    # the third was never started
        assert all((out / name / "console.log").read_text() == "kept" for name in started)
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def test_a_stop_dropped_where_python_cannot_raise_is_raised_again():
    # As in an at-fork hook around a Popen: the KeyboardInterrupt goes to sys.unraisablehook.
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        dropped = types.SimpleNamespace(exc_type=KeyboardInterrupt, exc_value=exc, exc_traceback=None,
                                        err_msg=None, object=None)
    default = sys.unraisablehook
    with pytest.raises(KeyboardInterrupt):
        with jobs._stops_kept():
            sys.unraisablehook(dropped)
            time.sleep(2)
    assert sys.unraisablehook is default


def test_a_worker_takes_a_second_signal_as_nothing():
    # The first SIGTERM unwinds the run; a second must not cut the unwinding short.
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, jobs._stop_once)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert signal.getsignal(signal.SIGTERM) == jobs._ignored
        os.kill(os.getpid(), signal.SIGTERM)     # arrives, and nothing happens
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_early_interrupt_while_workers_are_forked(tmp_path, how, delay):
    # Anywhere from the parent's start to the workers' first steps: no traceback, 130, nothing left.
    proc, out = _start_stand_in(tmp_path, jobs=3)
    try:
        _until(lambda: out.exists(), 10)           # the parent is past its imports
        time.sleep(delay)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    pids = [int(p) for f in out.glob("*/pids") for p in f.read_text().split()]
    assert _until(lambda: not any(map(_alive, pids)), 20)
    for f in out.glob("*/pids"):
        assert (f.parent / "console.log").read_text() == "kept"
