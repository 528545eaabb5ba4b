# SPDX-License-Identifier: GPL-2.0-only
"""Linters are tests: ruff over the Python code, mypy with the configuration in
pyproject.toml (strict on the pure stages), shellcheck over every shell script the
project ships (the guest agent included). Each finds nothing, or the test fails with
what it found."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PYTHON = ["harness", "bench", "tests", "conftest.py"]
SHELL = ["images/agent/agent.sh", "images/agent/x86_64.sh", "images/agent/aarch64.sh", ".ci/run", "dev"]


def _tool(name: str) -> str:
    """The tool beside this Python (the test extras install it), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} is missing: .venv/bin/pip install -e '.[test]'"
    return found


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_ruff_finds_nothing():
    proc = _run(_tool("ruff"), "check", "--no-cache", *PYTHON)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_finds_nothing():
    proc = _run(sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_finds_nothing_in_the_agent_and_the_scripts():
    proc = _run(_tool("shellcheck"), "-x", "-P", "SCRIPTDIR", *SHELL)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shell_script_is_checked():
    """A shell script added to the project is added to SHELL too."""
    shipped = {str(p.relative_to(ROOT)) for p in ROOT.glob("*/**/*.sh") if ".venv" not in p.parts}
    assert shipped <= set(SHELL), sorted(shipped - set(SHELL))
    assert all((ROOT / script).is_file() for script in SHELL)
