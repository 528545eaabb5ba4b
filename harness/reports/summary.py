# SPDX-License-Identifier: GPL-2.0-only
"""A CI job summary from a matrix report: the cells by status, then what needs a look.

    python -m harness.reports.summary ARTIFACTS/matrix/matrix.json [--title TITLE]

prints Markdown for GitHub Actions' job summary (the workflows append it to
$GITHUB_STEP_SUMMARY after `seedchain report` wrote matrix.json). The list is the one
matrix.md and matrix.html show (harness.reports.render.needs_a_look: unexpected passes,
failures, harness errors), at most MAX_LISTED cells. Everything a result says is data:
the list is one fenced block with no control characters, so no text from a result is
rendered as a link, an image or HTML. A report that is not there is one line saying so
(the step that writes it failed, and says why in its own log).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import SeedchainError
from harness.matrix.known_gaps import STATUSES
from harness.reports.matrix import STATUS_MEANING
from harness.reports.render import needs_a_look, oneline

MAX_LISTED = 50
LABELS = {"known-gap": "known gap (xfail)", "unexpected-pass": "unexpected pass"}


def _plain(text: object) -> str:
    """One line of printable characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in oneline(text))


def _fenced(lines: Sequence[str]) -> str:
    """The lines as a code block whose fence no run of backticks in them can close."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([f"{fence}text", *lines, fence])


def summary(report: dict, title: str) -> str:
    counts = report.get("counts") or {}
    cells = report.get("cells") or []
    order = [s for s in STATUSES if s in counts] + [s for s in counts if s not in STATUSES]
    out = [f"## {_plain(title)}", "", f"{len(cells)} cells.", "",
           "| status | cells | meaning |", "|---|---:|---|"]
    out += [f"| {LABELS.get(s, _plain(s))} | {int(counts[s])} | {STATUS_MEANING.get(s, '')} |" for s in order]
    look = needs_a_look(cells)
    out += ["", f"### Needs a look: {len(look)}" if look else "Nothing needs a look."]
    if look:
        lines = [f"{_plain(cell['id'])}: {cell['status']}\n    {_plain(what)}" for cell, what in look[:MAX_LISTED]]
        if len(look) > MAX_LISTED:
            lines.append(f"... and {len(look) - MAX_LISTED} more: see matrix.md in the report's artifact")
        out += ["", _fenced("\n".join(lines).splitlines())]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.reports.summary",
        description="Print a Markdown job summary (counts by status, what needs a look) of a matrix.json.")
    parser.add_argument("report", type=Path, metavar="MATRIX_JSON")
    parser.add_argument("--title", default="seedchain matrix")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"## {_plain(args.title)}\n\nNo matrix report was written ({_plain(args.report)}): "
              "the step that writes it failed; its log says why.")
        return 0
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
        if not isinstance(report, dict) or not isinstance(report.get("cells"), list):
            raise ValueError("not a matrix report (no list of cells)")
        text = summary(report, args.title)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        error = SeedchainError(f"cannot read it as a matrix report: {_plain(e)}", where=str(args.report),
                               hint="give the matrix.json that `seedchain report OUT RESULTS...` wrote into OUT")
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
