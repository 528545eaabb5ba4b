# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain explain CHECK`: docs/checks.md's section and table row for the check, the
same text the reference shows; an unknown name is exit 2 with the list of checks."""

import re
import tomllib
from pathlib import Path

import pytest

from harness.explain import CHECKS_DOC, explain, sections
from harness.scenario.model import CHECKS
from test_cli import seedchain

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("check", CHECKS)
def test_every_check_is_explained_from_its_section_of_the_reference(check):
    text = explain(check)
    body = sections(CHECKS_DOC.read_text())[check]
    assert "Reads" in text and "Fails" in text
    first = body.splitlines()[0].replace("**", "").replace("`", "")
    assert first in text, "the reference's own words"
    shown = re.search(r"^Shown failing by the recorded runs of: (.+)$", text, flags=re.M)
    assert shown, text
    for name in re.findall(r"([\w-]+) \(layer \d+\)", shown[1]):
        assert (ROOT / "scenarios" / f"{name}.yaml").is_file(), f"{check}: {name} is not a shipped scenario"


def test_explain_on_the_command_line():
    proc = seedchain("explain", "fresh")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("fresh: the unwanted answer is 'no'")
    assert "qemu720-replayed-seed (layer 1)" in proc.stdout and "**" not in proc.stdout


@pytest.mark.parametrize("name", ["freshness", "FRESH", "", "../docs/checks"])
def test_an_unknown_check_is_exit_2_with_the_list_of_checks(name):
    proc = seedchain("explain", name)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "unknown check" in proc.stderr
    assert ", ".join(CHECKS) in proc.stderr


def test_a_reference_without_the_check_is_an_error_not_a_traceback(tmp_path):
    from harness.errors import SeedchainError
    (tmp_path / "checks.md").write_text("# The checks\n\n## fresh\n\n**Reads** nothing.\n")
    with pytest.raises(SeedchainError, match="no section or table row for 'fresh'"):
        explain("fresh", tmp_path / "checks.md")


def test_the_wheel_carries_the_reference_explain_reads():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setup["package-dir"]["harness._docs"] == "docs"
    assert "checks.md" in setup["package-data"]["harness._docs"]
    assert CHECKS_DOC == ROOT / "docs" / "checks.md"
