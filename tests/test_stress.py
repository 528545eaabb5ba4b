# SPDX-License-Identifier: GPL-2.0-only
"""The stress script's bounded share in the normal test run: a handful of real interrupted
runs through bench/stress_interrupt.py (the targets and signals tests/test_interrupt.py does
not cover: pytest -n 2 stopped, and the files a SIGKILLed seedchain leaves for the next run
to sweep), and its fuzz section's figures from a real pytest run of the fuzz tests."""

from __future__ import annotations

import os
import shutil
import tempfile
import random
from pathlib import Path

import pytest

from bench import stress, stress_interrupt, stress_security

ROOT = Path(__file__).resolve().parent.parent
PLAN = [("pytest", "SIGKILL"), ("pytest", "SIGINT"), ("seedchain", "SIGKILL"), ("seedchain", "SIGTERM")]


@pytest.mark.vm
def test_a_handful_of_interrupted_runs_leave_nothing_behind(seedchain):
    # A short folder: the runs' artifacts folders (with QEMU's sockets) nest below it.
    tmp_path = Path(tempfile.mkdtemp(prefix="stress-", dir="/tmp"))
    seed = int(os.environ.get("SEEDCHAIN_INTERRUPT_SEED", "0")) or random.randrange(1, 2**32)
    env = {**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    data = stress_interrupt.run(len(PLAN), seed, ROOT / "scenarios" / "qemu-only.yaml", tmp_path, None, env,
                                plan=PLAN)
    summary = stress_interrupt.summarize(data)
    table = stress_interrupt.report(data, summary)
    assert summary["runs"] == len(PLAN), table
    assert summary["leftovers"] == 0, f"seed {seed}:\n{table}"
    assert not any(r["traceback"] for r in data["runs"] if r["target"] == "seedchain"), table
    for r in data["runs"]:
        # A SIGTERM before seedchain has set its handler (in Python's start-up) ends it by
        # the signal; once QEMU is up it unwinds and says so.
        if r["target"] == "seedchain" and r["signal"] == "SIGTERM" and not r["finished_before_signal"]:
            assert r["exit_status"] == 130 or (r["exit_status"] == -15 and not r["qemu_started"]), r
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_fuzz_section_counts_each_tests_cases():
    data = stress.fuzz(3, {**os.environ, "PYTHONPATH": str(ROOT)})
    assert data["failed"] == [] and data["exit_status"] == 0, data["output_tail"]
    tests = data["tests"]
    assert {"test_scenario_text", "test_matrix_documents", "test_known_gaps_documents",
            "test_report_streams"} <= set(tests)
    # 3 generated, plus the @example regressions where a test keeps some
    assert all(t["outcome"] == "passed" and 3 <= t["cases"] <= 5 for t in tests.values()), tests
    assert "examples asked per test" in stress.fuzz_report(data)


@pytest.mark.vm
def test_the_security_section_races_a_real_run_and_gets_nowhere(seedchain):
    """One run raced by another user (bench/stress_security.py): tries, none succeeds."""
    env = {**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    data = stress_security.run(1, ROOT / "scenarios" / "qemu-only.yaml", env)
    assert "error" not in data, data["error"] + " (this test acts as another user: run it as root)"
    summary = stress_security.summarize(data)
    text = stress_security.report(data, summary)
    assert summary["runs"] == 1 and summary["not_passed"] == 0 and summary["tracebacks"] == 0, text
    assert summary["totals"]["artifacts"]["attempts"] > 0 and summary["totals"]["gdbstub"]["attempts"] > 0, text
    assert summary["successes"] == 0, text

