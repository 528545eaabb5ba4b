# SPDX-License-Identifier: GPL-2.0-only
"""Section 6: how a chain's cost grows with its depth.

Chains of 2, 4, 8 and 16 layers (16 is the schema's limit), each a copy of
kexec-file-2's child repeated: debian:bookworm/6.1 started by kexec_file_load,
not trusting RDRAND, so every layer is seeded by its parent alone. Per depth:
each layer's wall time (layer-N.json seconds) and its kernel's own time to
`Run /init`, the bytes built for the chain (its own images: every layer's
initramfs and the chain disk, what a cold build of it writes to the cache), and
whether it passes with less guest memory (each of --depth-memory in MiB, one run).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bench.common import fmt, ratio, say, stats, table
from bench.context import Context, Results, layer_timings, scenario
from harness.errors import SeedchainError
from harness.images import initramfs
from harness.pipeline import run
from harness.scenario.model import Expect, Scenario

DEPTHS = (2, 4, 8, 16)
MEMORY_PROBES = (512,)         # MiB: the aim is a 16-layer chain passing in 512 MiB
GOAL_FLAT = 1.10               # per-layer wall at depth 16 within 10% of depth 2's
GOAL_REST = 2.0                # a layer's wall at most twice its kernel's own time to /init


def chain_of(depth: int, memory: int | None = None) -> Scenario:
    """kexec-file-2 with its child repeated up to `depth` layers."""
    base = scenario("kexec-file-2")
    first, child = base.layers
    layers = [dataclasses.replace(first, expect=Expect(received=False, exposed=False, passed_on=True))]
    for index in range(2, depth + 1):
        last = index == depth
        expect = dataclasses.replace(child.expect, passed_on=None if last else True)
        layers.append(dataclasses.replace(child, index=index, expect=expect))
    qemu = dataclasses.replace(base.qemu, memory=memory) if memory else base.qemu
    return dataclasses.replace(base, name=f"bench-depth-{depth}", layers=tuple(layers), qemu=qemu,
                               description=f"{depth}-layer kexec_file_load chain of 6.1")


def chain_bytes(s: Scenario, ctx: Context) -> dict:
    """The sizes of the chain's own images (the kernels and userland are shared by every chain)."""
    started = time.monotonic()
    images = initramfs.build_chain(s, ctx.cache)
    seconds = time.monotonic() - started
    files = {img.initrd for img in images}
    disk = getattr(images[0], "chain_disk", None)   # where later layers' images travel on a disk
    if disk is not None:
        files.add(disk)
    return {"bytes": sum(p.stat().st_size for p in files), "files": len(files),
            "initrd_bytes": [img.initrd.stat().st_size for img in images],
            "warm_build_seconds": seconds}


def _once(ctx: Context, s: Scenario, workdir: Path) -> dict:
    started = time.monotonic()
    try:
        result = run(s, cache=ctx.cache, artifacts=workdir)
    except SeedchainError as exc:
        return {"passed": False, "error": str(exc), "layers": [], "seconds": None}
    return {"passed": result.passed, "seconds": time.monotonic() - started,
            "layers": layer_timings(Path(result.artifacts))}


def bench_depth(ctx: Context, depths: tuple[int, ...] = DEPTHS,
                memories: tuple[int, ...] = MEMORY_PROBES) -> None:
    section = ctx.results.setdefault("depth", {})
    for depth in depths:
        s = chain_of(depth)
        data = section.setdefault(str(depth), {"memory": s.qemu.memory, "runs": [], "probes": {}})
        data.update(chain_bytes(s, ctx))
        for rep in range(ctx.repeat):
            say(f"depth {depth}: run {rep + 1}/{ctx.repeat} in {s.qemu.memory} MiB")
            sample = _once(ctx, s, ctx.artifacts / "depth" / f"d{depth}")
            data["runs"].append(sample)
            say(f"depth {depth}: {fmt(sample['seconds'], 1)} s, "
                + ("PASS" if sample["passed"] else f"FAIL {sample.get('error', '')}"))
            ctx.save()
        for mib in memories:
            say(f"depth {depth}: one run in {mib} MiB")
            sample = _once(ctx, chain_of(depth, mib), ctx.artifacts / "depth" / f"d{depth}-m{mib}")
            data["probes"][str(mib)] = {**sample, "faults": [x["fault"] for x in sample["layers"] if x["fault"]][:1]}
            say(f"depth {depth} in {mib} MiB: " + ("PASS" if sample["passed"] else "FAIL"))
            ctx.save()


