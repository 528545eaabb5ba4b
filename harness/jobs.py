# SPDX-License-Identifier: GPL-2.0-only
"""Several scenarios in one command (`seedchain run -j N`): each run in a process of its own.

A run starts QEMU, which dies with the thread that started it (PR_SET_PDEATHSIG), and
unwinds on SIGINT or SIGTERM through KeyboardInterrupt, quitting QEMU and saving its
facts on the way; so it wants a process and a main thread of its own, as each
pytest-xdist worker gives the scenarios it runs. Here a worker process is forked per
scenario, at most N at a time. It sends its progress lines, then its result, its error
or that it was interrupted, back over a pipe; the caller gets them as they come and the
outcomes in the order the scenarios were given.

Stopping: Ctrl-C reaches every process of the terminal's process group; workers ignore
SIGINT and leave it to the parent, which sends each a SIGTERM, as it does when it gets
a SIGTERM itself; if the parent dies, PR_SET_PDEATHSIG sends them one. A worker acts on
the first SIGTERM only, so a second cannot cut its unwinding short. One still running
STOP_GRACE seconds later is killed, and its QEMU dies with it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import cast
from pathlib import Path

from harness import pipeline
from harness.checks.verdict import RunResult
from harness.errors import SeedchainError
from harness.images.cache import Cache
from harness.proc import die_with_parent
from harness.scenario.model import Scenario

STOP_GRACE = 30.0       # seconds a worker has to quit QEMU and save its logs after a stop signal
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass
class Outcome:
    """How one scenario's run ended: a result (judged), an error (it could not be run:
    the SeedchainError's message), a crash (a bug in seedchain: the traceback), or interrupted."""

    scenario: Scenario
    result: RunResult | None = None
    error: str | None = None
    crash: str | None = None
    interrupted: bool = False


Progress = Callable[[Scenario, str], None]
Done = Callable[[int, Outcome], None]     # (the scenario's place in the list given, its outcome)


def run_all(scenarios: Sequence[Scenario], *, jobs: int, cache: Cache, artifacts: Path,
            progress: Progress, done: Done) -> list[Outcome]:
    """Run every scenario, `jobs` at a time (1: one after another in this process).
    `done` is called as each finishes; KeyboardInterrupt stops them all and propagates."""
    if jobs > 1 and len(scenarios) > 1:
        return _parallel(scenarios, jobs, cache, artifacts, progress, done)
    outcomes: list[Outcome] = []
    with _stops_kept():
        for scenario in scenarios:
            outcomes.append(_run_one(scenario, cache, artifacts, lambda m, s=scenario: progress(s, m)))
            done(len(outcomes) - 1, outcomes[-1])
    return outcomes


def _run_one(scenario: Scenario, cache: Cache, artifacts: Path, progress) -> Outcome:
    """One run here; an interrupt is not caught (the caller decides what it stops)."""
    try:
        return Outcome(scenario, result=pipeline.run(scenario, cache=cache, artifacts=artifacts,
                                                     progress=progress))
    except SeedchainError as exc:
        return Outcome(scenario, error=str(exc))
    except Exception:
        return Outcome(scenario, crash=traceback.format_exc())


