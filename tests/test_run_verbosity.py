# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain run -q` and `-v`: -q prints one verdict line per scenario and the errors,
-v adds the details the stages log (otherwise unseen), the default is unchanged. The
run itself is the recorded old-child run replayed (tests/test_golden.py): no QEMU."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from harness import cli
from harness.jobs import Outcome
from harness.progress import reporting
from test_golden import ROOT, replayed

DETAIL = "downloaded 3 package(s) from bookworm in 0.4 s"


@pytest.fixture
def fake_run(monkeypatch):
    """run_all as the pipeline drives it: a step line, a detail logged deep in a stage
    (harness/images/apt.py logs so), the judged result of the recorded run."""
    errors: list[str] = []

    def run_all(scenarios, *, jobs, cache, artifacts, progress, done):
        outcomes = []
        for index, scenario in enumerate(scenarios):
            progress(scenario, f"{scenario.name}: building images")
            with reporting(lambda message, s=scenario: progress(s, f"{s.name}: {message}")):
                logging.getLogger("harness.images.apt").info(DETAIL)
            result = replace(replayed("old-child"), scenario=scenario, error=errors[0] if errors else None)
            outcomes.append(Outcome(scenario=scenario, result=result))
            done(index, outcomes[-1])
        return outcomes

    monkeypatch.setattr(cli, "run_all", run_all)
    monkeypatch.setenv("NO_COLOR", "1")
    return errors


def _run(capsys, tmp_path, *options, twice=False):
    scenario = ROOT / "scenarios" / "old-child.yaml"
    files = [scenario, ROOT / "scenarios" / "kexec-file-2.yaml"] if twice else [scenario]
    status = cli.main(["run", *options, "--artifacts", str(tmp_path / "out"), *map(str, files)])
    out, err = capsys.readouterr()
    return status, out, err


def test_default_prints_the_steps_and_the_table_but_not_the_details(fake_run, capsys, tmp_path):
    status, out, err = _run(capsys, tmp_path)
    assert status == 0 and err == ""
    assert "  old-child: building images" in out and "old-child: PASS" in out
    assert "# kernel" in out and "artifacts:" in out
    assert DETAIL not in out


def test_quiet_prints_one_verdict_line(fake_run, capsys, tmp_path):
    status, out, err = _run(capsys, tmp_path, "-q")
    assert status == 0 and err == ""
    (line,) = out.splitlines()
    assert line.startswith("old-child: PASS  (QEMU 7.2.22")


def test_quiet_prints_one_line_per_scenario_and_no_count(fake_run, capsys, tmp_path):
    status, out, err = _run(capsys, tmp_path, "-q", twice=True)
    assert status == 0 and err == ""
    assert [line.split(":")[0] for line in out.splitlines()] == ["old-child", "kexec-file-2"], out


def test_quiet_still_prints_errors(fake_run, capsys, tmp_path):
    fake_run.append("QEMU was killed by signal 9 from outside seedchain")
    status, out, err = _run(capsys, tmp_path, "-q")
    assert status == 125
    assert out.splitlines() == [out.splitlines()[0]] and "ERROR (no verdict)" in out
    assert err == "seedchain: error: QEMU was killed by signal 9 from outside seedchain\n"


def test_verbose_adds_the_logged_details(fake_run, capsys, tmp_path):
    status, out, err = _run(capsys, tmp_path, "-v")
    assert status == 0
    assert f"  old-child: {DETAIL}" in out
    assert "# kernel" in out
    assert logging.getLogger("harness").handlers == [], "the handler goes with the run"


def test_quiet_and_verbose_together_are_refused(fake_run, capsys, tmp_path):
    status, out, err = _run(capsys, tmp_path, "-q", "-v")
    assert status == 125 and "not allowed with" in err
