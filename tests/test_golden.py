# SPDX-License-Identifier: GPL-2.0-only
"""Golden files: every recorded real run replayed through the whole pure pipeline.

For each folder under tests/fixtures/runs/, the raw agent channel (agent.log) goes
through the report parser, the facts are rebuilt with it, the checks run and the
verdict is judged against the scenario, and the result JSON is compared whole with
the folder's expected.json. A change of any verdict, key or value then shows up as
a reviewed diff of expected.json.

Regenerate after an intended change, then review with git:

    SEEDCHAIN_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
    git diff tests/fixtures/runs/
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks.verdict import judge
from harness.facts.layer import LayerFacts
from harness.facts.report import GuestReport, LoaderRecord, parse_loader, parse_report, take_block
from harness.scenario.load import load_scenario
from recorded import RUNS, names

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = os.environ.get("SEEDCHAIN_REGEN_GOLDEN") == "1"


def _channel(name: str) -> tuple[list[GuestReport], list[LoaderRecord]]:
    """(reports, loader records) parsed from the recorded agent channel, in order."""
    stream = (RUNS / name / "agent.log").read_bytes()
    reports: list[GuestReport] = []
    loaders: list[LoaderRecord] = []
    while True:
        block, rest = take_block(stream, b"@begin ", b"@end " + str(len(reports) + 1).encode())
        if block is None:
            return reports, loaders
        reports.append(parse_report(block))
        loader, after = take_block(rest, b"@loader ", b"@end-loader")
        if loader is not None:
            loaders.append(parse_loader(loader))
            rest = after
        stream = rest


# judge()'s run_info: RunResult's fields besides the scenario and the layers. None of
# them follows from what the guest said; each describes the run (the host's QEMU, where
# the artifacts went, how long it took, what was retried), so the replay takes every
# one from the recorded result.json: key in result.json -> RunResult field.
RUN_INFO = {
    ("qemu", "version"): "qemu_version",
    ("qemu", "binary"): "qemu_binary",
    ("qemu", "accel"): "accel",
    ("qemu", "args"): "qemu_args",
    ("qemu", "source"): "qemu_source",      # a source:VERSION build's recipe, else null
    ("artifacts",): "artifacts",
    ("seconds",): "seconds",
    ("retries",): "retries",
    ("error",): "error",                    # a harness failure; null in every recorded run
}


def _run_info(recorded: dict) -> dict:
    info = {}
    for keys, name in RUN_INFO.items():
        value: object = recorded
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:               # older result files lack some keys
            info[name] = value
    return info


def _scenario(name: str, recorded: dict):
    """The scenario the run was judged against: the copy the runner keeps in the run
    folder if the fixture has one, else the shipped scenarios/NAME.yaml."""
    copy = RUNS / name / "scenario.yaml"
    return load_scenario(copy if copy.is_file() else ROOT / "scenarios" / f"{recorded['scenario']}.yaml")


def replay(name: str) -> dict:
    """The result JSON of a recorded run, computed again from its recorded inputs
    (replayed() below, as result.json holds it)."""
    result = replayed(name).to_json()
    result["file"] = json.loads((RUNS / name / "result.json").read_text())["file"]
    return result


def replayed(name: str):
    """The RunResult of a recorded run, computed again from its recorded inputs.

    From agent.log: every report and loader record (through the real parser), and so
    whether a layer booted. From layer-N.json: what the host measured, not the guest
    said (the RAM reads and their errors, faults, the console tail, each layer's
    seconds, the components the images were built from). From result.json: judge's
    run_info (RUN_INFO above); replay() adds the scenario's "file" (where it was at run time)."""
    recorded = json.loads((RUNS / name / "result.json").read_text())
    files = sorted((RUNS / name).glob("layer-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    saved = [LayerFacts.from_json(json.loads(p.read_text())) for p in files]
    reports, loaders = _channel(name)
    facts = []
    for position, f in enumerate(saved):
        report = reports[position] if position < len(reports) else None
        loader = loaders[position] if position < len(loaders) else None
        facts.append(replace(f, booted=report is not None, report=report, loader_record=loader))
    return judge(_scenario(name, recorded), facts, **_run_info(recorded))


def test_every_run_info_field_is_replayed():
    """A new RunResult field must be added to RUN_INFO (or the golden files would
    silently hold its default instead of the recorded value)."""
    from dataclasses import fields
    from harness.checks.verdict import RunResult
    assert {f.name for f in fields(RunResult)} - {"scenario", "layers"} == set(RUN_INFO.values())


@pytest.mark.parametrize("name", names())
def test_replayed_run_matches_its_golden_file(name):
    expected_file = RUNS / name / "expected.json"
    got = json.dumps(replay(name), indent=2, sort_keys=True) + "\n"
    if REGENERATE:
        # Regenerating still compares: a file that changed is rewritten and the test fails,
        # so a run with SEEDCHAIN_REGEN_GOLDEN=1 never passes over a difference unseen.
        old = expected_file.read_text() if expected_file.exists() else ""
        if old != got:
            expected_file.write_text(got)
            pytest.fail(f"{name}: rewrote {expected_file.relative_to(ROOT)}; review it with git diff",
                        pytrace=False)
        return
    assert expected_file.exists(), (f"{expected_file.relative_to(ROOT)} is missing; create it with "
                                    "SEEDCHAIN_REGEN_GOLDEN=1 and review it")
    want = expected_file.read_text()
    if got != want:
        diff = list(difflib.unified_diff(want.splitlines(), got.splitlines(), "expected.json", "replayed",
                                         lineterm=""))
        pytest.fail(f"{name}: the replayed result differs from its golden file "
                    f"(regenerate with SEEDCHAIN_REGEN_GOLDEN=1 if intended):\n" + "\n".join(diff[:80]),
                    pytrace=False)


@pytest.mark.parametrize("name", names())
def test_the_parser_rebuilds_the_recorded_facts(name):
    """What the agent said, parsed again, is what the run recorded."""
    files = sorted((RUNS / name).glob("layer-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    saved = [json.loads(p.read_text()) for p in files]
    reports, loaders = _channel(name)
    booted = [s for s in saved if s.get("report")]
    assert len(reports) == len(booted), name
    assert len(loaders) == sum(s["loader_record"] is not None for s in saved), name
    for report, facts in zip(reports, booted, strict=True):
        assert report.layer == facts["report"]["layer"]
        assert report.fields == facts["report"]["fields"]
    for loader, facts in zip(loaders, saved, strict=False):
        assert facts["loader_record"] is not None
        assert loader == LayerFacts.from_json(facts).loader_record


@pytest.mark.parametrize("name", names())
def test_golden_verdicts_agree_with_the_recorded_run(name):
    """The golden file's verdicts are the ones the real run printed (older result files
    lack some keys; every check both have must agree)."""
    recorded = json.loads((RUNS / name / "result.json").read_text())
    expected = json.loads((RUNS / name / "expected.json").read_text())
    assert expected["passed"] == recorded["passed"], name
    assert len(expected["layers"]) == len(recorded["layers"]), name
    for want, got in zip(recorded["layers"], expected["layers"], strict=True):
        for key in ("booted", "received", "zeroed_sysfs", "zeroed_ram", "credited", "exposed", "passed_on"):
            assert got[key] == want[key], f"{name} layer {want['index']}: {key}"


def test_a_changed_verdict_shows_as_a_diff(monkeypatch):
    """The comparison can fail: a check that decides differently breaks the golden file."""
    from harness.checks import rules
    monkeypatch.setitem(rules.FUNCTIONS, "zeroed_ram", lambda f, nxt=None, prev=None: None)
    got = json.dumps(replay("kexec-file-2"), indent=2, sort_keys=True) + "\n"
    assert got != (RUNS / "kexec-file-2" / "expected.json").read_text()
