# SPDX-License-Identifier: GPL-2.0-only
"""The workflows as a CI maintainer audits them: zizmor (offline, at its default persona)
finds nothing in .github/workflows, and finds each hardening undone in a copy; beside it
the same rules read directly (actions pinned by commit with their version, least
permissions, checkouts without credentials, no expression inside a run: script, a
concurrency group each); and the steps that summarise, write KCIDB data and would
submit it, run as written over recorded results."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NIGHTLY, PULL_REQUEST = WORKFLOWS / "nightly.yml", WORKFLOWS / "pull-request.yml"
FIXTURES = Path(__file__).parent / "fixtures"
# `uses: owner/repo@<40 hex>  # vX.Y.Z`: a commit, and the release it is.
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})  # (v\d+\.\d+\.\d+)$")
# Each action's major: the first on the node24 runtime (see the nightly's head comment).
MAJORS = {"actions/checkout": "v5", "actions/cache": "v5", "actions/upload-artifact": "v6",
          "actions/download-artifact": "v7"}
SECRET = "kcidb-s3cr3t-do-not-print"


def _files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _steps(path: Path):
    for name, job in _load(path)["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def _step(path: Path, job: str, name: str) -> dict:
    return next(s for s in _load(path)["jobs"][job]["steps"] if s.get("name") == name)


# --- zizmor ------------------------------------------------------------------------------

def _zizmor(inputs: Path, cache: Path, *options: str) -> subprocess.CompletedProcess:
    """zizmor over a folder: offline, no configuration file (only its ignore comments in
    the workflows could silence a finding), no GitHub token in its environment."""
    beside = Path(sys.executable).parent / "zizmor"
    zizmor = str(beside) if beside.is_file() else shutil.which("zizmor")
    assert zizmor, "zizmor is missing: `./dev setup` (or `.venv/bin/pip install -e '.[test]'`) installs it"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ZIZMOR_") and k not in ("GH_TOKEN", "GITHUB_TOKEN", "GH_HOST")}
    return subprocess.run([zizmor, "--offline", "--no-config", "--no-progress", "--color", "never",
                           "--cache-dir", str(cache), *options, str(inputs)],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def _idents(proc: subprocess.CompletedProcess) -> list[str]:
    return sorted(finding["ident"] for finding in json.loads(proc.stdout))


def test_zizmor_finds_nothing(tmp_path):
    proc = _zizmor(WORKFLOWS, tmp_path)
    assert proc.returncode == 0 and "No findings to report" in proc.stdout, proc.stdout + proc.stderr


def test_zizmor_pedantic_finds_only_the_moving_debian_image(tmp_path):
    """The one finding accepted, beyond the default persona: `container: debian:bookworm`
    by tag, not digest. The jobs apt-get some 40 packages from Debian's archive into it at
    run time, so a digest would pin only the starting point, and hold back bookworm's
    security updates between bumps."""
    proc = _zizmor(WORKFLOWS, tmp_path, "--persona", "auditor", "--format", "json")
    findings = json.loads(proc.stdout)
    assert {f["ident"] for f in findings} == {"unpinned-images"}, proc.stdout + proc.stderr
    images = sum(1 for path in _files() for job in _load(path)["jobs"].values()
                 if job.get("container", {}).get("image") == "debian:bookworm")
    assert len(findings) == images


# Each hardening undone in a copy of a workflow: (file, text, replacement, zizmor's audit).
UNDONE = {
    "unpinned": (NIGHTLY, "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae  # v5.0.5",
                 "actions/cache@v5", "unpinned-uses"),
    "credentials": (PULL_REQUEST, "        with:\n          persist-credentials: false\n", "", "artipacked"),
    "injection": (NIGHTLY, '--cell "qemu=$CELL_QEMU"', '--cell "qemu=${{ matrix.qemu }}"', "template-injection"),
    # the kcidb-submit job asks for none of its own: without the top level's {} it would have
    # the repository's default token
    "permissions": (NIGHTLY, "\npermissions: {}\n", "\n", "excessive-permissions"),
}


@pytest.mark.parametrize("undo", UNDONE)
def test_zizmor_finds_each_hardening_undone(tmp_path, undo):
    """A pass above means zizmor looked: the same run finds exactly the one thing undone."""
    path, text, replacement, audit = UNDONE[undo]
    original = path.read_text()
    assert text in original
    copy = tmp_path / "repo" / ".github" / "workflows" / path.name
    copy.parent.mkdir(parents=True)
    copy.write_text(original.replace(text, replacement, 1))
    proc = _zizmor(copy.parent, tmp_path / "cache", "--format", "json")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert set(_idents(proc)) == {audit}, proc.stdout + proc.stderr


# --- the rules, read directly ------------------------------------------------------------

@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_version(path: Path) -> None:
    seen: dict[tuple[str, str], str] = {}
    for path_ in _files():                                # one commit per release, across files
        for line in path_.read_text().splitlines():
            if m := PINNED.match(line):
                assert seen.setdefault((m[1], m[3]), m[2]) == m[2], line
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert lines
    for line in lines:
        m = PINNED.match(line)
        assert m, f"not pinned by commit with its version as a comment: {line.strip()}"
        assert m[3].split(".")[0] == MAJORS[m[1]], line


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_least_permissions(path):
    wf = _load(path)
    assert wf["permissions"] == {}                          # nothing unless a job asks
    for name, job in wf["jobs"].items():
        asked = job.get("permissions", {})
        assert set(asked.values()) <= {"read", "none"}, (name, asked)
        if any("actions/checkout@" in s.get("uses", "") for s in job["steps"]):
            assert asked == {"contents": "read"}, name
        else:
            assert asked == {}, name


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_checkouts_keep_no_credentials_and_runs_expand_no_expression(path):
    checkouts = 0
    for name, step in _steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            checkouts += 1
            assert step["with"]["persist-credentials"] is False, name
        assert "${{" not in step.get("run", ""), (name, step["run"])
    assert checkouts


def test_concurrency_groups():
    nightly, pr = _load(NIGHTLY), _load(PULL_REQUEST)
    # a nightly waits for the one under way; a pull request's push cancels its older runs
    assert nightly["concurrency"] == {"group": "${{ github.workflow }}-${{ github.ref }}",
                                      "cancel-in-progress": False}
    assert pr["concurrency"] == {"group": "${{ github.workflow }}-${{ github.event.pull_request.number }}",
                                 "cancel-in-progress": True}


def test_the_pull_request_workflow_runs_the_unit_tests_and_two_scenarios_with_no_secret():
    assert PULL_REQUEST in _files()
    pr = _load(PULL_REQUEST)
    assert set(pr[True]) == {"pull_request"}                 # YAML 1.1 reads the key "on" as True
    assert "secrets." not in PULL_REQUEST.read_text()
    runs = [shlex.split(s["run"]) for _, s in _steps(PULL_REQUEST) if "run" in s]
    assert [".venv/bin/pytest", "tests", "-m", "not vm and not network", "-p", "no:cacheprovider"] in runs
    assert ["./dev", "setup"] in runs
    (boot,) = [argv for argv in runs if argv[:2] == [".venv/bin/seedchain", "run"]]
    assert [a for a in boot if a.endswith(".yaml")] == ["scenarios/kexec-file-2.yaml",
                                                        "scenarios/a64-qemu-hop.yaml"]


# --- the steps, run as written -----------------------------------------------------------

def _venv(where: Path) -> None:
    """.venv/bin/python and .venv/bin/seedchain in `where`: this Python, this checkout."""
    bin_dir = where / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, args in (("python", ""), ("seedchain", " -m harness.cli")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{args} "$@"\n')
        (bin_dir / name).chmod(0o755)


def _run(step: dict, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """A run: step as GitHub runs it in these jobs' containers (bash -e), with the step's
    env: given by the caller in place of its expressions."""
    assert set(step.get("env", {})) <= set(env), (step.get("env"), env)
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
               "PYTHONPATH": str(ROOT), "GITHUB_OUTPUT": str(cwd / "output"),
               "GITHUB_STEP_SUMMARY": str(cwd / "summary.md"), **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-e", "-c", step["run"]], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_the_nightly_report_job_writes_the_report_its_summary_and_kcidb_data(tmp_path):
    """Its steps after the set-up, over two cells jobs' results laid out as
    download-artifact lays them (one folder per artifact)."""
    _venv(tmp_path)
    for job in ("job-a", "job-b"):
        shutil.copytree(FIXTURES / "matrix" / job, tmp_path / "all-results" / f"results-qemu-{job}")
    for name in ("merge into one matrix report", "job summary, the counts and what needs a look",
                 "the results as KCIDB data"):
        step = _step(NIGHTLY, "report", name)
        proc = _run(step, tmp_path)
        assert proc.returncode == 0, (name, proc.stdout + proc.stderr)
    report = json.loads((tmp_path / "all-results" / "matrix" / "matrix.json").read_text())
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## seedchain nightly matrix\n")
    for status, label in (("pass", "pass"), ("known-gap", "known gap (xfail)"), ("fail", "fail"),
                          ("error", "error"), ("unexpected-pass", "unexpected pass")):
        assert f"| {label} | {report['counts'][status]} |" in summary
    look = [c["id"] for c in report["cells"] if c["status"] in ("fail", "error", "unexpected-pass")]
    assert look and f"### Needs a look: {len(look)}" in summary
    assert all(f"{cell_id}: " in summary for cell_id in look)
    assert (tmp_path / "all-results" / "matrix" / "matrix.png").is_file()          # --screenshot
    kcidb = json.loads((tmp_path / "kcidb" / "kcidb.json").read_text())
    assert kcidb["tests"]
    upload = _step(NIGHTLY, "report", "upload the KCIDB data")
    assert upload["if"] == "always()" and upload["with"]["path"] == "kcidb/kcidb.json"
    assert all(_step(NIGHTLY, "report", n)["if"] == "always()" for n in (
        "job summary, the counts and what needs a look", "the results as KCIDB data"))


def test_the_pull_request_summary_over_recorded_runs(tmp_path):
    _venv(tmp_path)
    for scenario in ("kexec-file-2", "a64-qemu-hop"):
        shutil.copytree(FIXTURES / "runs" / scenario, tmp_path / "results" / scenario)
    for name in ("a matrix report of them", "job summary, the counts and what needs a look"):
        proc = _run(_step(PULL_REQUEST, "scenarios", name), tmp_path)
        assert proc.returncode == 0, (name, proc.stdout + proc.stderr)
    summary = (tmp_path / "summary.md").read_text()
    assert "| pass | 2 |" in summary and "Nothing needs a look." in summary


def test_the_kcidb_submission_is_off_without_a_credential_and_never_pretends(tmp_path):
    job = _load(NIGHTLY)["jobs"]["kcidb-submit"]
    assert job["environment"] == "kcidb" and "permissions" not in job       # the top level's: none
    assert not any("actions/checkout@" in s.get("uses", "") for s in job["steps"])   # no project code
    check, download, submit = job["steps"]
    # the secret only here, through env, and nowhere else in any workflow
    secrets = [line for path in _files() for line in path.read_text().splitlines() if "secrets." in line]
    assert secrets == ["          KCIDB_CREDENTIALS: ${{ secrets.KCIDB_CREDENTIALS }}"] * 2
    assert check["env"] == submit["env"] == {"KCIDB_CREDENTIALS": "${{ secrets.KCIDB_CREDENTIALS }}"}
    assert download["if"] == submit["if"] == f"steps.{check['id']}.outputs.configured == 'yes'"
    for value, configured in (("", "no"), (SECRET, "yes")):
        (tmp_path / "output").unlink(missing_ok=True)
        proc = _run(check, tmp_path, KCIDB_CREDENTIALS=value)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "output").read_text() == f"configured={configured}\n"
        assert SECRET not in proc.stdout + proc.stderr
    proc = _run(submit, tmp_path, KCIDB_CREDENTIALS=SECRET)
    assert proc.returncode == 1                      # a placeholder: it fails rather than pass as sent
    assert proc.stdout.startswith("::error::") and "placeholder" in proc.stdout and "submitted nothing" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr
