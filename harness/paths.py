# SPDX-License-Identifier: GPL-2.0-only
"""Where the project's own files are: what goes into or under a guest (the agent, the
recipes), the shipped scenarios (their schemas, matrix.yaml, known-gaps.yaml), and
docs/checks.md, which `seedchain explain` reads.

In a checkout they are the top-level images/ and scenarios/ folders. A built package
carries the same inside itself, as harness/_images, harness/_scenarios and harness/_docs
(pyproject.toml maps them there), so an installed seedchain runs from any folder.

PROJECT is what counts as the project's own files when a scenario names a kernel path
(harness/scenario/load.py): the checkout, or in an installed package the package itself
(never the site-packages folder around it).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

if (PACKAGE / "_images").is_dir():          # an installed package
    PROJECT = PACKAGE
    IMAGES = PACKAGE / "_images"
    SCENARIOS = PACKAGE / "_scenarios"
    DOCS = PACKAGE / "_docs"                # checks.md only (seedchain explain)
else:                                       # a checkout (or an editable install of one)
    PROJECT = PACKAGE.parent
    IMAGES = PROJECT / "images"
    SCENARIOS = PROJECT / "scenarios"
    DOCS = PROJECT / "docs"