PHASES = ("entry", "pre_clock", "report", "host", "load", "fetch", "kexec_l")


def _per_layer(data: dict) -> dict:
    """Medians over layers 2..N of every passing run: the kexec'd layers, which are alike."""
    kexeced = [x for r in data["runs"] if r["passed"] for x in r["layers"][1:]]

    def median(key: str):
        return stats([x.get(key) for x in kexeced])["median"]
    return {"wall": median("seconds"), "init": median("run_init"),
            "phases": {key: median(key) for key in PHASES},
            "layer1": stats([r["layers"][0]["seconds"] for r in data["runs"] if r["passed"] and r["layers"]])["median"],
            "total": stats([r["seconds"] for r in data["runs"] if r["passed"]])["median"]}


def report_depth(ctx: Results) -> str:
    section = ctx.results.get("depth", {})
    depths = sorted(section, key=int)
    if not depths:
        return "6. Depth: nothing measured"
    first = _per_layer(section[depths[0]])
    rows = []
    for d in depths:
        data, p = section[d], _per_layer(section[d])
        probes = ", ".join(f"{m} MiB {'pass' if v['passed'] else 'FAIL ' + ','.join(v['faults'] or ['error'])}"
                           for m, v in data["probes"].items())
        passed = sum(bool(r["passed"]) for r in data["runs"])
        total = p["total"]
        rows.append([d, f"{passed}/{len(data['runs'])}", fmt(total, 1),
                     fmt(total / int(d) if total is not None else None, 2), fmt(p["layer1"], 1),
                     fmt(p["wall"], 2), fmt(ratio(p["wall"], first["wall"]), 3), fmt(p["init"], 2),
                     fmt(ratio(p["wall"], p["init"]), 2), fmt(data["bytes"] / 1e6, 1),
                     fmt(data["bytes"] / 1e6 / int(d), 1), probes or "-"])
    phases = [[d, *(fmt(_per_layer(section[d])["phases"][key], 2) for key in PHASES)] for d in depths]
    last = _per_layer(section[depths[-1]])
    flat = ratio(last["wall"], first["wall"])
    return "\n".join([
        f"6. Depth: kexec_file_load chains of debian:bookworm/6.1 ({section[depths[0]]['memory']} MiB; "
        "memory: one run each in that much)",
        table(["layers", "passed", "chain s", "chain s/layer", "layer 1 s", "layer s", "vs first", "kernel->/init s",
               "wall/kernel", "bytes MB", "MB/layer", "memory"], rows),
        "   layer s = median wall of layers 2..N (hand-over to report); kernel->/init = its 'Run /init' "
        "timestamp; bytes = the chain's own images",
        f"   flat: depth {depths[-1]} / depth {depths[0]} per-layer wall = {fmt(flat, 3)} "
        f"(goal <= {GOAL_FLAT}: {'n/a' if flat is None else 'met' if flat <= GOAL_FLAT else 'not met'}); "
        f"wall/kernel goal <= {GOAL_REST}",
        "   where layers 2..N spend it (medians, s; bench/context.py phases): entry = kexec -e and purgatory, "
        "pre-clock = the decompressor,\n"
        "   report = the agent's report on the wire, host = RAM reads, load = the next layer's fetch "
        "(copy and check) and kexec -l",
        table(["layers", "entry", "pre-clock", "report", "host", "load", "fetch", "kexec -l"], phases)])
