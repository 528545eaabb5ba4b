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

This module is the data side: merging, the cell records, counting, writing the
files and the command line. harness.reports.render turns the cell records into
matrix.md and matrix.html (Jinja2 templates in templates/); harness.reports.browser
runs headless Chromium for --screenshot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from harness import files, text
from harness.private import make_folder, write_file
from harness.errors import SeedchainError
from harness.paths import SCENARIOS
from harness.matrix.known_gaps import (STATUSES, Classification, Gap, classify, load_gaps,
                                       result_id)
from harness.reports.browser import chromium, screenshot  # noqa: F401  (re-exported)
from harness.scenario.model import CHECKS

REPORT_FORMAT = 1
ARTIFACT_FILES = ("console.log", "agent.log", "result.json")
RESULT_NAME = "result.json"
MAX_RESULT_BYTES = 64 << 20     # a result.json is tens of KiB
MAX_RESULT_DEPTH = 32           # and nests 6 deep; deeper ones would fail whatever walks them
DEFAULT_GAPS = SCENARIOS / "known-gaps.yaml"
QEMU_AXIS, KERNEL_AXIS = "qemu", "kernel"

# The seed's state in a layer, as shown by the marks: (css class, label).
STATES = {
    "consumed": "consumed",
    "absent": "absent",
    "not-zeroed": "not zeroed",
    "exposed": "exposed",
    "stale": "not fresh",
    "lingering": "copy lingers",
    "did-not-boot": "did not boot",
    "unknown": "unknown",
}
STATE_MEANING = {
    "consumed": "a seed arrived and was zeroed (sysfs and RAM)",
    "absent": "no seed reached this layer",
    "not-zeroed": "a seed arrived and was left in place",
    "exposed": "a seed arrived and any user can read it in sysfs",
    "stale": "the seed caught in flight was all zero, seen before, or not the one the kernel kept",
    "lingering": "consumed, but a copy of a seed is still in the layer's RAM",
    "did-not-boot": "the layer did not report (panic, hang, load failure)",
    "unknown": "the checks could not tell",
}
STATUS_MEANING = {
    "pass": "every check as expected",
    "known-gap": "failed, but every failure is a known gap",
    "unexpected-pass": "a known gap did not happen: news, check the gap",
    "fail": "a failure no known gap explains",
    "error": "no verdict: the cell could not be set up or run (a download, a QEMU that did not start, the harness)",
}


# --- reading results ---------------------------------------------------------------------

