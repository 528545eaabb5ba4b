#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Flake rate: run the default scenarios N times in a row; count verdicts that change.

    python bench/flake_rate.py [--runs N] [--tag default] [--only NAME,...] [--json OUT]

Each run boots every scenario with the tag (harness.pipeline.run, the same call as
`seedchain run --tag default scenarios`). A scenario's verdict is pass, fail or
error (a set-up problem). A run flakes for a scenario when its verdict differs
from that scenario's verdict in the first run; the rate is flaky runs over the
runs after the first. Also shown, as a weaker signal: runs in which any
observed check value changed although the verdict did not.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._env import ensure_python  # noqa: E402

ensure_python()

import argparse  # noqa: E402
import time  # noqa: E402
from typing import TypedDict  # noqa: E402

from bench._env import ROOT  # noqa: E402
from bench.common import DEFAULT_ARTIFACTS, fmt, machine_state, say, table, write_json  # noqa: E402
from harness.images.cache import Cache  # noqa: E402
from harness.errors import SeedchainError  # noqa: E402
from harness.pipeline import run  # noqa: E402
from harness.scenario.load import discover, load_scenario  # noqa: E402

_LETTER = {"pass": "P", "fail": "F", "error": "E"}


def outcome(scenario, cache: Cache, artifacts: Path) -> dict:
    started = time.monotonic()
    try:
        result = run(scenario, cache=cache, artifacts=artifacts)
    except SeedchainError as exc:
        return {"verdict": "error", "detail": str(exc).splitlines()[0], "observed": None,
                "seconds": time.monotonic() - started}
    observed = [[layer.facts.fault or "-", *(layer.observed[name] for name in sorted(layer.observed))]
                for layer in result.layers]
    return {"verdict": "pass" if result.passed else "fail",
            "detail": " | ".join(result.failures())[:500], "observed": observed,
            "seconds": time.monotonic() - started, "artifacts": result.artifacts}


class ScenarioFlakes(TypedDict):
    """One scenario's runs compared with its first."""
    verdicts: list[str]
    flaky_runs: list[int]
    observation_changes: list[int]
    compared: int
    rate: float | None


def summarize(runs: dict[str, list[dict]]) -> dict:
    per: dict[str, ScenarioFlakes] = {}
    for name, outcomes in runs.items():
        first = outcomes[0]
        later = outcomes[1:]
        flaky = [i + 2 for i, o in enumerate(later) if o["verdict"] != first["verdict"]]
        drift = [i + 2 for i, o in enumerate(later)
                 if o["verdict"] == first["verdict"] and o["observed"] != first["observed"]]
        per[name] = {"verdicts": [o["verdict"] for o in outcomes], "flaky_runs": flaky,
                     "observation_changes": drift, "compared": len(later),
                     "rate": len(flaky) / len(later) if later else None}
    compared = sum(p["compared"] for p in per.values())
    flaky_count = sum(len(p["flaky_runs"]) for p in per.values())
    n = max((len(o) for o in runs.values()), default=0)
    whole = [r for r in range(2, n + 1)
             if any(r in p["flaky_runs"] for p in per.values())]
    return {"scenarios": per, "scenario_runs_compared": compared, "scenario_runs_flaky": flaky_count,
            "rate": flaky_count / compared if compared else None,
            "whole_runs_compared": max(0, n - 1), "whole_runs_flaky": len(whole)}


def report(summary: dict) -> str:
    rows = []
    for name, p in summary["scenarios"].items():
        rows.append([name, "".join(_LETTER[v] for v in p["verdicts"]),
                     f"{len(p['flaky_runs'])}/{p['compared']}",
                     fmt(p["rate"] * 100 if p["rate"] is not None else None, 0, "%"),
                     ", ".join(map(str, p["flaky_runs"])) or "-",
                     ", ".join(map(str, p["observation_changes"])) or "-"])
    total = summary
    return "\n".join([
        "Flake rate: a run flakes when a scenario's verdict differs from its first run's "
        "(P pass, F fail, E error)",
        table(["scenario", "verdicts", "flaky", "rate", "flaky runs", "same verdict, observations changed"],
              rows),
        f"total: {total['scenario_runs_flaky']}/{total['scenario_runs_compared']} scenario runs flaky "
        f"({fmt(total['rate'] * 100 if total['rate'] is not None else None, 1, '%')}); "
        f"{total['whole_runs_flaky']}/{total['whole_runs_compared']} whole runs had a flake"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--runs", type=int, default=3, help="runs in a row (default %(default)s)")
    ap.add_argument("--tag", default="default", help="scenarios with this tag (default %(default)s)")
    ap.add_argument("--scenarios", type=Path, default=ROOT / "scenarios", help="scenario folder")
    ap.add_argument("--only", default=None, help="comma-separated scenario names among the tagged ones")
    ap.add_argument("--json", type=Path, default=None, help="results (default: ARTIFACTS/flake-rate.json)")
    ap.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS / "flake",
                    help="per-run artifact folders (default: %(default)s)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be at least 2: the first run is what later runs are compared with")
    scenarios = [s for s in map(load_scenario, discover(args.scenarios)) if args.tag in s.tags]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            ap.error(f"not among the '{args.tag}' scenarios: {', '.join(sorted(unknown))}")
        scenarios = [s for s in scenarios if s.name in wanted]
    if not scenarios:
        ap.error(f"no scenario tagged '{args.tag}' in {args.scenarios}")
    cache = Cache(args.cache)
    artifacts = args.artifacts.resolve()
    json_path = (args.json or artifacts / "flake-rate.json").resolve()
    data = {"settings": {"runs": args.runs, "tag": args.tag, "scenarios": [s.name for s in scenarios],
                         "cache": str(cache.root)}, "machine_at_start": machine_state(), "runs": {}}
    runs: dict[str, list[dict]] = {s.name: [] for s in scenarios}
    say(f"{args.runs} runs of {len(scenarios)} scenarios: {', '.join(runs)}")
    code = 0
    try:
        for i in range(1, args.runs + 1):
            for s in scenarios:
                o = outcome(s, cache, artifacts / f"run{i}")
                runs[s.name].append(o)
                first = runs[s.name][0]["verdict"]
                say(f"run {i}/{args.runs} {s.name}: {o['verdict']} in {o['seconds']:.0f} s"
                    + ("" if o["verdict"] == first else f"  <- FLAKE (first run: {first}): {o['detail']}"))
                data["runs"] = runs
                write_json(json_path, data)
    except KeyboardInterrupt:
        say("interrupted: the summary covers the runs that finished")
        code = 130
    complete = {name: outcomes for name, outcomes in runs.items() if outcomes}
    data["summary"] = summary = summarize(complete)
    data["machine_at_end"] = machine_state()
    write_json(json_path, data)
    print(report(summary))
    print(f"JSON: {json_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
