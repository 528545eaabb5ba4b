# SPDX-License-Identifier: GPL-2.0-only
"""seedchain as a package: the wheel carries what a run reads (the recipes and the agent
from images/, the schemas and the shipped scenarios from scenarios/), an installed
seedchain runs from any folder, and installing it changes nothing in another project's
pytest run. The wheel is built from a copy of this tree (a build writes build/ and
*.egg-info beside its sources) and installed into a fresh venv with its dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                  ".hypothesis", ".tox", "seedchain-results")


def test_every_harness_package_goes_into_the_wheel():
    """pyproject.toml lists the packages by hand (two of them are images/ and scenarios/
    mapped into harness/): a new subpackage missing there would be missing from the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "harness").rglob("__init__.py")}
    assert listed == found | {"harness._images", "harness._scenarios", "harness._docs"}


def _run(*args, cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert "Traceback (most recent call last)" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def _install(top: Path) -> tuple[Path, dict[str, str]]:
    """In `top`, a fresh venv with the wheel built from this tree and its dependencies: its bin/
    folder, and an environment that names neither this checkout nor its venv."""
    source = top / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", source, "-w", top / "dist",
                 cwd=top, env=env, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (top / "dist").glob("seedchain-*.whl")
    venv = top / "venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=top, env=env)
    assert made.returncode == 0, made.stderr
    pip = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=top, env=env, timeout=900)
    assert pip.returncode == 0, pip.stderr
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv / "bin", env


@pytest.mark.vm
@pytest.mark.network
def test_an_installed_seedchain_runs_from_any_folder_and_leaves_other_pytest_runs_alone(tmp_path, seedchain):
    """Installed from a wheel, seedchain crashed on import (the recipes under images/ were
    not in it); the shipped scenarios were not there to list, check or run. And the pytest
    plugin was an entry point: an unrelated project's pytest in that venv gained --kernel,
    --qemu and --matrix, and its data.yaml beside a schema.json was collected as a failing
    scenario."""
    bin_, env = _install(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    (project / "data.yaml").write_text("name: data\nvalues: [1, 2]\n")
    (project / "schema.json").write_text('{"type": "object"}\n')
    helptext = _run(bin_ / "pytest", "--help", cwd=project, env=env)
    assert helptext.returncode == 0, helptext.stderr
    for option in ("--kernel", "--qemu", "--matrix", "--artifacts", "seedchain"):
        assert option not in helptext.stdout, option
    proc = _run(bin_ / "pytest", "-p", "no:cacheprovider", "-q", cwd=project, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()          # a plain pytest -q: one dot, one test passed
    assert lines[0].startswith(". ") and lines[-1].startswith("1 passed in ") and len(lines) == 2, proc.stdout
    listed = _run(bin_ / "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", cwd=project, env=env)
    assert listed.returncode == 0 and listed.stdout.splitlines()[0] == "test_one.py::test_one", listed.stdout
    assert "1 test collected" in listed.stdout
    # asked for, the plugin is there
    asked = _run(bin_ / "pytest", "-p", "harness.pytest_session", "--help", cwd=project, env=env)
    assert asked.returncode == 0 and "--kernel" in asked.stdout, asked.stdout + asked.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(bin_ / "python", "-c", "import harness.paths as p; print(p.SCENARIOS); print(p.IMAGES)",
                 cwd=elsewhere, env=env)
    shipped, images = map(Path, where.stdout.split())
    assert shipped.is_relative_to(bin_.parent) and images.is_relative_to(bin_.parent), where.stdout
    assert (images / "agent" / "agent.sh").is_file() and (shipped / "result.schema.json").is_file()

    helptext = _run(bin_ / "seedchain", "--help", cwd=elsewhere, env=env)
    assert helptext.returncode == 0 and "run" in helptext.stdout, helptext.stderr
    version = _run(bin_ / "seedchain", "--version", cwd=elsewhere, env=env)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version.returncode == 0 and version.stdout.strip() == f"seedchain {expected}", version.stdout
    listed = _run(bin_ / "seedchain", "list", cwd=elsewhere, env=env)
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert listed.returncode == 0 and "qemu-only" in names and "kexec-file-2" in names, listed.stderr
    assert len(names) == len([p for p in (ROOT / "scenarios").glob("*.yaml")
                              if p.name not in ("matrix.yaml", "known-gaps.yaml")])
    scenario = shipped / "qemu-only.yaml"
    checked = _run(bin_ / "seedchain", "check", scenario, cwd=elsewhere, env=env)
    assert checked.returncode == 0 and ": ok (" in checked.stdout, checked.stdout + checked.stderr

    # the project is the installed package's own folder, never the site-packages around it
    for kernel, said in ((images / "agent" / "agent.sh", "is not an x86 bzImage"),
                         (images.parent.parent / "yaml" / "__init__.py", "leads out of the scenario's folder")):
        (elsewhere / "mine.yaml").write_text(f"name: mine\ndescription: d\nlayers:\n  - kernel: {kernel}\n")
        refused = _run(bin_ / "seedchain", "check", elsewhere / "mine.yaml", cwd=elsewhere, env=env)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
    (elsewhere / "mine.yaml").unlink()

    artifacts = tmp_path / "artifacts"
    ran = _run(bin_ / "seedchain", "run", scenario, "--artifacts", artifacts, "--cache", seedchain.cache.root,
               "--json", tmp_path / "result.json", cwd=elsewhere, env=env, timeout=900)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "result.json").is_file() and (artifacts / "qemu-only").is_dir()
    assert list(elsewhere.iterdir()) == []          # nothing written where it was started
