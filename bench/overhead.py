# SPDX-License-Identifier: GPL-2.0-only
"""Sections 1 and 2: the harness against a bare QEMU + kexec chain, and each layer against its kernel's own time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench import baseline
from bench.common import (cpu_seconds, fmt, ratio, say, stats,
                          table)
from harness.boot.chain import LOADER_TIMEOUT, choose_accel
from harness.errors import SeedchainError
from harness.images import qemu_builds
from harness.images.initramfs import LayerImage, build_chain
from harness.pipeline import run
from harness.scenario.model import Scenario
from bench.context import GOAL_OVERHEAD, Context, Results, layer_timings, scenario


# ---------------------------------------------------------------- 1 + 2: overhead

@dataclass
class Prepared:
    scenario: Scenario
    images: list[LayerImage]
    chain: list[baseline.PlainLayer]
    build: qemu_builds.QemuBuild
    accel: str
    timeout: float


def prepare(ctx: Context, name: str, *, codec: str = "none", extra_cmdline: str = "") -> Prepared:
    s = scenario(name)
    images = build_chain(s, ctx.cache)
    chain = baseline.build_plain_chain(images, ctx.bench_cache, codec=codec, extra_cmdline=extra_cmdline)
    build = qemu_builds.resolve(s.qemu.build, ctx.cache)
    accel = choose_accel(s.qemu.accel, build, images[0].kernel.path, ctx.cache, ctx.artifacts / "accel")
    timeout = sum(layer.timeout for layer in s.layers) + LOADER_TIMEOUT * (len(s.layers) - 1) + 60
    return Prepared(s, images, chain, build, accel, timeout)


def harness_once(ctx: Context, s: Scenario, workdir: Path) -> dict:
    cpu, started = cpu_seconds(), time.monotonic()
    try:
        result = run(s, cache=ctx.cache, artifacts=workdir)
    except SeedchainError as exc:          # a set-up problem: this run does not count
        return {"seconds": None, "cpu": None, "passed": False, "error": str(exc), "layers": []}
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu
    return {"seconds": wall, "cpu": cpu, "result_seconds": result.seconds, "passed": result.passed,
            "accel": result.accel, "artifacts": result.artifacts,
            "layers": layer_timings(Path(result.artifacts))}


def plain_once(ctx: Context, p: Prepared, workdir: Path, machine: str | None = None,
               chain: list[baseline.PlainLayer] | None = None) -> dict:
    cpu = cpu_seconds()
    r = baseline.boot_plain(chain or p.chain, p.scenario.qemu, accel=p.accel, build=p.build,
                            cache_root=ctx.cache.root, workdir=workdir, machine=machine,
                            timeout=p.timeout)
    return {**r.to_json(), "cpu": cpu_seconds() - cpu}


def bench_overhead(ctx: Context) -> None:
    section = ctx.results.setdefault("overhead", {})
    prepared = {}
    for name in ctx.scenarios:
        say(f"overhead: preparing {name} (warm harness images, baseline images)")
        prepared[name] = p = prepare(ctx, name)
        section[name] = {"accel": p.accel, "harness": [], "baseline": [],
                         "baseline_initrd_bytes": p.chain[0].bytes}
    for rep in range(ctx.repeat):
        for name in ctx.scenarios:
            p = prepared[name]
            order = ("harness", "baseline") if rep % 2 == 0 else ("baseline", "harness")
            for kind in order:
                workdir = ctx.artifacts / "overhead" / f"rep{rep + 1}" / kind
                if kind == "harness":
                    sample = harness_once(ctx, p.scenario, workdir)
                    note = "" if sample["passed"] else " (verdict FAIL)"
                else:
                    sample = plain_once(ctx, p, workdir / name)
                    note = "" if sample["ok"] else f" (does not count: {sample['problem']})"
                section[name][kind].append(sample)
                say(f"overhead {rep + 1}/{ctx.repeat} {name} {kind}: {fmt(sample['seconds'], 1)} s{note}"
                    + (f" (error: {sample['error']})" if sample.get("error") else ""))
                ctx.save()
    summarize_overhead(section)
    ctx.save()


def summarize_overhead(section: dict) -> None:
    for data in section.values():
        h = stats([s["seconds"] for s in data["harness"]])
        b = stats([s["seconds"] for s in data["baseline"] if s["ok"]])
        hc = stats([s["cpu"] for s in data["harness"]])
        bc = stats([s["cpu"] for s in data["baseline"] if s["ok"]])
        paired = [ratio(hs["seconds"], bs["seconds"]) for hs, bs in zip(data["harness"], data["baseline"], strict=False)
                  if bs["ok"]]
        data["summary"] = {"harness": h, "baseline": b, "ratio_min": ratio(h["min"], b["min"]),
                           "ratio_median": ratio(h["median"], b["median"]), "paired_ratios": paired,
                           "harness_cpu": hc, "baseline_cpu": bc,
                           "cpu_ratio_min": ratio(hc["min"], bc["min"]),
                           "cpu_ratio_median": ratio(hc["median"], bc["median"]),
                           "harness_verdicts_failed": sum(not s["passed"] for s in data["harness"])}


def report_overhead(ctx: Results) -> str:
    section = ctx.results["overhead"]
    rows = []
    for name in section:
        s = section[name]["summary"]
        r = s["ratio_median"]
        goal = "n/a" if r is None else ("met" if r <= GOAL_OVERHEAD else "not met")
        rows.append([name, f"{fmt(s['harness']['min'], 1)} / {fmt(s['harness']['median'], 1)}",
                     f"{fmt(s['baseline']['min'], 1)} / {fmt(s['baseline']['median'], 1)}",
                     fmt(s["ratio_min"], 3), fmt(s["ratio_median"], 3), goal,
                     f"{fmt(s['harness_cpu']['min'], 1)} / {fmt(s['harness_cpu']['median'], 1)}",
                     f"{fmt(s['baseline_cpu']['min'], 1)} / {fmt(s['baseline_cpu']['median'], 1)}",
                     f"{fmt(s['cpu_ratio_min'], 3)} / {fmt(s['cpu_ratio_median'], 3)}",
                     f"{s['harness']['n']}" + (f" ({s['harness_verdicts_failed']} FAIL)"
                                               if s["harness_verdicts_failed"] else "")])
    out = ["1. Harness vs bare baseline (wall seconds, min / median; ratio = harness / baseline, "
           f"goal <= {GOAL_OVERHEAD})",
           table(["scenario", "harness s", "baseline s", "ratio(min)", "ratio(median)", "goal",
                  "harness CPU s", "baseline CPU s", "CPU ratio", "runs"], rows),
           "   CPU = user+system seconds of QEMU and this process, min / median: other load stretches "
           "it far less than wall time"]
    rows = []
    for name in section:
        runs = section[name]["harness"]
        for i in range(max((len(r["layers"]) for r in runs), default=0)):
            layer = [r["layers"][i] for r in runs if i < len(r["layers"])]

            def median(key, layer=layer):
                return stats([x.get(key) for x in layer])["median"]
            wall, init, started = median("seconds"), median("run_init"), median("agent_started")
            rest = wall - init if wall is not None and init is not None else None
            rest_share = ratio(rest, wall)
            assert rest is None or rest_share is not None   # rest comes with a wall, never of 0 s
            rows.append([name, str(i + 1), fmt(wall, 1), fmt(init, 1), fmt(ratio(wall, init), 2),
                         fmt(median("entry"), 2), fmt(median("pre_clock"), 2),
                         fmt(started - init if started is not None and init is not None else None, 2),
                         fmt(median("report"), 2), fmt(median("host"), 2), fmt(median("load"), 2),
                         fmt(median("fetch"), 2), fmt(median("kexec_l"), 2),
                         fmt(rest_share * 100 if rest_share is not None else None, 0, "%")])
    out += ["",
            "2. Per layer (harness runs, medians): wall = hand-over to the end of its report "
            "(layer-N.json seconds); kernel = 'Run /init' on its dmesg clock;\n"
            "   where the rest goes (host clock, the runner's steps): entry = to the stop at the kernel's "
            "entry (firmware, or kexec -e + purgatory),\n"
            "   pre-clock = from there to the kernel's clock starting (the decompressor), init = /init to "
            "the agent, report = the report on the wire,\n"
            "   host = RAM reads before go; load = fetching and kexec -l of the next layer (after the "
            "report, so outside wall),\n"
            "   of it on the guest's clock: fetch = the copy off the chain disk with its sha256 check, "
            "kexec -l = the loader itself",
            table(["scenario", "layer", "wall s", "kernel s", "wall/kernel", "entry s", "pre-clock s",
                   "init s", "report s", "host s", "load s", "fetch s", "kexec -l s", "rest share"], rows)]
    return "\n".join(out)
