"""seedchain as a package: the wheel carries what a run reads (the recipes and the agent
from images/, the schemas and the shipped scenarios from scenarios/), an installed
seedchain runs from any folder, and installing it changes nothing in another project's
pytest run. The wheel is built from a copy of this tree (a build writes build/ and
*.egg-info beside its sources) and installed into a fresh venv with its dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_harness_package_goes_into_the_wheel():
    """pyproject.toml lists the packages by hand (two of them are images/ and scenarios/
    mapped into harness/): a new subpackage missing there would be missing from the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "harness").rglob("__init__.py")}
    assert listed == found | {"harness._images", "harness._scenarios"}

