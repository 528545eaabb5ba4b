# SPDX-License-Identifier: GPL-2.0-only
"""Stress, interrupt section: real runs stopped at random moments, and what each leaves.

Each run is `seedchain run SCENARIO` or `pytest -n 2 SCENARIO`, started in a session of its
own with a marker in its environment (every process of the run inherits it, so its QEMU,
bubblewrap and pytest workers are found in /proc whatever their command line) and a
private TMPDIR. It gets SIGINT (to its process group, as a terminal's Ctrl-C), SIGTERM or
SIGKILL (to the first process) at a moment drawn uniformly over the target's usual span,
measured first by one uninterrupted run of each target. Then, after a grace for the
process tree to exit, the leftovers are counted by kind:

  qemu, bwrap, process   live processes with the run's marker
  ram                    the run's guest-RAM folders on tmpfs (harness.boot.chain.ram_folder)
  socket                 sockets in the run's artifacts folder
  cache-temp             temporary build folders new in the image cache whose builder is gone
  tmp                    entries left in the run's TMPDIR, but for pytest's own base folder
  pytest-basetemp        pytest-of-USER in it: pytest keeps the newest three of these by
                         design (tmp_path_retention_count), so it is shown, not a leftover

and counted again after what the next run does first (harness.pipeline.prepare_artifacts
on the same folder and Cache.sweep): files a SIGKILLed process cannot remove are expected
right after it; what the next run does not sweep is a leftover. Then anything still there
is removed (processes killed) so the next run starts clean; in the image cache, which
other users may share, only Cache.sweep removes anything.

Beside the leftovers: tracebacks, hangs, and false verdicts: a run stopped before it finished
that exits 1 (bisect's "bad", pytest's "failed") or leaves a result.json that says the guest
failed without naming an error of its own. The process tree has TREE_GRACE (2 s) to go.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench._env import ROOT
from bench.common import say, table
from harness import pipeline
from harness.boot.chain import ram_folder
from harness.boot.ram import remove_folder as remove_ram_folder
from harness.facts import ledger
from harness.images.cache import Cache
from harness.scenario.load import load_scenario
from harness.proc import signals_as_at_a_terminal

TARGETS = ("seedchain", "pytest")
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
PROCESS_KINDS = ("qemu", "bwrap", "process")
FILE_KINDS = ("ram", "socket", "cache-temp", "tmp")
KEPT_BY_DESIGN = "pytest-basetemp"
MARKER = "SEEDCHAIN_STRESS_RUN"
EXIT_GRACE = 60.0       # a stopped run unwinds (quits QEMU, saves its logs) within this
TREE_GRACE = 2.0        # then its processes have this long to be gone


def stress_scenario(base: Path, folder: Path) -> Path:
    """A copy of `base` under its own name with the RAM search on, so a run has a RAM file on
    tmpfs to leave, and its seeds go to a ledger of its own (cleared at the end)."""
    scenario = load_scenario(base)
    text = base.read_text().replace(f"name: {scenario.name}", f"name: stress-{scenario.name}", 1)
    if "capture:" not in text:
        text += "capture: {ram_search: true}\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stress-{base.name}"
    path.write_text(text)
    return path


def command(target: str, scenario: Path, artifacts: Path) -> list[str]:
    if target == "seedchain":
        return [sys.executable, "-m", "harness.cli", "run", str(scenario), "--artifacts", str(artifacts)]
    # the scenario is a copy outside the checkout, where conftest.py is not read: the plugin is asked for
    return [sys.executable, "-m", "pytest", "-p", "harness.pytest_session", "-n", "2", str(scenario),
            "--artifacts", str(artifacts), "-p", "no:cacheprovider", "-q"]


def marked(tag: str) -> dict[int, str]:
    """pid -> kind of every live (not zombie) process whose environment holds the marker."""
    found = {}
    needle = f"{MARKER}={tag}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except (OSError, IndexError):
            continue
        name = os.path.basename(argv0)
        found[int(proc.name)] = ("qemu" if name.startswith("qemu-system") else
                                 "bwrap" if name == "bwrap" else "process")
    return found


def cache_temporaries(root: Path) -> set[Path]:
    """Temporary build folders in the cache whose builder is gone (its entry's lock is free).
    Other users of a shared cache may be building now: their folders are locked, so they are
    neither counted nor touched."""
    dead = set()
    for tmp in root.glob("*/.*.tmp-*") if root.is_dir() else ():
        lock = tmp.parent / f"{tmp.name[1:].split('.tmp-', 1)[0]}.lock"
        try:
            with open(lock, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            continue                        # a live builder's
        except OSError:
            pass                            # no lock file: nobody can be building it
        dead.add(tmp)
    return dead


def files_left(outdir: Path, tmpdir: Path, cache_root: Path, cache_before: set[Path]) -> dict[str, list[Path]]:
    rams = [ram_folder(f) for f in (outdir, *outdir.glob("boot-*"))] if outdir.is_dir() else [ram_folder(outdir)]
    return {"ram": [r for r in rams if r.exists()],
            "socket": [p for p in outdir.rglob("*") if p.is_socket()] if outdir.is_dir() else [],
            "cache-temp": sorted(cache_temporaries(cache_root) - cache_before),
            "tmp": sorted(p for p in tmpdir.iterdir() if not p.name.startswith("pytest-of-"))
                   if tmpdir.is_dir() else []}


def pytest_basetemps(tmpdir: Path) -> int:
    return sum(1 for p in tmpdir.glob("pytest-of-*/pytest-*") if not p.is_symlink())



def measure_span(target: str, scenario: Path, folder: Path, env: dict) -> float:
    started = time.monotonic()
    run = subprocess.run(command(target, scenario, folder / f"span-{target}"), cwd=ROOT, env=env,
                         stdin=subprocess.DEVNULL, preexec_fn=signals_as_at_a_terminal, capture_output=True,
                         text=True, timeout=900)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"stress: the uninterrupted {target} run failed (exit status {run.returncode}); "
                         f"its output:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return seconds


def _failed_verdict(path: Path) -> bool:
    """A result.json that says the guest failed (passed false, no error of its own)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and result.get("passed") is False and not result.get("error")


def one_run(number: int, target: str, signame: str, delay: float, scenario, folder: Path,
            cache: Cache, env: dict) -> dict:
    tag = f"{os.getpid()}-{number}"
    artifacts = folder / target             # one folder per target: each run sweeps the last one's
    outdir = artifacts / scenario.slug
    tmpdir = folder / "tmp" / tag
    tmpdir.mkdir(parents=True)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    cache_before = cache_temporaries(cache.root)
    with open(logs / f"{number}.out", "w") as out, open(logs / f"{number}.err", "w+") as err:
        proc = subprocess.Popen(command(target, Path(scenario.path), artifacts), cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                                env={**env, MARKER: tag, "TMPDIR": str(tmpdir)}, preexec_fn=signals_as_at_a_terminal)
        try:
            return _stop_and_count(proc, number, target, signame, delay, tag, artifacts, outdir, tmpdir,
                                   scenario, cache, cache_before, err)
        except BaseException:
            for pid in marked(tag):                 # the stress run itself is stopped: leave nothing
                os.kill(pid, signal.SIGKILL)
            raise


def _stop_and_count(proc, number, target, signame, delay, tag, artifacts, outdir, tmpdir, scenario, cache,
                    cache_before, err) -> dict:
    """Signal the run at `delay`, wait for it and its processes, count, sweep, count, clean up."""
    started = time.monotonic()
    finished_first = False
    try:
        proc.wait(delay)
        finished_first = True
    except subprocess.TimeoutExpired:
        if signame == "SIGINT":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(SIGNALS[signame])
    hung = False
    try:
        proc.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        hung = True
        proc.kill()
        proc.wait()
    exited = time.monotonic() - started
    deadline = time.monotonic() + TREE_GRACE
    while (alive := marked(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    err.seek(0)
    traceback = "Traceback (most recent call last)" in err.read()
    processes = {kind: sum(1 for k in alive.values() if k == kind) for kind in PROCESS_KINDS}
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    left = files_left(outdir, tmpdir, cache.root, cache_before)
    qemu_started = (outdir / "qemu-cmdline.txt").exists()
    # A run stopped before it finished must not pass judgement on the guest: exit 1 (bisect's
    # "bad", pytest's "failed") or a result that says "failed" without an error is a false verdict.
    false_verdict = not finished_first and (proc.returncode == 1 or _failed_verdict(outdir / "result.json"))
    # What the next run does before it starts QEMU; a run that started none left no folder.
    if outdir.exists():
        pipeline.prepare_artifacts(scenario, artifacts)
    cache.sweep()
    after = files_left(outdir, tmpdir, cache.root, cache_before)
    basetemps = pytest_basetemps(tmpdir)
    for folder in after["ram"]:
        remove_ram_folder(folder)           # only a RAM folder seedchain made (its mark, this user's)
    for path in [p for kind, paths in after.items() if kind not in ("cache-temp", "ram") for p in paths]:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    shutil.rmtree(tmpdir, ignore_errors=True)
    return {"run": number, "target": target, "signal": signame, "delay": round(delay, 2),
            "finished_before_signal": finished_first, "exit_status": proc.returncode,
            "seconds_to_exit": round(exited, 2), "qemu_started": qemu_started, "hung": hung, "traceback": traceback,
            "false_verdict": false_verdict,
            "processes": processes, "files": {k: len(v) for k, v in left.items()},
            "files_after_sweep": {k: len(v) for k, v in after.items()}, KEPT_BY_DESIGN: basetemps,
            "names": {k: [str(p) for p in v] for k, v in after.items() if v}}


def run(count: int, seed: int, base: Path, folder: Path, budget: float | None, env: dict,
        plan: list[tuple[str, str]] | None = None) -> dict:
    """`count` interrupted runs (fewer if `budget` seconds run out); the results by run.
    `plan` fixes each run's (target, signal) instead of drawing them."""
    rng = random.Random(seed)
    cache = Cache(Path(env["SEEDCHAIN_CACHE"]) if env.get("SEEDCHAIN_CACHE") else None)
    path = stress_scenario(base, folder)
    scenario = load_scenario(path)
    started = time.monotonic()
    spans = {}
    for target in sorted({t for t, _ in plan} if plan else TARGETS):
        say(f"interrupts: timing one uninterrupted {target} run of {scenario.name}")
        spans[target] = measure_span(target, path, folder, env)
        say(f"interrupts: {target} takes {spans[target]:.1f} s")
    runs = []
    try:
        for number in range(1, count + 1):
            if budget is not None and time.monotonic() - started > budget:
                say(f"interrupts: the {budget:.0f} s budget is spent after {number - 1} runs")
                break
            target, signame = plan[number - 1] if plan else (rng.choice(TARGETS), rng.choice(list(SIGNALS)))
            delay = rng.uniform(0, spans[target])
            result = one_run(number, target, signame, delay, scenario, folder, cache, env)
            runs.append(result)
            left = sum(result["processes"].values()) + sum(result["files_after_sweep"].values())
            say(f"interrupt {number}/{count}: {target} {signame} at {delay:.1f} s -> exit "
                f"{result['exit_status']}" + ("" if not left else f"  <- {left} LEFT OVER"))
    finally:
        ledger.clear(cache.root, scenario.name)
    return {"seed": seed, "scenario": scenario.name, "spans": spans, "runs": runs}


def summarize(data: dict) -> dict:
    runs = data["runs"]
    cells = {}
    for target in TARGETS:
        for signame in SIGNALS:
            mine = [r for r in runs if r["target"] == target and r["signal"] == signame]
            cells[f"{target} {signame}"] = {
                "runs": len(mine), "interrupted": sum(not r["finished_before_signal"] for r in mine),
                **{kind: sum(r["processes"][kind] for r in mine) for kind in PROCESS_KINDS},
                **{kind: sum(r["files"][kind] for r in mine) for kind in FILE_KINDS},
                **{f"{kind} after sweep": sum(r["files_after_sweep"][kind] for r in mine) for kind in FILE_KINDS},
                KEPT_BY_DESIGN: sum(r[KEPT_BY_DESIGN] for r in mine),
                "exit_statuses": {str(e): sum(r["exit_status"] == e for r in mine)
                                  for e in sorted({r["exit_status"] for r in mine})},
                "hung": sum(r["hung"] for r in mine), "traceback": sum(r["traceback"] for r in mine),
                "false verdicts": sum(r.get("false_verdict", False) for r in mine)}
    leftovers = sum(c[k] for c in cells.values() for k in PROCESS_KINDS) + sum(
        c[f"{k} after sweep"] for c in cells.values() for k in FILE_KINDS)
    return {"cells": cells, "runs": len(runs), "leftovers": leftovers,
            "false_verdicts": sum(c["false verdicts"] for c in cells.values()),
            "tracebacks": sum(c["traceback"] for c in cells.values())}


def report(data: dict, summary: dict) -> str:
    heads = ["target signal", "runs", "stopped", *PROCESS_KINDS, *FILE_KINDS, KEPT_BY_DESIGN, "hung", "traceback",
             "false verdicts", "exit statuses (runs)"]
    rows = [[name, c["runs"], c["interrupted"], *(c[k] for k in PROCESS_KINDS),
             *(f"{c[k]}>{c[k + ' after sweep']}" for k in FILE_KINDS), c[KEPT_BY_DESIGN], c["hung"], c["traceback"],
             c["false verdicts"],
             " ".join(f"{e}({n})" for e, n in c["exit_statuses"].items()) or "-"]
            for name, c in summary["cells"].items()]
    spans = ", ".join(f"{t} {s:.1f} s" for t, s in data["spans"].items())
    return "\n".join([
        f"Interrupts: {summary['runs']} runs of {data['scenario']} (seed {data['seed']}; usual span: {spans}). "
        "Processes left after the grace; files: left right after the run > left after the next run's sweep",
        table(heads, rows),
        f"leftovers (processes, and files the next run does not sweep): {summary['leftovers']}"])