@contextmanager
def _stops_kept():
    """A KeyboardInterrupt a signal handler raises where Python cannot raise it (an at-fork
    hook, which runs around every start of a subprocess with a preexec_fn, as QEMU's) is
    printed as "Exception ignored" and dropped: the stop would be lost. Here it is raised
    again a moment later, in whatever runs then (again, if that too cannot raise it)."""
    installer, default = os.getpid(), sys.unraisablehook

    def hook(unraisable) -> None:
        if not (unraisable.exc_type and issubclass(unraisable.exc_type, KeyboardInterrupt)):
            default(unraisable)
        elif os.getpid() == installer:          # not in a child about to exec
            try:
                signal.signal(signal.SIGALRM, _raise_again)
                signal.setitimer(signal.ITIMER_REAL, 0.05)
            except ValueError:                  # not the main thread: nothing to re-raise there
                default(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.unraisablehook = default


def _raise_again(signum, frame):
    raise KeyboardInterrupt


# ---------------------------------------------------------------- in worker processes

def _stop_once(signum, frame):
    signal.signal(signal.SIGTERM, _ignored)
    raise KeyboardInterrupt


def _ignored(signum, frame):
    """A handler that does nothing. Not SIG_IGN: a signal already on its way when the
    handler changes would then surface as an OSError ("ignored due to race condition")."""


def _send(conn: Connection, kind: str, value) -> None:
    try:
        conn.send((kind, value))
    except OSError:
        pass            # the parent is gone: the run goes on to its end, or to its SIGTERM


def _worker(scenario: Scenario, cache: Cache, artifacts: Path, conn: Connection, parent: int) -> None:
    # Ctrl-C is the parent's to act on (it reaches the whole process group, and the parent
    # then sends each worker a SIGTERM); ignored here, it never reaches Python code of
    # this process or of a child between its fork and exec.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_once)
    die_with_parent(signal.SIGTERM)
    outcome = Outcome(scenario, interrupted=True)
    try:
        try:
            with _stops_kept():
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)    # blocked by the parent across fork
                if os.getppid() == parent:                               # else it died before prctl
                    outcome = _run_one(scenario, cache, artifacts, lambda m: _send(conn, "progress", m))
        finally:
            signal.signal(signal.SIGTERM, _ignored)
            signal.signal(signal.SIGALRM, _ignored)
    except KeyboardInterrupt:
        outcome = Outcome(scenario, interrupted=True)
    _send(conn, "outcome", outcome)
    conn.close()


# ---------------------------------------------------------------- in the parent

def _parallel(scenarios, jobs, cache, artifacts, progress: Progress, done: Done) -> list[Outcome]:
    context = multiprocessing.get_context("fork")   # the scenarios, cache and callbacks as they are
    waiting = list(enumerate(scenarios))
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]] = {}
    outcomes: list[Outcome | None] = [None] * len(scenarios)
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                index, scenario = waiting.pop(0)
                receive, send = context.Pipe(duplex=False)
                worker: multiprocessing.process.BaseProcess = context.Process(
                    target=_worker, name=f"seedchain {scenario.id}",
                    args=(scenario, cache, artifacts, send, os.getpid()))
                # Blocked across the fork: a worker takes a stop signal only once it can
                # unwind, and the parent only once it knows the worker to stop.
                sys.stdout.flush()              # else the worker writes what is buffered again
                sys.stderr.flush()
                signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
                try:
                    worker.start()
                    send.close()
                    running[receive] = (index, worker)
                finally:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            for conn in _ready(running):
                index, worker = running[conn]
                outcome = _receive(conn, scenarios[index], worker, progress)
                if outcome is not None:
                    del running[conn]
                    outcomes[index] = outcome
                    done(index, outcome)
    except KeyboardInterrupt:
        _stop(running, scenarios, progress, done)
        raise
    return [outcome for outcome in outcomes if outcome is not None]     # all are, once none runs


def _ready(running: dict[Connection, tuple], timeout: float | None = None) -> list[Connection]:
    """The workers' ends of the pipes that have a message (or were closed)."""
    return cast(list[Connection], wait(list(running), timeout=timeout))


def _receive(conn: Connection, scenario: Scenario, worker, progress: Progress) -> Outcome | None:
    """Act on one message of a worker; its Outcome once it has ended, else None."""
    try:
        kind, value = conn.recv()
    except EOFError:
        kind, value = "outcome", None
    if kind == "progress":
        progress(scenario, value)
        return None
    conn.close()
    worker.join()
    if value is None:
        value = Outcome(scenario, error=f"{scenario.id}: the process running it ended without a "
                                        f"result (exit status {worker.exitcode})")
    return value


def _stop(running, scenarios, progress: Progress, done: Done) -> None:
    """Stop every worker: SIGTERM, their last messages read while they unwind, SIGKILL
    for any still there after STOP_GRACE seconds. A second Ctrl-C meanwhile is ignored."""
    previous = {sig: signal.signal(sig, _ignored) for sig in _SIGNALS}
    try:
        for _, worker in running.values():
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while running and time.monotonic() < deadline:
            for conn in _ready(running, timeout=max(0.0, deadline - time.monotonic())):
                index, worker = running[conn]
                outcome = _receive(conn, scenarios[index], worker, progress)
                if outcome is not None:
                    del running[conn]
                    if not outcome.interrupted:
                        done(index, outcome)    # it ended just before the stop reached it
        for conn, (_, worker) in running.items():
            worker.kill()
            worker.join()
            conn.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
