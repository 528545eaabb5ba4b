# SPDX-License-Identifier: GPL-2.0-only
"""Real guest faults: each is produced for real and must be reported promptly,
naming the layer, the kind of fault and the last console lines."""

import subprocess
import time
from pathlib import Path

import pytest

from harness.pipeline import run
from harness.scenario.load import load_scenario

FAULTS = Path(__file__).parent / "fixtures" / "faults"
SLACK = 15.0      # seconds the report may come after the layer's timeout


def _qemu_processes(folder: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line]


def _run(name, seedchain, tmp_path):
    scenario = load_scenario(FAULTS / f"{name}.yaml")
    started = time.monotonic()
    result = run(scenario, cache=seedchain.cache, artifacts=tmp_path)
    elapsed = time.monotonic() - started
    assert not _qemu_processes(tmp_path), "QEMU left running"
    assert (Path(result.artifacts) / "console.log").stat().st_size > 0
    return scenario, result, elapsed


@pytest.mark.vm
@pytest.mark.parametrize("name, layer, kind, console, detail", [
    ("panic", 2, "panic", "Kernel panic - not syncing: VFS: Unable to mount root fs", "Unable to mount root fs"),
    ("silent-reset", 2, "reset", None, "with no panic message"),
    ("hang", 2, "hang", None, "no report from layer 2 within 20 s"),
    ("load-refused", 2, "load-failed", None, "Operation not permitted"),
    ("out-of-memory", 2, "out-of-memory", None, "No space left on device"),
])
def test_fault_is_reported(name, layer, kind, console, detail, seedchain, tmp_path):
    scenario, result, elapsed = _run(name, seedchain, tmp_path)
    assert not result.passed
    assert result.retries == []            # a guest fault is a verdict: never retried
    faulty = result.layers[layer - 1]
    assert faulty.facts.fault == kind, faulty.facts.fault_detail
    assert faulty.observed["booted"] is False
    assert result.layers[layer - 2].observed["booted"] is True      # the parent is not blamed
    for later in result.layers[layer:]:
        assert later.facts.fault == "not-reached"
    failures = "\n".join(result.failures())
    assert failures.startswith(f"layer {layer} kernel ")
    assert f"fault: {kind}" in failures
    assert detail in faulty.facts.fault_detail
    if console:
        assert any(console in line for line in faulty.facts.console_tail), faulty.facts.console_tail
    # Reported within the layer's timeout (plus the parent's boot), not after some global limit.
    parent_time = result.layers[layer - 2].facts.seconds
    assert elapsed < parent_time + scenario.layers[layer - 1].timeout + SLACK + 30

