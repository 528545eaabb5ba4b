#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Stress: figures at scale that the default CI keeps only a bounded share of.

    python -m bench.stress [--interrupts N] [--fuzz N] [--flake-runs N] [--security-runs N]
                           [--only SECTION,...] [--seed S] [--budget SECONDS] [--artifacts DIR]
                           [--json OUT]

Sections (all by default; --only picks some):
  interrupts  N real runs (`seedchain run` and `pytest -n 2` of one scenario) stopped by
              SIGINT, SIGTERM or SIGKILL at a random moment (seeded; the seed is printed);
              QEMU, bubblewrap and other processes, RAM files, sockets, cache temporaries and
              temporary files left are counted (bench/stress_interrupt.py)
  fuzz        tests/test_fuzz.py with N hypothesis examples per test (the scenario loader,
              the matrix file, the known-gaps file, the guest report parser)
  flake       the default scenarios N times in a row (bench/flake_rate.py's runs and
              summary): passes, failures and infra errors per scenario, flakes
  security    N real runs (RAM search on) while another local user (uid 65534) races for
              the RAM file, the gdbstub's socket and the artifacts: attempts and successes
              (bench/stress_security.py; needs root)
  hostile     scenario and matrix files written to run code or touch host files, through
              check, run, matrix and pytest: executions, host files changed or echoed,
              raw escapes, tracebacks, hangs (bench/stress_hostile.py; boots nothing)
Tables go to stdout, progress to stderr, everything to JSON (default ARTIFACTS/stress.json).
The exit status is 1 when a leftover, a failing fuzz test, a flake, or a success of the
other user (or a security run that did not pass), or a hostile file that got anywhere
was found.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._env import ensure_python  # noqa: E402

ensure_python()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from bench import flake_rate, stress_hostile, stress_interrupt, stress_security  # noqa: E402
from bench._env import ROOT  # noqa: E402
from bench.common import machine_state, say, table, write_json  # noqa: E402
from harness.images.cache import Cache  # noqa: E402
from harness.scenario.load import discover, load_scenario  # noqa: E402

SECTIONS = ("interrupts", "fuzz", "flake", "security", "hostile")
FUZZ_TESTS = ROOT / "tests" / "test_fuzz.py"


