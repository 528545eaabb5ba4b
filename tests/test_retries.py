# SPDX-License-Identifier: GPL-2.0-only
"""Infrastructure failures are retried a bounded number of times and recorded; verdicts never."""

import dataclasses
import json
from pathlib import Path

import pytest

from harness import pipeline as runner  # the pipeline runs a scenario
from harness.errors import QemuError
from harness.scenario.load import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def _flaky_qemu(tmp_path, failures: int) -> Path:
    """A qemu-system-x86_64 that exits at once the first `failures` times it is started, then
    is the real one; asked for its version (is it a QEMU?), it is the real one at once."""
    counter = tmp_path / "starts"
    script = tmp_path / "qemu-system-x86_64"
    script.write_text(f"""#!/bin/sh
[ "$1" = --version ] && exec /usr/bin/qemu-system-x86_64 --version
n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}
if [ $n -le {failures} ]; then echo "flaky start $n" >&2; exit 1; fi
exec /usr/bin/qemu-system-x86_64 "$@"
""")
    script.chmod(0o755)
    return script


def _on_flaky_qemu(tmp_path, failures: int):
    """qemu-only, run by a QEMU that fails to start `failures` times first."""
    scenario = load_scenario(SCENARIOS / "qemu-only.yaml")
    return dataclasses.replace(scenario, qemu=dataclasses.replace(
        scenario.qemu, build=str(_flaky_qemu(tmp_path, failures)), accel="tcg"))


@pytest.mark.vm
def test_a_qemu_that_fails_to_start_once_is_retried_and_recorded(seedchain, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RETRY_PAUSE", 0.1)
    scenario = _on_flaky_qemu(tmp_path, failures=1)
    result = runner.run(scenario, cache=seedchain.cache, artifacts=tmp_path / "out")
    assert result.passed
    (retry,) = result.retries
    assert retry["stage"] == "qemu-start" and retry["attempt"] == 1
    assert "flaky start 1" in retry["error"]
    saved = json.loads((Path(result.artifacts) / "result.json").read_text())
    assert saved["retries"] == result.retries


@pytest.mark.network
def test_retries_are_bounded(seedchain, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RETRY_PAUSE", 0.01)
    scenario = _on_flaky_qemu(tmp_path, failures=99)
    with pytest.raises(QemuError) as info:
        runner.run(scenario, cache=seedchain.cache, artifacts=tmp_path / "out")
    assert "flaky start 3" in str(info.value)
    assert (tmp_path / "starts").read_text().strip() == str(runner.MAX_INFRA_ATTEMPTS)


def test_a_permanent_error_is_not_retried(tmp_path):
    calls = []

    def attempt():
        calls.append(1)
        raise QemuError("no such binary")

    with pytest.raises(QemuError):
        runner._retrying("qemu-start", attempt, [], lambda m: None)
    assert calls == [1]
