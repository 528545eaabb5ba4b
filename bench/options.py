# SPDX-License-Identifier: GPL-2.0-only
"""Sections 4 and 5: pytest -n 2 against -n 1, and candidate options against the defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench._env import ROOT
from bench.common import (fmt, ratio, say, stats, table)
from bench.overhead import plain_once, prepare
from bench.context import GOAL_PARALLEL, OPTIONS_SCENARIO, Context, Results


# ---------------------------------------------------------------- 4: parallel

def bench_parallel(ctx: Context, repeat: int, select: str | None) -> None:
    section = ctx.results.setdefault("parallel", {"n1": [], "n2": [], "select": select})
    python = Path(sys.executable)
    for rep in range(repeat):
        for workers in ((2, 1) if rep % 2 == 0 else (1, 2)):
            artifacts = ctx.artifacts / "parallel" / f"rep{rep + 1}" / f"n{workers}"
            argv = [str(python), "-m", "pytest", "scenarios/", "-n", str(workers), "-q",
                    "-p", "no:cacheprovider", "--artifacts", str(artifacts),
                    "--seedchain-cache", str(ctx.cache.root), *(["-k", select] if select else [])]
            say(f"parallel {rep + 1}/{repeat}: pytest -n {workers} (minutes)")
            t = time.monotonic()
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            seconds = time.monotonic() - t
            tail = proc.stdout.strip().splitlines()[-1:] or [""]
            section[f"n{workers}"].append({"seconds": seconds, "exit_code": proc.returncode,
                                           "summary": tail[0]})
            say(f"parallel -n {workers}: {seconds:.0f} s, exit {proc.returncode}: {tail[0]}")
            ctx.save()


def report_parallel(ctx: Results) -> str:
    d = ctx.results["parallel"]
    n1, n2 = stats([r["seconds"] for r in d["n1"]]), stats([r["seconds"] for r in d["n2"]])
    speedup = ratio(n1["median"], n2["median"])
    d["speedup_median"] = speedup
    rows = [["-n 1", fmt(n1["min"], 0), fmt(n1["median"], 0), "; ".join(r["summary"] for r in d["n1"])],
            ["-n 2", fmt(n2["min"], 0), fmt(n2["median"], 0), "; ".join(r["summary"] for r in d["n2"])]]
    goal = "n/a" if speedup is None else ("met" if speedup >= GOAL_PARALLEL else "not met")
    return "\n".join([f"4. Parallel: pytest scenarios/ wall seconds; speed-up n1/n2 = {fmt(speedup, 2)} "
                      f"(goal >= {GOAL_PARALLEL}: {goal})",
                      table(["workers", "min s", "median s", "pytest said"], rows)])


# ---------------------------------------------------------------- 5: options

# (label, group, codec, extra kernel command line, -machine or None for the scenario's)
VARIANTS = [
    ("default", "", "none", "", None),
    ("initrd gzip", "compression", "gzip", "", None),
    ("initrd xz", "compression", "xz", "", None),
    ("initrd zstd", "compression", "zstd", "", None),
    ("initrd lz4", "compression", "lz4", "", None),
    ("console quiet", "console", "none", "quiet", None),
    ("console loglevel=1", "console", "none", "loglevel=1", None),
    ("machine pc", "machine", "none", "", "pc"),
]
GROUP_DEFAULT = {"compression": "none (uncompressed cpio)", "console": "default verbosity",
                 "machine": "q35 (the scenario's)"}


def bench_options(ctx: Context) -> None:
    section = ctx.results.setdefault("options", {"scenario": OPTIONS_SCENARIO, "variants": {}})
    chains, base = {}, None
    for label, group, codec, extra, machine in VARIANTS:
        say(f"options: preparing '{label}'")
        p = prepare(ctx, OPTIONS_SCENARIO, codec=codec, extra_cmdline=extra)
        base = base or p
        chains[label] = p.chain
        section["variants"][label] = {
            "group": group, "codec": codec, "cmdline": extra, "machine": machine or p.scenario.qemu.machine,
            "outer_initrd_bytes": p.chain[0].bytes, "outer_initrd_raw_bytes": p.chain[0].raw_bytes,
            "compress_seconds": sum(layer.compress_seconds for layer in p.chain), "runs": []}
    assert base is not None                             # VARIANTS is not empty
    labels = [v[0] for v in VARIANTS]
    for rep in range(ctx.repeat):
        shift = rep % len(labels)                       # rotate, so no variant always runs first
        for label in labels[shift:] + labels[:shift]:
            machine = next(v[4] for v in VARIANTS if v[0] == label)
            workdir = ctx.artifacts / "options" / f"rep{rep + 1}" / re.sub(r"[^a-z0-9]+", "-", label)
            sample = plain_once(ctx, base, workdir, machine=machine, chain=chains[label])
            section["variants"][label]["runs"].append(sample)
            say(f"options {rep + 1}/{ctx.repeat} {label}: {sample['seconds']:.1f} s"
                + ("" if sample["ok"] else f" (does not count: {sample['problem']})"))
            ctx.save()
    summarize_options(section)
    ctx.save()


def _spread(values: list[float]) -> float | None:
    """How far a typical run lies above the best one: 2 (median - min) / median. Unlike
    max - min, one run stretched by other load does not make it meaningless."""
    s = stats(values)
    return 2 * (s["median"] - s["min"]) / s["median"] if s["n"] >= 2 else None


def summarize_options(section: dict) -> None:
    default_runs = [r for r in section["variants"]["default"]["runs"]]
    d = stats([r["seconds"] for r in default_runs if r["ok"]])
    dc = stats([r["cpu"] for r in default_runs if r["ok"]])
    # Noise: the default's own spread; a ratio closer to 1 than that decides nothing.
    section["default_spread"] = _spread([r["seconds"] for r in default_runs if r["ok"]])
    section["default_cpu_spread"] = _spread([r["cpu"] for r in default_runs if r["ok"]])
    for v in section["variants"].values():
        s = stats([r["seconds"] for r in v["runs"] if r["ok"]])
        c = stats([r["cpu"] for r in v["runs"] if r["ok"]])
        paired = [ratio(r["seconds"], b["seconds"]) for r, b in zip(v["runs"], default_runs, strict=False)
                  if r["ok"] and b["ok"]]
        v["summary"] = {**s, "ratio_median": ratio(s["median"], d["median"]),
                        "ratio_min": ratio(s["min"], d["min"]), "paired_ratios": paired,
                        "cpu": c, "cpu_ratio_median": ratio(c["median"], dc["median"]),
                        "cpu_ratio_min": ratio(c["min"], dc["min"])}


def report_options(ctx: Results) -> str:
    section = ctx.results["options"]
    variants = section["variants"]
    noise, cpu_noise = section.get("default_spread"), section.get("default_cpu_spread")
    wall_tie, cpu_tie = max(0.03, noise or 0.0), max(0.03, cpu_noise or 0.0)
    rows = []
    for label, v in variants.items():
        s, c = v["summary"], v["summary"]["cpu"]
        rows.append([label, v["group"] or "-", f"{fmt(s['min'], 1)} / {fmt(s['median'], 1)}",
                     f"{fmt(s['ratio_min'], 3)} / {fmt(s['ratio_median'], 3)}",
                     f"{fmt(c['min'], 1)} / {fmt(c['median'], 1)}",
                     f"{fmt(s['cpu_ratio_min'], 3)} / {fmt(s['cpu_ratio_median'], 3)}",
                     fmt(v["outer_initrd_bytes"] / 1e6, 1), fmt(v["compress_seconds"], 1)])
    single = noise is None
    lines = [f"5. Options on {section['scenario']}, plain QEMU (baseline style); ratio = option / default "
             "(uncompressed initramfs, default console, q35), < 1 is faster; min / median of each",
             table(["variant", "group", "wall s", "wall ratio", "CPU s", "CPU ratio",
                    "layer-1 initrd MB", "host compress s"], rows),
             "   noise (the default's spread, 2(median-min)/median): wall "
             f"{fmt(noise * 100 if noise is not None else None, 1, '%')}, CPU "
             f"{fmt(cpu_noise * 100 if cpu_noise is not None else None, 1, '%')}"
             + (" (one run each, so unknown: use --repeat >= 3)" if single else "")
             + f"; a win needs both min ratios below 1: wall < {1 - wall_tie:.3f} and CPU < {1 - cpu_tie:.3f}"]
    verdicts = {}
    for group, default_label in GROUP_DEFAULT.items():
        members = [(label, v["summary"]["ratio_min"], v["summary"]["cpu_ratio_min"])
                   for label, v in variants.items()
                   if v["group"] == group and v["summary"]["ratio_min"] is not None]
        if not members:
            continue
        members = [(label, r, r if c is None else c) for label, r, c in members]
        best, r, c = min(members, key=lambda m: m[1] + m[2])
        numbers = f"min ratios: wall {r:.3f}, CPU {c:.3f}"
        if r < 1 - wall_tie and c < 1 - cpu_tie:
            verdict = f"{best} wins ({numbers})"
        elif all(mr > 1 + wall_tie and mc > 1 + cpu_tie for _, mr, mc in members):
            verdict = f"{default_label} wins: every option is slower (best {best}: {numbers})"
        else:
            verdict = f"no clear winner: best is {best} ({numbers}); keep {default_label}"
        verdicts[group] = verdict + (" [single run: indicative only]" if single else "")
        lines.append(f"   {group}: {verdicts[group]}")
    section["verdicts"] = verdicts
    return "\n".join(lines)