def fuzz(examples: int, env: dict) -> dict:
    """Run the fuzz tests at `examples` cases each; per test: cases tried, outcome."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(FUZZ_TESTS), "-n", "0", "-p", "no:cacheprovider", "-q",
         "--hypothesis-show-statistics", "-rA"],
        cwd=ROOT, env={**env, "SEEDCHAIN_FUZZ": "stress", "SEEDCHAIN_FUZZ_EXAMPLES": str(examples)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True)
    seconds = time.monotonic() - started
    tests: dict[str, dict] = {}
    current = None
    for line in proc.stdout.splitlines():
        head = re.match(r"tests/test_fuzz\.py::(\S+):$", line)
        if head:
            current = tests.setdefault(head[1], {"cases": 0, "invalid": 0, "outcome": "?"})
            continue
        counts = re.search(r"(\d+) passing(?: examples)?, (\d+) failing(?: examples)?, (?:and )?(\d+) invalid", line)
        if counts and current is not None:
            current["cases"] += int(counts[1]) + int(counts[2])
            current["invalid"] += int(counts[3])
        result = re.match(r"(PASSED|FAILED|ERROR) tests/test_fuzz\.py::(\S+)", line)
        if result:
            tests.setdefault(result[2], {"cases": 0, "invalid": 0})["outcome"] = result[1].lower()
    failed = [name for name, t in tests.items() if t.get("outcome") != "passed"]
    return {"examples": examples, "seconds": round(seconds, 1), "exit_status": proc.returncode,
            "tests": tests, "failed": failed,
            "output_tail": proc.stdout[-4000:] if proc.returncode else ""}


def fuzz_report(data: dict) -> str:
    rows = [[name, t["cases"], t["invalid"], t.get("outcome", "?")] for name, t in data["tests"].items()]
    return "\n".join([f"Fuzz: {data['examples']} examples asked per test, in {data['seconds']:.0f} s",
                      table(["test", "cases", "invalid", "outcome"], rows),
                      f"failed: {', '.join(data['failed']) or 'none'}"
                      + ("" if data["tests"] else f" (pytest exit status {data['exit_status']}, no test ran)")])


def flake(runs: int, only: str | None, folder: Path) -> dict:
    scenarios = [s for s in map(load_scenario, discover(ROOT / "scenarios")) if "default" in s.tags]
    if only:
        wanted = {n.strip() for n in only.split(",")}
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            raise SystemExit(f"stress: --flake-only: not default scenarios: {', '.join(sorted(unknown))}")
        scenarios = [s for s in scenarios if s.name in wanted]
    cache = Cache(None)
    outcomes: dict[str, list[dict]] = {s.name: [] for s in scenarios}
    for i in range(1, runs + 1):
        for s in scenarios:
            o = flake_rate.outcome(s, cache, folder / f"run{i}")
            outcomes[s.name].append(o)
            say(f"flake run {i}/{runs} {s.name}: {o['verdict']} in {o['seconds']:.0f} s")
    summary = flake_rate.summarize(outcomes)
    for p in summary["scenarios"].values():
        p.update({v: p["verdicts"].count(v) for v in ("pass", "fail", "error")})
    return {"runs": runs, "outcomes": outcomes, "summary": summary}


def flake_report(data: dict) -> str:
    rows = [[name, p["pass"], p["fail"], p["error"], len(p["flaky_runs"])]
            for name, p in data["summary"]["scenarios"].items()]
    return "\n".join([f"Flake: the default scenarios {data['runs']} times in a row",
                      table(["scenario", "pass", "fail", "error", "flaky runs"], rows),
                      flake_rate.report(data["summary"]).splitlines()[-1]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--interrupts", type=int, default=200, help="interrupted runs (default %(default)s)")
    ap.add_argument("--fuzz", type=int, default=10_000, help="hypothesis examples per fuzz test (default %(default)s)")
    ap.add_argument("--flake-runs", type=int, default=10, help="runs of the default scenarios (default %(default)s)")
    ap.add_argument("--security-runs", type=int, default=3,
                    help="runs raced by another user in the security section (default %(default)s)")
    ap.add_argument("--flake-only", default=None, help="comma-separated default scenarios for the flake section")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections among {', '.join(SECTIONS)}")
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "qemu-only.yaml",
                    help="the scenario the interrupted runs boot (default: scenarios/qemu-only.yaml)")
    ap.add_argument("--seed", type=int, default=None, help="the interrupts' random seed (default: a new one)")
    ap.add_argument("--budget", type=float, default=None, help="stop starting interrupted runs after this many seconds")
    ap.add_argument("--artifacts", type=Path, default=Path("/tmp/seedchain-stress"), help="default: %(default)s")
    ap.add_argument("--json", type=Path, default=None, help="default: ARTIFACTS/stress.json")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown or not sections:
        ap.error(f"--only: unknown section {', '.join(sorted(unknown)) or '(none)'}; known: {', '.join(SECTIONS)}")
    for name in ("interrupts", "fuzz", "flake_runs", "security_runs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.scenario.is_file():
        ap.error(f"--scenario: no such file: {args.scenario}")
    artifacts = args.artifacts.resolve()
    json_path = (args.json or artifacts / "stress.json").resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    data: dict = {"machine_at_start": machine_state()}
    failed = False
    if "interrupts" in sections:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**32)
        say(f"interrupts: seed {seed}")
        folder = artifacts / "interrupts"
        if folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        data["interrupts"] = stress_interrupt.run(args.interrupts, seed, args.scenario.resolve(), folder,
                                                  args.budget, env)
        data["interrupts"]["summary"] = summary = stress_interrupt.summarize(data["interrupts"])
        write_json(json_path, data)
        print(stress_interrupt.report(data["interrupts"], summary) + "\n", flush=True)
        failed |= summary["leftovers"] > 0 or summary["false_verdicts"] > 0 or summary["tracebacks"] > 0
    if "fuzz" in sections:
        say(f"fuzz: {args.fuzz} examples per test")
        data["fuzz"] = fuzz(args.fuzz, env)
        write_json(json_path, data)
        print(fuzz_report(data["fuzz"]) + "\n", flush=True)
        failed |= bool(data["fuzz"]["failed"]) or not data["fuzz"]["tests"]
    if "flake" in sections:
        data["flake"] = flake(args.flake_runs, args.flake_only, artifacts / "flake")
        write_json(json_path, data)
        print(flake_report(data["flake"]) + "\n", flush=True)
        failed |= data["flake"]["summary"]["scenario_runs_flaky"] > 0
    if "security" in sections:
        say(f"security: {args.security_runs} runs raced by another user")
        data["security"] = stress_security.run(args.security_runs, args.scenario.resolve(), env)
        data["security"]["summary"] = summary = stress_security.summarize(data["security"])
        write_json(json_path, data)
        print(stress_security.report(data["security"], summary) + "\n", flush=True)
        failed |= bool(data["security"].get("error")) or summary["successes"] > 0 or summary["not_passed"] > 0
    if "hostile" in sections:
        say("hostile: scenario and matrix files that try to run code or touch host files")
        folder = artifacts / "hostile"
        if folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        data["hostile"] = stress_hostile.run(folder, env)
        data["hostile"]["summary"] = summary = stress_hostile.summarize(data["hostile"])
        write_json(json_path, data)
        print(stress_hostile.report(data["hostile"], summary) + "\n", flush=True)
        failed |= any(summary[k] for k in stress_hostile.BAD)
    data["machine_at_end"] = machine_state()
    write_json(json_path, data)
    print(f"JSON: {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
