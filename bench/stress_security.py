# SPDX-License-Identifier: GPL-2.0-only
"""Stress, security section: real runs while another local user races for what they guard.

Each run is `seedchain run` of a copy of the scenario with the RAM search on (so its
QEMU has a RAM file on tmpfs), its artifacts in a folder every user may enter (as /tmp
is). All the while a forked child that dropped to uid/gid 65534 (nobody, no groups)
tries, round after round, as fast as it can:

  ram        the run's RAM file on tmpfs (harness.boot.chain.ram_file, and the name an
             older seedchain gave it, /dev/shm/seedchain-TAG.ram): open it, read a byte
  gdbstub    connect to the run folder's gdb.sock
  artifacts  list the run folder; read result.json, layer-N.json, console.log,
             agent.log, qemu.log there

Counted per kind: attempts (tries that were refused or worked; one that found nothing
there yet is not counted) and successes. The goal is 0 successes, with every run still
passing. The gdbstub is raced on its Unix socket only: an older seedchain's TCP port was
chosen by QEMU and is not raced here. Being another user needs root: not as root the
section says so and counts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench._env import ROOT
from bench.common import say, table
from harness.boot.chain import ram_file
from harness.boot.ram import shm_folder
from harness.facts import ledger

NOBODY = 65534
KINDS = ("ram", "gdbstub", "artifacts")
NAME = "security-stress"
ARTIFACT_FILES = ("result.json", "layer-1.json", "layer-2.json", "console.log", "agent.log", "qemu.log")


def _try(action) -> bool | None:
    """True: it worked; False: refused; None: nothing there to try."""
    try:
        action()
        return True
    except FileNotFoundError:
        return None
    except (ConnectionRefusedError, NotADirectoryError):
        return None                 # a socket nobody listens on (yet): no way in, no attempt
    except OSError:
        return False


def _read(path: str) -> None:
    with open(path, "rb") as f:
        f.read(1)


def _connect(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        s.connect(path)


def ram_paths(outdir: Path) -> list[str]:
    """Where the run's RAM file is, and where an older seedchain put it (only this run's:
    other users' runs on the machine are not raced)."""
    tag = hashlib.sha256(str(outdir.resolve()).encode()).hexdigest()[:16]
    return [str(ram_file(outdir)), f"{shm_folder()}/seedchain-{tag}.ram"]


def _round(outdir: str, rams: list[str], counts: dict) -> None:
    artifacts: list[Callable[[], object]] = [partial(os.listdir, outdir)]
    artifacts += [partial(_read, f"{outdir}/{n}") for n in ARTIFACT_FILES]
    tries: dict[str, list[Callable[[], object]]] = {"ram": [partial(_read, r) for r in rams],
                                                     "gdbstub": [partial(_connect, f"{outdir}/gdb.sock")],
                                                     "artifacts": artifacts}
    for kind, actions in tries.items():
        for action in actions:
            got = _try(action)
            if got is not None:
                counts[kind]["attempts"] += 1
                counts[kind]["successes"] += got


def _racer(outdir: Path, rams: list[str], stop: int, report: int) -> None:
    """The other user's loop, in a forked child, until `stop` becomes readable."""
    counts = {kind: {"attempts": 0, "successes": 0} for kind in KINDS}
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        while not select.select([stop], [], [], 0)[0]:
            _round(str(outdir), rams, counts)
            time.sleep(0.002)
        os.write(report, json.dumps(counts).encode())
    finally:
        os._exit(0)


def _one(number: int, scenario: Path, shared: Path, env: dict) -> dict:
    outdir = shared / "out" / NAME
    rams = ram_paths(outdir)
    stop_read, stop_write = os.pipe()
    report_read, report_write = os.pipe()
    racer = os.fork()
    if racer == 0:
        os.close(stop_write)
        os.close(report_read)
        _racer(outdir, rams, stop_read, report_write)
    os.close(stop_read)
    os.close(report_write)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "--artifacts",
                           str(shared / "out")], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - started
    os.close(stop_write)                    # the racer stops at its next round
    with os.fdopen(report_read, "rb") as got:
        counts = json.loads(got.read() or b"{}")
    os.waitpid(racer, 0)
    say(f"security run {number}: exit {proc.returncode} in {seconds:.0f} s; "
        + ", ".join(f"{k} {v['successes']}/{v['attempts']}" for k, v in counts.items()))
    return {"run": number, "exit_status": proc.returncode, "seconds": round(seconds, 1),
            "traceback": "Traceback" in proc.stderr, "counts": counts}


def run(runs: int, base: Path, env: dict) -> dict:
    """`runs` real runs of a copy of `base`, each raced by the other user."""
    if os.geteuid() != 0:
        return {"runs": 0, "error": "not root: cannot become another user to race the runs"}
    shared = Path(tempfile.mkdtemp(prefix="security-", dir="/tmp"))   # short: sockets nest below
    os.chmod(shared, 0o755)
    (shared / "out").mkdir(mode=0o755)      # the user's own artifacts folder, open to all
    os.chmod(shared / "out", 0o755)
    scenario = shared / f"{NAME}.yaml"
    text = base.read_text()
    original = next(line for line in text.splitlines() if line.startswith("name:"))
    scenario.write_text(text.replace(original, f"name: {NAME}", 1) + "\ncapture: {ram_search: true}\n")
    cache = Path(env.get("SEEDCHAIN_CACHE") or Path.home() / ".cache" / "seedchain")
    try:
        results = [_one(number, scenario, shared, env) for number in range(1, runs + 1)]
    finally:
        ledger.clear(cache, NAME)
        subprocess.run(["rm", "-rf", str(shared)], check=False)
    return {"runs": runs, "scenario": str(base), "results": results}


def summarize(data: dict) -> dict:
    totals = {kind: {"attempts": 0, "successes": 0} for kind in KINDS}
    for r in data.get("results", []):
        for kind in KINDS:
            for key in ("attempts", "successes"):
                totals[kind][key] += r["counts"].get(kind, {}).get(key, 0)
    return {"runs": len(data.get("results", [])), "totals": totals,
            "successes": sum(t["successes"] for t in totals.values()),
            "attempts": sum(t["attempts"] for t in totals.values()),
            "not_passed": sum(1 for r in data.get("results", []) if r["exit_status"] != 0),
            "tracebacks": sum(1 for r in data.get("results", []) if r["traceback"])}


def report(data: dict, summary: dict) -> str:
    if data.get("error"):
        return f"Security: {data['error']}"
    rows = [[kind, t["attempts"], t["successes"]] for kind, t in summary["totals"].items()]
    return "\n".join([
        f"Security: {summary['runs']} runs of {Path(data['scenario']).stem} (RAM search on) raced by uid "
        f"{NOBODY}; runs not passing: {summary['not_passed']}, tracebacks: {summary['tracebacks']}",
        table(["target", "attempts", "successes"], rows),
        f"successes by the other user: {summary['successes']} of {summary['attempts']} attempts"])
