#!/usr/bin/env python3
"""seedchain benchmarks: ratios against baselines measured in the same run.

    python bench/run.py [--quick] [--repeat N] [--json OUT] [--parallel] [--only SECTIONS]

Sections (see bench/README.md for what each number means):
  overhead  harness vs a bare baseline (same kernels and userland, plain QEMU,
            minimal /init), kexec-file-2 and kexec-file-4; plus, from the same
            harness runs, each layer's wall time vs its kernel's time to /init
  build     harness.images.build_chain, warm and cold
  options   on a 2-layer chain, baseline style: initramfs compression, console
            verbosity, -machine pc vs q35, each vs the current default
  parallel  pytest scenarios/ -n 2 vs -n 1 (only with --parallel: takes many minutes)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._env import ensure_python  # noqa: E402

ensure_python()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from bench import baseline  # noqa: E402
from bench._env import ROOT  # noqa: E402
from bench.common import (DEFAULT_ARTIFACTS, cpu_seconds, fmt, host_info, machine_state,  # noqa: E402
                          ratio, say, stats, table, write_json)
from harness.images import debian, qemu_builds  # noqa: E402
from harness.images.cache import Cache  # noqa: E402
from harness.errors import SeedchainError  # noqa: E402
from harness.images.initramfs import LayerImage, build_chain  # noqa: E402
from harness.scenario.model import Scenario  # noqa: E402
from harness.boot.chain import LOADER_TIMEOUT, choose_accel  # noqa: E402
from harness.pipeline import run  # noqa: E402
from harness.scenario.load import load_scenario  # noqa: E402

OVERHEAD_SCENARIOS = ("kexec-file-2", "kexec-file-4")
OPTIONS_SCENARIO = "kexec-file-2"
SECTIONS = ("overhead", "build", "options", "parallel")
GOAL_OVERHEAD = 1.05
GOAL_WARM_BUILD = 0.5
GOAL_PARALLEL = 1.8

_TS = r"^\[\s*(\d+\.\d+)\] "
_RUN_INIT = re.compile(_TS + r"Run /init as init process", re.M)
_UNPACK_START = re.compile(_TS + r"Trying to unpack rootfs image as initramfs", re.M)
_UNPACK_END = re.compile(_TS + r"Freeing initrd memory", re.M)


@dataclass
class Context:
    cache: Cache
    artifacts: Path
    bench_cache: Cache
    repeat: int
    results: dict
    json_path: Path
    scenarios: tuple[str, ...] = OVERHEAD_SCENARIOS    # for sections 1-3

    def save(self) -> None:
        write_json(self.json_path, self.results)


def scenario(name: str) -> Scenario:
    return load_scenario(ROOT / "scenarios" / f"{name}.yaml")


def dmesg_times(dmesg: str) -> dict:
    """Kernel timestamps (seconds since the kernel's clock started) of the boot's milestones."""
    def first(pattern: re.Pattern) -> float | None:
        m = pattern.search(dmesg)
        return float(m[1]) if m else None
    start, end = first(_UNPACK_START), first(_UNPACK_END)
    return {"run_init": first(_RUN_INIT),
            "unpack": end - start if start is not None and end is not None else None}


def layer_timings(outdir: Path) -> list[dict]:
    """Per layer, from the harness's facts: wall seconds and the kernel's own milestones."""
    layers = []
    for path in sorted(outdir.glob("layer-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        facts = json.loads(path.read_text())
        dmesg = ((facts.get("report") or {}).get("fields") or {}).get("dmesg", "")
        layers.append({"index": facts["index"], "seconds": facts.get("seconds") or None,
                       "fault": facts.get("fault"), **dmesg_times(dmesg)})
    return layers


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


def harness_once(ctx: Context, p: Prepared, workdir: Path) -> dict:
    cpu, started = cpu_seconds(), time.monotonic()
    try:
        result = run(p.scenario, cache=ctx.cache, artifacts=workdir)
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
                    sample = harness_once(ctx, p, workdir)
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
        paired = [ratio(hs["seconds"], bs["seconds"]) for hs, bs in zip(data["harness"], data["baseline"])
                  if bs["ok"]]
        data["summary"] = {"harness": h, "baseline": b, "ratio_min": ratio(h["min"], b["min"]),
                           "ratio_median": ratio(h["median"], b["median"]), "paired_ratios": paired,
                           "harness_cpu": hc, "baseline_cpu": bc,
                           "cpu_ratio_min": ratio(hc["min"], bc["min"]),
                           "cpu_ratio_median": ratio(hc["median"], bc["median"]),
                           "harness_verdicts_failed": sum(not s["passed"] for s in data["harness"])}


def report_overhead(ctx: Context) -> str:
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
            wall = stats([x["seconds"] for x in layer])["median"]
            init = stats([x["run_init"] for x in layer])["median"]
            unpack = stats([x["unpack"] for x in layer])["median"]
            rest = wall - init if wall is not None and init is not None else None
            rows.append([name, str(i + 1), fmt(wall, 1), fmt(init, 1), fmt(unpack, 2), fmt(rest, 1),
                         fmt(ratio(rest, wall) * 100 if rest is not None else None, 0, "%")])
    out += ["",
            "2. Per layer (harness runs, medians): wall = layer-N.json seconds; kernel->/init = "
            "'Run /init' timestamp in that layer's dmesg;\n"
            "   rest = wall - kernel->/init: firmware or kexec -e + purgatory, kernel decompression, "
            "agent until its report (unpack is inside kernel->/init)",
            table(["scenario", "layer", "wall s", "kernel->/init s", "unpack s", "rest s", "rest share"], rows)]
    return "\n".join(out)


# ---------------------------------------------------------------- 3: image building

class InitrdOnlyCold(Cache):
    """The shared cache for kernels, userlands and package lists; initramfs entries go
    to a fresh, empty folder, so every one of them is built."""

    def __init__(self, shared: Cache, fresh: Path):
        super().__init__(shared.root)
        self.fresh = Cache(fresh)

    def build(self, kind, key, builder):
        if kind == "initrd":
            return self.fresh.build(kind, key, builder)
        return super().build(kind, key, builder)


class NetworkClock:
    """Times the harness's network steps (apt-get update, apt-get download) while active."""

    def __init__(self):
        self.lists = 0.0
        self.downloads = 0.0

    def __enter__(self):
        self._ensure, self._download = debian.Apt.ensure_lists, debian._download
        clock = self

        def ensure_lists(apt, *a, **k):
            t = time.monotonic()
            try:
                return clock._ensure(apt, *a, **k)
            finally:
                clock.lists += time.monotonic() - t

        def download(*a, **k):
            t = time.monotonic()
            try:
                return clock._download(*a, **k)
            finally:
                clock.downloads += time.monotonic() - t
        debian.Apt.ensure_lists, debian._download = ensure_lists, download
        return self

    def __exit__(self, *exc):
        debian.Apt.ensure_lists, debian._download = self._ensure, self._download


def bench_build(ctx: Context, cold_network: bool) -> None:
    section = ctx.results.setdefault("build", {})
    scratch = ctx.artifacts / "build-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    n = max(3, ctx.repeat)
    for name in ctx.scenarios:
        s = scenario(name)
        data = section[name] = {"warm": [], "cold_initrd": [], "cold_network": None}
        build_chain(s, ctx.cache)                       # warm-up: nothing timed is built
        for i in range(n):
            t = time.monotonic()
            build_chain(s, ctx.cache)
            data["warm"].append(time.monotonic() - t)
        say(f"build {name}: warm {min(data['warm']):.3f} s (min of {n})")
        for i in range(max(1, ctx.repeat)):
            fresh = Path(tempfile.mkdtemp(prefix="cold-initrd-", dir=scratch))
            try:
                t = time.monotonic()
                images = build_chain(s, InitrdOnlyCold(ctx.cache, fresh))
                data["cold_initrd"].append(time.monotonic() - t)
                data["initrd_bytes"] = sum(img.initrd.stat().st_size for img in images)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
            say(f"build {name}: cold (initramfs only) {data['cold_initrd'][-1]:.2f} s")
        if cold_network:
            fresh = Path(tempfile.mkdtemp(prefix="cold-all-", dir=scratch))
            try:
                with NetworkClock() as clock:
                    t = time.monotonic()
                    build_chain(s, Cache(fresh))
                    total = time.monotonic() - t
                data["cold_network"] = {"seconds": total, "package_lists": clock.lists,
                                        "downloads": clock.downloads,
                                        "rest": total - clock.lists - clock.downloads}
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
            say(f"build {name}: cold (empty cache) {total:.1f} s, of which lists {clock.lists:.1f} s, "
                f"downloads {clock.downloads:.1f} s")
        ctx.save()
    shutil.rmtree(scratch, ignore_errors=True)


def report_build(ctx: Context) -> str:
    rows = []
    for name, d in ctx.results["build"].items():
        warm, cold = stats(d["warm"]), stats(d["cold_initrd"])
        net = d.get("cold_network")
        rows.append([name, f"{fmt(warm['min'], 3)} / {fmt(warm['median'], 3)}",
                     "met" if warm["median"] is not None and warm["median"] < GOAL_WARM_BUILD else "not met",
                     f"{fmt(cold['min'], 2)} / {fmt(cold['median'], 2)}",
                     fmt(ratio(cold["median"], warm["median"]), 1, "x"),
                     fmt(d.get("initrd_bytes", 0) / 1e6, 1),
                     "not run (--cold-network)" if not net else
                     f"{net['seconds']:.1f} (lists {net['package_lists']:.1f}, downloads "
                     f"{net['downloads']:.1f}, rest {net['rest']:.1f})"])
    return "\n".join([
        "3. Image building: harness.images.build_chain (seconds, min / median)\n"
        f"   warm = everything cached (goal < {GOAL_WARM_BUILD} s); cold = initramfs entries built "
        "anew, kernels/userland/package lists from the cache;\n"
        "   empty cache = a fresh SEEDCHAIN_CACHE, Debian lists and .debs downloaded",
        table(["scenario", "warm s", "goal", "cold s", "cold/warm", "initrds MB", "empty cache s"], rows)])


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


def report_parallel(ctx: Context) -> str:
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
        paired = [ratio(r["seconds"], b["seconds"]) for r, b in zip(v["runs"], default_runs)
                  if r["ok"] and b["ok"]]
        v["summary"] = {**s, "ratio_median": ratio(s["median"], d["median"]),
                        "ratio_min": ratio(s["min"], d["min"]), "paired_ratios": paired,
                        "cpu": c, "cpu_ratio_median": ratio(c["median"], dc["median"]),
                        "cpu_ratio_min": ratio(c["min"], dc["min"])}


def report_options(ctx: Context) -> str:
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


# ---------------------------------------------------------------- main

REPORTS = {"overhead": (summarize_overhead, report_overhead), "build": (None, report_build),
           "options": (summarize_options, report_options), "parallel": (None, report_parallel)}


def reprint(path: Path) -> int:
    """The tables of a results file (summaries computed again from its raw runs)."""
    results = json.loads(path.read_text())
    ctx = Context(cache=None, artifacts=path.parent, bench_cache=None, repeat=0, results=results,
                  json_path=path)
    for name in SECTIONS:
        if name in results:
            summarize, report = REPORTS[name]
            if summarize:
                summarize(results[name])
            print("\n" + report(ctx) + "\n")
    start, end = results.get("machine_at_start", {}), results.get("machine_at_end", {})
    print(f"Measured {start.get('time', '?')}; load (1 min) {start.get('loadavg_1min', '?')} at start, "
          f"{end.get('loadavg_1min', '?')} at end; other QEMU processes "
          f"{start.get('other_qemu_processes', '?')} / {end.get('other_qemu_processes', '?')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="one run of everything (--repeat 1)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per measurement (default 3; --quick 1)")
    ap.add_argument("--json", type=Path, default=None, help="results file (default: ARTIFACTS/bench.json)")
    ap.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                    help="logs of every boot, baseline images (default: %(default)s)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="the harness's image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}")
    ap.add_argument("--scenarios", default=",".join(OVERHEAD_SCENARIOS),
                    help="comma-separated scenarios for sections 1-3 (default: %(default)s)")
    ap.add_argument("--parallel", action="store_true", help="also run section 4 (pytest -n 2 vs -n 1)")
    ap.add_argument("--parallel-repeat", type=int, default=1, help="runs of each pytest (default 1)")
    ap.add_argument("--parallel-k", default=None, metavar="EXPR",
                    help="only the scenarios pytest -k EXPR selects (default: all of scenarios/)")
    ap.add_argument("--cold-network", action="store_true",
                    help="also build each scenario into an empty cache (downloads ~hundreds of MB)")
    ap.add_argument("--report", type=Path, default=None, metavar="JSON",
                    help="print the tables of a results file written earlier; run nothing")
    args = ap.parse_args(argv)
    if args.report:
        return reprint(args.report)
    repeat = args.repeat or (1 if args.quick else 3)
    if repeat < 1:
        ap.error("--repeat must be at least 1")
    sections = [s.strip() for s in args.only.split(",")] if args.only else [s for s in SECTIONS]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if "parallel" in sections and not args.parallel:
        if args.only and "parallel" in args.only:
            args.parallel = True
        else:
            sections.remove("parallel")

    missing = [n for n in args.scenarios.split(",") if not (ROOT / "scenarios" / f"{n.strip()}.yaml").is_file()]
    if missing:
        ap.error(f"no scenario file scenarios/NAME.yaml for: {', '.join(missing)}")
    artifacts = args.artifacts.resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    cache = Cache(args.cache)
    ctx = Context(cache=cache, artifacts=artifacts, bench_cache=Cache(artifacts / "cache"),
                  repeat=repeat, json_path=(args.json or artifacts / "bench.json").resolve(),
                  scenarios=tuple(n.strip() for n in args.scenarios.split(",") if n.strip()),
                  results={"settings": {"repeat": repeat, "quick": args.quick, "sections": sections,
                                        "scenarios": args.scenarios,
                                        "cache": str(cache.root), "artifacts": str(artifacts)},
                           "host": host_info(), "machine_at_start": machine_state()})
    m = ctx.results["machine_at_start"]
    say(f"cache {cache.root}; artifacts {artifacts}; repeat {repeat}; sections {', '.join(sections)}; "
        f"load {m['loadavg_1min']:.2f}, {m['other_qemu_processes']} other QEMU running")
    reports = []
    steps = {"overhead": (lambda: bench_overhead(ctx), lambda: report_overhead(ctx)),
             "build": (lambda: bench_build(ctx, args.cold_network), lambda: report_build(ctx)),
             "options": (lambda: bench_options(ctx), lambda: report_options(ctx)),
             "parallel": (lambda: bench_parallel(ctx, args.parallel_repeat, args.parallel_k),
                          lambda: report_parallel(ctx))}
    try:
        for name in SECTIONS:
            if name in sections:
                measure, report = steps[name]
                measure()
                reports.append(report())
                print("\n" + reports[-1] + "\n", flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; partial results kept in the JSON file", file=sys.stderr)
        ctx.results["interrupted"] = True
        return_code = 130
    else:
        return_code = 0
    end = ctx.results["machine_at_end"] = machine_state()
    print(f"Machine: {os.cpu_count()} CPUs; load (1 min) {m['loadavg_1min']:.2f} at start, "
          f"{end['loadavg_1min']:.2f} at end; other QEMU processes {m['other_qemu_processes']} at start, "
          f"{end['other_qemu_processes']} at end. Ratios are within one run; absolute seconds are not "
          "comparable across machines or loads.")
    ctx.save()
    print(f"JSON: {ctx.json_path}")
    return return_code


if __name__ == "__main__":
    sys.exit(main())
