# SPDX-License-Identifier: GPL-2.0-only
"""Shared bits of the benchmarks: the machine's state, statistics, tables, JSON output."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._env import ROOT

DEFAULT_ARTIFACTS = Path("/tmp/bench-artifacts")
_STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    elapsed = int(time.monotonic() - _STARTED)
    print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    """User + system CPU of this process and of its waited-for children (QEMU, once it
    has exited). Differences around a boot: a companion to wall time that other
    load on the machine inflates far less."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def other_qemus() -> int:
    """QEMU processes running now that this process did not start."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0]
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"qemu-system" in argv0 and parent != os.getpid():
            count += 1
    return count


def machine_state() -> dict:
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg_1min": loadavg(),
            "other_qemu_processes": other_qemus()}


def host_info() -> dict:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "qemu": run("qemu-system-x86_64", "--version").splitlines()[0:1],
            "git_head": run("git", "rev-parse", "--short", "HEAD"),
            "git_dirty": bool(run("git", "status", "--porcelain", "--untracked-files=no"))}


def stats(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "min": None, "median": None, "max": None}
    return {"n": len(values), "min": min(values), "median": statistics.median(values), "max": max(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
