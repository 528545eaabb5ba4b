# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain explain CHECK`: what a check reads, how it can fail, and which shipped
scenario's recorded run shows it failing.

The text is docs/checks.md itself, parsed here: its `## CHECK` section (**Reads**,
**Fails**) and its row of the "unwanted | seen in" table. A copy of that prose in the
code would be a second text to keep equal to the first; read from the one file, the
command and the reference cannot say different things. tests/test_docs.py checks the
file's table against the recorded runs, and tests/test_explain.py that every check has
its section. The wheel carries the file as harness/_docs/checks.md (pyproject.toml).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import SeedchainError
from harness.paths import DOCS
from harness.scenario.model import CHECKS

CHECKS_DOC = DOCS / "checks.md"
_ROW = re.compile(r"^\| (\w+) \| (yes|no) \| (.+) \|$", re.M)


def _plain(markdown: str) -> str:
    """Markdown made terminal text: no bold markers or backticks, links as their text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", markdown)
    return text.replace("**", "").replace("`", "")


def sections(doc: str) -> dict[str, str]:
    """Each `## NAME` section's text, up to the next heading."""
    parts = re.split(r"^## +(.+?) *$", doc, flags=re.M)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def explain(check: str, doc_file: Path = CHECKS_DOC) -> str:
    """The explanation of one check; an unknown name is a SeedchainError listing the checks."""
    if check not in CHECKS:
        raise SeedchainError(f"unknown check {check!r}", where="explain",
                             hint="give one of: " + ", ".join(CHECKS))
    try:
        doc = doc_file.read_text()
    except OSError as err:
        raise SeedchainError(f"cannot read {doc_file}: {err.strerror}", where="explain",
                             hint="reinstall seedchain; the checks' reference ships with it") from None
    body = sections(doc).get(check)
    rows = {name: (unwanted, seen) for name, unwanted, seen in _ROW.findall(doc)}
    if body is None or check not in rows:
        raise SeedchainError(f"{doc_file} has no section or table row for {check!r}", where="explain",
                             hint="reinstall seedchain, or mend docs/checks.md in a checkout")
    unwanted, seen = rows[check]
    shown = re.sub(r"`([\w-]+):(\d+)`", r"\1 (layer \2)", seen)
    lines = [f"{check}: the unwanted answer is {unwanted!r}", "", _plain(body), "",
             f"Shown failing by the recorded runs of: {_plain(shown)}",
             f"(the scenarios are shipped: seedchain list; the reference: {_where(doc_file)})"]
    return "\n".join(lines)


def _where(doc_file: Path) -> str:
    return "docs/checks.md" if doc_file.parent.name == "docs" else str(doc_file)
