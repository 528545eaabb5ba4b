"""The nightly workflow: it parses, and every command it runs exists in the repository."""

import re
import shlex
from pathlib import Path

import yaml

from harness.cli import _parser
from harness.matrix.expand import expand

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _commands(job: dict) -> list[list[str]]:
    commands = []
    for step in job["steps"]:
        if "run" in step:
            text = " ".join(step["run"].split("\n")).strip()
            for part in text.split("&&"):
                commands.append(shlex.split(part))
    return commands


def test_it_parses_and_has_its_jobs():
    wf = _workflow()
    assert set(wf["jobs"]) == {"cells", "report"}
    assert wf["jobs"]["report"]["needs"] == "cells"
    assert wf[True]["schedule"]          # YAML 1.1 reads the key "on" as True


def test_every_command_is_in_the_repository():
    known_subcommands = set(_parser()._subparsers._group_actions[0].choices)
    for name, job in _workflow()["jobs"].items():
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
            if tool == ".venv/bin/pytest":
                options = (ROOT / "conftest.py").read_text()
                for arg in argv:
                    if arg.startswith("--") and arg not in ("--junitxml",):
                        assert f'"{arg}"' in options or arg in ("--artifacts",), arg


def test_the_jobs_cover_every_cell_once():
    job = _workflow()["jobs"]["cells"]
    labels = job["strategy"]["matrix"]["qemu"]
    argv = next(a for a in _commands(job) if a[0] == ".venv/bin/pytest")
    matrix = argv[argv.index("--matrix") + 1]
    cells = expand(ROOT / "scenarios" / "matrix.yaml", matrix)
    covered = []
    for label in labels:
        mine = [c.id for c in cells if dict(c.cell).get("qemu", "-") == label]
        assert mine, f"job qemu={label} would run no cell"
        covered += mine
    assert sorted(covered) == sorted(c.id for c in cells)


def test_the_image_cache_key_hashes_files_that_exist():
    text = (ROOT / ".github" / "workflows" / "nightly.yml").read_text()
    patterns = [p for call in re.findall(r"hashFiles\(([^)]*)\)", text) for p in re.findall(r"'([^']+)'", call)]
    assert patterns
    for pattern in patterns:
        assert list(ROOT.glob(pattern)), f"hashFiles('{pattern}') matches no file: the cache key ignores it"
