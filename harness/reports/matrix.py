# SPDX-License-Identifier: GPL-2.0-only
"""The matrix report: every cell's result classified against the known gaps.

    seedchain report OUT_DIR RESULT_DIRS_OR_FILES... [--gaps FILE]

writes into OUT_DIR:

  matrix.json  every cell: id, axis values, versions, per-layer seed state, its
               classification (harness.known_gaps) and links to its artifacts
  matrix.md    counts by status, one row per cell, then what needs a look
  matrix.html  one self-contained page (inline CSS and JS, nothing fetched): per
               scenario a grid, rows = the kernel axis (the scenario when there is
               none), columns = the qemu axis; other axes are sub-rows

merge() reads the result.json files of several runs (e.g. CI jobs) into one list.
`seedchain report --kcidb OUT.json RESULTS...` writes them as KCIDB data instead
(harness.reports.kcidb).

This module writes the report's files and holds its command line. The cells it is
made of (merging, the cell records, counting, the states' names) are
harness.reports.cells, the vocabulary render and kcidb share with it;
harness.reports.render turns the cell records into matrix.md and matrix.html (Jinja2
templates in templates/); harness.reports.browser runs headless Chromium for
--screenshot.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

from harness import text
from harness.private import make_folder, write_file
from harness.errors import SeedchainError
from harness.paths import SCENARIOS
from harness.matrix.known_gaps import Gap, classify, load_gaps
from harness.reports.browser import chromium, screenshot  # noqa: F401  (re-exported)
from harness.reports.cells import (  # noqa: F401  (re-exported: the report's vocabulary, as before)
    ARTIFACT_FILES, KERNEL_AXIS, QEMU_AXIS, REPORT_FORMAT, RESULT_NAME, STATE_MEANING, STATES,
    STATUS_MEANING, artifacts_dir, cell_record, count, layer_state, merge, unreadable)
from harness.reports.kcidb import main as kcidb_main
from harness.reports.render import render_html, render_markdown

DEFAULT_GAPS = SCENARIOS / "known-gaps.yaml"


# --- the report --------------------------------------------------------------------------

@dataclass
class MatrixReport:
    cells: list[dict]
    counts: dict[str, int]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No failure, harness error or unexpected pass."""
        return not any(self.counts[s] for s in ("fail", "error", "unexpected-pass"))


def build(results: Sequence[dict], gaps: Sequence[Gap], out_dir: Path) -> MatrixReport:
    return MatrixReport(cells=(cells := [_cell(r, gaps, Path(out_dir)) for r in results]), counts=count(cells))


def _cell(result: dict, gaps: Sequence[Gap], out_dir: Path) -> dict:
    """One result's cell; a result whose fields _shape_problem let through but that still
    cannot be read (a value of a shape no seedchain writes) becomes an error cell."""
    try:
        return cell_record(result, classify(result, gaps), out_dir)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:
        bad = unreadable(str(result.get("result_file") or "?"), f"not a seedchain result ({type(e).__name__})")
        return cell_record(bad, classify(bad, gaps), out_dir)


def write_report(results: Sequence[dict], gaps: Sequence[Gap], out_dir: Path) -> MatrixReport:
    """Classify every result and write matrix.json, matrix.md and matrix.html."""
    out_dir = Path(out_dir)
    make_folder(out_dir)
    report = build(results, gaps, out_dir)
    texts = {
        "matrix.json": json.dumps({"format": REPORT_FORMAT, "counts": report.counts,
                                   "gaps": [g.to_json() for g in gaps],
                                   "cells": report.cells}, indent=2) + "\n",
        "matrix.md": render_markdown(report.cells, gaps),
        "matrix.html": render_html(report.cells, gaps),
    }
    for name, content in texts.items():
        write_file(out_dir / name, content.encode("utf-8"), follow=True)
        report.files[name] = out_dir / name
    return report


# --- command line ------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg.startswith("--kcidb") for arg in argv):
        return kcidb_main(argv)                                 # KCIDB data instead of the report
    parser = argparse.ArgumentParser(
        prog="seedchain report",
        description="Classify matrix results against the known gaps; write matrix.json, "
                    "matrix.md and matrix.html into OUT_DIR.",
        epilog="seedchain report --kcidb OUT.json RESULTS... writes the results as KCIDB data "
               "instead (see seedchain report --kcidb OUT.json --help).")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="result.json files or folders holding them (searched recursively); "
                             "later ones replace earlier cells with the same id")
    parser.add_argument("--gaps", type=Path, default=DEFAULT_GAPS,
                        help=f"known-gaps file (default: {DEFAULT_GAPS})")
    parser.add_argument("--no-gaps", action="store_true", help="classify without known gaps")
    parser.add_argument("--screenshot", action="store_true",
                        help="also write matrix.png, the page in headless Chromium")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a cell is fail, error or unexpected-pass")
    args = parser.parse_args(argv)
    try:
        gaps = () if args.no_gaps else load_gaps(args.gaps)
        results = merge(args.results)
        if not results:
            raise SeedchainError(f"no {RESULT_NAME} under {' '.join(args.results)}",
                                 hint="give result.json files or folders holding them (seedchain run --artifacts)")
        try:
            report = write_report(results, gaps, args.out_dir)
        except OSError as e:
            raise SeedchainError(f"cannot write the report: {e.strerror}", where=str(args.out_dir),
                                 hint="give OUT_DIR a folder you can write to (a missing one is made)") from None
        if args.screenshot:
            report.files["matrix.png"] = screenshot(report.files["matrix.html"], args.out_dir / "matrix.png")
    except SeedchainError as e:
        print(f"error: {text.terminal(e)}", file=sys.stderr)
        return 2
    for cell in report.cells:
        if cell["status"] in ("fail", "error", "unexpected-pass"):
            print(text.terminal(cell["summary"]))       # ids and findings come from result files
    print(", ".join(f"{n} {s}" for s, n in report.counts.items() if n) or "no cells")
    for path in report.files.values():
        print(f"wrote {path}")
    return 1 if args.check and not report.ok else 0


if __name__ == "__main__":
    sys.exit(main())
