# SPDX-License-Identifier: GPL-2.0-only
"""Section 6: aarch64 layers against the same bare-chain baseline as x86.

Each repeat boots, in turn: the bare x86 chain of section 1 (kexec-file-2's kernels
and userland under plain QEMU with a minimal /init: the baseline), the harness on
kexec-file-2 (x86_64, Debian's 6.1) and the harness on a64-chain (aarch64: QEMU's
hop into a 6.1 built from Debian's source, then two kexec_file_load hops). A layer's
wall time is its result's `seconds` (hand-over to report); the baseline's layer is
the time between two of its markers. Layer 1 is compared with the baseline's layer
1 (QEMU's hop), every kexec'd layer with the baseline's layer 2 (a kexec_file_load
hop); beside it, each kernel's own time to `Run /init`.
"""

from __future__ import annotations

from bench.common import fmt, ratio, say, stats, table
from bench.context import Context, Results, scenario
from bench.overhead import harness_once, plain_once, prepare

BASELINE = "kexec-file-2"
# The arm64 chain's kernels are built from Debian's source with a small config; Debian's own
# arm64 kernel (through kexec_load: it has no kexec_file_load) is measured beside them.
RUNS = {"x86_64": "kexec-file-2", "aarch64": "a64-chain", "aarch64-debian": "a64-debian-kexec-load"}


def bench_arch(ctx: Context) -> None:
    section = ctx.results.setdefault("arch", {"baseline": [], **{arch: [] for arch in RUNS}})
    say(f"arch: preparing the bare baseline of {BASELINE}")
    base = prepare(ctx, BASELINE)
    for rep in range(ctx.repeat):
        workdir = ctx.artifacts / "arch" / f"rep{rep + 1}"
        say(f"arch: bare baseline (run {rep + 1}/{ctx.repeat})")
        section["baseline"].append(plain_once(ctx, base, workdir / "baseline"))
        for arch, name in RUNS.items():
            say(f"arch: {arch} {name} (run {rep + 1}/{ctx.repeat})")
            section[arch].append(harness_once(ctx, scenario(name), workdir / arch))
        ctx.save()


def _bare_layers(runs: list[dict]) -> dict[int, float | None]:
    """The baseline's median per-layer wall: its marker deltas (layer 1 from launch)."""
    per: dict[int, list[float]] = {}
    for r in runs:
        if not r.get("ok"):
            continue
        marks = {int(k): v for k, v in r.get("markers", {}).items()}
        for layer in sorted(marks):
            per.setdefault(layer, []).append(marks[layer] - marks.get(layer - 1, 0.0))
    return {layer: stats(values)["median"] for layer, values in per.items()}


def _harness_layers(runs: list[dict], key: str) -> dict[int, float | None]:
    per: dict[int, list[float]] = {}
    for r in runs:
        if not r.get("passed"):
            continue
        for layer in r.get("layers", []):
            if layer.get(key) is not None:
                per.setdefault(layer["index"], []).append(layer[key])
    return {layer: stats(values)["median"] for layer, values in per.items()}


def report_arch(ctx: Results) -> str:
    data = ctx.results.get("arch", {})
    bare = _bare_layers(data.get("baseline", []))
    out = ["6. aarch64 against x86_64: per-layer wall time (medians) and its ratio to the same bare "
           f"x86 chain ({BASELINE} under plain QEMU, minimal /init); layer 1 against the bare layer 1, "
           "kexec'd layers against the bare layer 2"]
    walls = {arch: _harness_layers(data.get(arch, []), "seconds") for arch in RUNS}
    inits = {arch: _harness_layers(data.get(arch, []), "run_init") for arch in RUNS}
    rows = []
    for arch, name in RUNS.items():
        for layer, wall in sorted(walls[arch].items()):
            against = bare.get(1 if layer == 1 else 2)
            x86 = walls["x86_64"].get(min(layer, max(walls["x86_64"], default=1)))
            rows.append([arch, name, str(layer), fmt(wall, 1, " s"), fmt(inits[arch].get(layer), 2, " s"),
                         fmt(against, 1, " s"), fmt(ratio(wall, against), 2),
                         fmt(ratio(wall, x86), 2) if arch != "x86_64" else "1.00"])
    # a kexec_load hop is compared with the bare kexec_file_load hop all the same: the
    # bare chain has only that one
    passed = {arch: sum(bool(r.get("passed")) for r in data.get(arch, [])) for arch in RUNS}
    out.append("runs that passed: " + ", ".join(f"{a} {n}/{len(data.get(a, []))}" for a, n in passed.items())
               + f"; bare baseline runs that counted: {sum(bool(r.get('ok')) for r in data.get('baseline', []))}"
               f"/{len(data.get('baseline', []))}")
    out.append(table(["arch", "scenario", "layer", "wall", "kernel to /init", "bare x86 layer",
                      "wall / bare", "vs x86 layer"], rows))
    return "\n".join(out)