def merge(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The results in result.json files, or in folders of them (searched recursively),
    in the order given; a later result with the same id replaces an earlier one
    (keeping its place). Each result gets "result_file": where it was read. A file
    that cannot be read becomes a result with `error` set, so it shows up as an error."""
    by_id: dict[str, dict] = {}
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(path.rglob(RESULT_NAME))
        elif path.exists():
            found = [path]          # not a regular file (a FIFO): an error cell, never waited on
        else:
            raise SeedchainError("no such file or folder", where=str(path),
                                 hint="give result.json files or folders holding them")
        for file in found:
            result = _read_result(file)
            by_id[result_id(result)] = result
    return list(by_id.values())


def _read_result(file: Path) -> dict:
    try:
        # A FIFO named result.json is refused at once, not waited on; a result is tens of KiB.
        data = json.loads(files.read_bytes(file, MAX_RESULT_BYTES, what="result file").decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("layers", []), list):
            raise ValueError("not a seedchain result (a JSON object with layers)")
        if files.depth(data) > MAX_RESULT_DEPTH:
            raise RecursionError
        if problem := _shape_problem(data):
            raise ValueError(f"not a seedchain result: {problem}")
    except SeedchainError as e:
        return _unreadable(file, e.what)
    except RecursionError:
        return _unreadable(file, "nested too deeply to be a seedchain result")
    except (OSError, ValueError) as e:
        return _unreadable(file, str(e))
    data["result_file"] = str(file)
    return data


# The fields a report reads with their types (None and absent are fine everywhere).
Kinds = dict[str, type | tuple[type, ...]]
_TOP: Kinds = {"id": str, "scenario": str, "description": str, "arch": str, "error": str, "artifacts": str,
               "cell": dict, "cell_values": dict, "qemu": dict, "layers": list}
_LAYER: Kinds = {"outcome": dict, "expect": dict, "seed_file": dict, "fault": (str, dict), "kernel": str,
                 "kernel_version": str, "kernel_spec": str, "loader": str, "kexec_tools": str}


def _shape_problem(data: dict) -> str:
    """What in a result's fields has a type no seedchain writes ('' when nothing)."""
    for key, kind in _TOP.items():
        if data.get(key) is not None and not isinstance(data[key], kind):
            return f"{key} is a {type(data[key]).__name__}"
    for n, layer in enumerate(data.get("layers") or [], start=1):
        if not isinstance(layer, dict):
            return f"layer {n} is a {type(layer).__name__}"
        for key, kind in _LAYER.items():
            if layer.get(key) is not None and not isinstance(layer[key], kind):
                return f"layer {n}: {key} is a {type(layer[key]).__name__}"
        if layer.get("index") is not None and (type(layer["index"]) is not int):
            return f"layer {n}: index is a {type(layer['index']).__name__}"
    return ""


def unreadable(file: str | os.PathLike, why: str) -> dict:
    """A result that could not be read, as an error cell saying why."""
    return _unreadable(Path(file), why)


def _unreadable(file: Path, why: str) -> dict:
    return {"format": REPORT_FORMAT, "id": f"unreadable:{file}", "scenario": file.parent.name,
            "description": "", "cell": {}, "passed": False, "layers": [], "qemu": {},
            "artifacts": str(file.parent), "result_file": str(file),
            "error": f"cannot read {file}: {why}"}


# --- one cell ----------------------------------------------------------------------------

def layer_state(layer: dict) -> str:
    """consumed, absent, not-zeroed, exposed, stale, lingering, did-not-boot or unknown."""
    if not layer.get("booted"):
        return "did-not-boot"
    if layer.get("received") is False:
        return "absent"
    if layer.get("exposed"):
        return "exposed"
    if layer.get("zeroed_sysfs") is False or layer.get("zeroed_ram") is False:
        return "not-zeroed"
    if layer.get("fresh") is False:
        return "stale"
    if layer.get("lingering"):
        return "lingering"
    if layer.get("received"):
        return "consumed"
    return "unknown"


def artifacts_dir(result: dict) -> Path | None:
    """The result's `artifacts` folder when it exists here, else the folder its
    result.json was read from (results merged from other machines)."""
    candidates = [Path(p) for p in (result.get("artifacts"),) if p]
    if result.get("result_file"):
        candidates.append(Path(result["result_file"]).parent)
    for folder in candidates:
        if folder.is_dir():
            return folder.resolve()
    return candidates[0] if candidates else None


def cell_record(result: dict, classification: Classification, out_dir: Path) -> dict:
    """What the report shows of one cell (the entries of matrix.json's "cells")."""
    layers = [layer for layer in result.get("layers") or [] if isinstance(layer, dict)]
    records = []
    for i, layer in enumerate(layers):
        given = layer.get("index")
        index = given if isinstance(given, int) else i + 1
        explained, unexplained, news = classification.layer_findings(index)
        verdict = ("fail" if unexplained else "news" if news
                   else "known-gap" if explained else "ok")
        records.append({
            "index": index,
            "kernel": layer.get("kernel"),
            "kernel_version": layer.get("kernel_version") or "",
            "kernel_spec": layer.get("kernel_spec") or "",
            "kernel_note": layer.get("kernel_note") or "",
            "loader": layer.get("loader") or "",
            "kexec_tools": layer.get("kexec_tools") or "",
            "loaded_with_kexec_tools": (layers[i - 1].get("kexec_tools") or "") if i else "",
            "state": layer_state(layer),
            "verdict": verdict,
            "gaps": sorted({g for f in explained for g in f.gaps}),
            "observed": {name: layer.get(name) for name in CHECKS},
            "expect": layer.get("expect") or {},
            "outcome": layer.get("outcome") or {},
            "fault": layer.get("fault"),
        })
    folder = artifacts_dir(result)
    links = {}
    for name in ARTIFACT_FILES:
        if folder is None:
            continue
        target = folder / name
        links[name] = {"href": _href(target, out_dir), "present": target.is_file()}
    qemu = result.get("qemu") or {}
    return {
        "id": classification.id,
        "scenario": result.get("scenario") or "?",
        "arch": str(result.get("arch") or "x86_64"),
        "description": " ".join(str(result.get("description") or "").split()),
        "cell": dict(result.get("cell") or {}),
        "status": classification.status,
        "summary": classification.summary(),
        "passed": result.get("passed"),
        "error": result.get("error"),
        "qemu": {key: qemu.get(key) for key in ("version", "binary", "machine", "cpu", "accel")},
        "layers": records,
        "classification": classification.to_json(),
        "artifacts": None if folder is None else str(folder),
        "result_file": result.get("result_file"),
        "links": links,
    }


def _href(target: Path, out_dir: Path) -> str:
    base = Path(out_dir).resolve()
    target = target if target.is_absolute() else Path.cwd() / target
    return quote(Path(os.path.relpath(target, base)).as_posix())


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


def count(cells: Sequence[dict]) -> dict[str, int]:
    """The number of cells with each status (every status, zeros too)."""
    counts = dict.fromkeys(STATUSES, 0)
    for cell in cells:
        counts[cell["status"]] = counts.get(cell["status"], 0) + 1
    return counts


def write_report(results: Sequence[dict], gaps: Sequence[Gap], out_dir: Path) -> MatrixReport:
    """Classify every result and write matrix.json, matrix.md and matrix.html."""
    # imported here: render imports this module's vocabulary (STATES, count, ...)
    from harness.reports.render import render_html, render_markdown
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
        from harness.reports.kcidb import main as kcidb_main    # KCIDB data instead of the report
        return kcidb_main(argv)
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
