#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""seedchain benchmarks: ratios against baselines measured in the same run.

    python bench/run.py [--quick] [--repeat N] [--json OUT] [--parallel] [--only SECTIONS]

Sections (see bench/README.md for what each number means):
  overhead  harness vs a bare baseline (same kernels and userland, plain QEMU,
            minimal /init), kexec-file-2 and kexec-file-4; plus, from the same
            harness runs, each layer's wall time vs its kernel's time to /init
  build     harness.images.build_chain, warm and cold
  options   on a 2-layer chain, baseline style: initramfs compression, console
            verbosity, -machine pc vs q35, each vs the current default
  capture   qemu720-chain with capture off, seeds caught in flight, and caught plus the
            RAM search: each layer's wall time against "off"
  arch      aarch64 (a64-chain) and x86_64 (kexec-file-2) layers against the same bare
            x86 chain, and against each other
  depth     2-, 4-, 8- and 16-layer kexec_file_load chains: per-layer wall, bytes built,
            whether the chain passes in less memory (--depth-memory, --depths)
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

from bench._env import ROOT  # noqa: E402
from bench.building import bench_build, report_build  # noqa: E402
from bench.arch import bench_arch, report_arch  # noqa: E402
from bench.capture import bench_capture, report_capture  # noqa: E402
from bench.depth import DEPTHS, MEMORY_PROBES, bench_depth, report_depth  # noqa: E402
from bench.common import DEFAULT_ARTIFACTS, host_info, machine_state, say  # noqa: E402
from bench.context import OVERHEAD_SCENARIOS, SECTIONS, Context, Results, dmesg_times  # noqa: E402,F401 (dmesg_times: tests)
from bench.options import bench_options, bench_parallel, report_options, report_parallel, summarize_options  # noqa: E402
from bench.overhead import bench_overhead, report_overhead, summarize_overhead  # noqa: E402
from harness.images.cache import Cache  # noqa: E402


# ---------------------------------------------------------------- main

REPORTS = {"overhead": (summarize_overhead, report_overhead), "build": (None, report_build),
           "options": (summarize_options, report_options), "capture": (None, report_capture),
           "arch": (None, report_arch),
           "depth": (None, report_depth), "parallel": (None, report_parallel)}


def _ints(ap: argparse.ArgumentParser, text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        ap.error(f"{option} takes comma-separated whole numbers, not {text!r}")
    if any(v < 1 for v in values):
        ap.error(f"{option}: every number must be at least 1")
    return values


def reprint(path: Path) -> int:
    """The tables of a results file (summaries computed again from its raw runs)."""
    results = json.loads(path.read_text())
    ctx = Results(artifacts=path.parent, repeat=0, results=results, json_path=path)
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
    ap.add_argument("--depths", default=",".join(map(str, DEPTHS)),
                    help="chain depths for the depth section (default: %(default)s)")
    ap.add_argument("--depth-memory", default=",".join(map(str, MEMORY_PROBES)),
                    help="MiB each depth is also run once in (default: %(default)s; '' for none)")
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
             "capture": (lambda: bench_capture(ctx), lambda: report_capture(ctx)),
             "arch": (lambda: bench_arch(ctx), lambda: report_arch(ctx)),
             "depth": (lambda: bench_depth(ctx, _ints(ap, args.depths, "--depths"),
                                           _ints(ap, args.depth_memory, "--depth-memory")),
                       lambda: report_depth(ctx)),
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

