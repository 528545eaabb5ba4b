# SPDX-License-Identifier: GPL-2.0-only
"""Section 5: what catching seeds in flight and searching RAM cost, per layer.

The same scenario is run three ways, alternated within each repeat so that load
drift hits all of them: capture off, seeds caught in flight only, and caught plus
the RAM search after each report. A layer's wall time is the result's `seconds`
(from its parent's hand-over to its report, RAM search included), so the ratio of
a variant's layer time to the "off" layer time is the cost as the user sees it.
Beside it, what the harness itself measured: how long the guest stood still at the
hand-over, and how long the search took.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.common import fmt, ratio, say, stats, table
from bench.context import Context, Results, scenario
from harness.errors import SeedchainError
from harness.pipeline import run
from harness.scenario.model import Capture

CAPTURE_SCENARIOS = ("qemu720-chain",)
VARIANTS = {"off": Capture(seed_in_flight=False, ram_search=False),
            "in-flight": Capture(seed_in_flight=True, ram_search=False),
            "in-flight+ram": Capture(seed_in_flight=True, ram_search=True)}
GOAL_CAPTURE = 1.05      # the aim: the capture under 5% of a layer's wall time


def _once(ctx: Context, name: str, variant: str, workdir: Path) -> dict:
    s = dataclasses.replace(scenario(name), name=f"bench-{name}", capture=VARIANTS[variant])
    try:
        result = run(s, cache=ctx.cache, artifacts=workdir)
    except SeedchainError as exc:
        return {"passed": False, "error": str(exc), "layers": []}
    data = json.loads((Path(result.artifacts) / "result.json").read_text())
    return {"passed": all(layer["booted"] for layer in data["layers"]), "seconds": result.seconds,
            "layers": [{"seconds": layer["seconds"],
                        "stopped": (layer["seed_in_flight"] or {}).get("stopped_seconds"),
                        "search": (layer["ram_search"] or {}).get("seconds"),
                        "caught": (layer["seed_in_flight"] or {}).get("caught")}
                       for layer in data["layers"]]}


def bench_capture(ctx: Context) -> None:
    section = ctx.results.setdefault("capture", {})
    for name in CAPTURE_SCENARIOS:
        runs = section.setdefault(name, {v: [] for v in VARIANTS})
        for number in range(ctx.repeat):
            for variant in VARIANTS:
                say(f"capture: {name} {variant} (run {number + 1}/{ctx.repeat})")
                runs[variant].append(_once(ctx, name, variant, ctx.artifacts / "capture" / variant))
                ctx.save()


def _median(runs: list[dict], layer: int, key: str) -> float | None:
    return stats([r["layers"][layer][key] for r in runs
                  if r.get("passed") and len(r["layers"]) > layer and r["layers"][layer][key] is not None])["median"]


def report_capture(ctx: Results) -> str:
    out = ["5. Catching seeds in flight and searching RAM: per-layer wall time against capture off "
           "(medians; ratio = variant / off)"]
    for name, runs in ctx.results.get("capture", {}).items():
        layers = max((len(r["layers"]) for r in runs["off"]), default=0)
        rows = []
        for i in range(layers):
            off = _median(runs["off"], i, "seconds")
            flight = _median(runs["in-flight"], i, "seconds")
            both = _median(runs["in-flight+ram"], i, "seconds")
            stopped = _median(runs["in-flight"], i, "stopped")
            search = _median(runs["in-flight+ram"], i, "search")
            rows.append([str(i + 1), fmt(off, 1, " s"), fmt(flight, 1, " s"), fmt(ratio(flight, off), 3),
                         fmt(stopped, 3, " s"), fmt(both, 1, " s"), fmt(ratio(both, off), 3),
                         fmt(search, 2, " s"), fmt(ratio(search, both), 3)])
        passed = {v: sum(bool(r.get("passed")) for r in rs) for v, rs in runs.items()}
        out.append(f"\n{name} (runs that booted every layer: "
                   + ", ".join(f"{v} {n}/{len(runs[v])}" for v, n in passed.items()) + ")")
        out.append(table(["layer", "off", "in-flight", "ratio", "stopped", "+ram", "ratio", "search",
                          "search share"], rows))
    out.append(f"\ngoal for the in-flight capture: ratio under {GOAL_CAPTURE}")
    return "\n".join(out)
