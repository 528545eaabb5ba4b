"""The matrix report: every cell's result classified against the known gaps.

    python -m harness.matrix_report OUT_DIR RESULT_DIRS_OR_FILES... [--gaps FILE]

writes into OUT_DIR:

  matrix.json  every cell: id, axis values, versions, per-layer seed state, its
               classification (harness.known_gaps) and links to its artifacts
  matrix.md    counts by status, one row per cell, then what needs a look
  matrix.html  one self-contained page (inline CSS and JS, nothing fetched): per
               scenario a grid, rows = the kernel axis (the scenario when there is
               none), columns = the qemu axis; other axes are sub-rows

merge() reads the result.json files of several runs (e.g. CI jobs) into one list.
"""

from __future__ import annotations

import argparse
import tempfile
import subprocess
import shutil
import hashlib
import html
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import quote

from harness.errors import SeedchainError
from harness.paths import SCENARIOS
from harness.matrix.known_gaps import (STATUSES, Classification, Gap, classify, load_gaps,
                                result_id, upstream_version)
from harness.scenario.model import CHECKS

REPORT_FORMAT = 1
ARTIFACT_FILES = ("console.log", "agent.log", "result.json")
RESULT_NAME = "result.json"
DEFAULT_GAPS = SCENARIOS / "known-gaps.yaml"
QEMU_AXIS, KERNEL_AXIS = "qemu", "kernel"

# The seed's state in a layer, as shown by the marks: (css class, label).
STATES = {
    "consumed": "consumed",
    "absent": "absent",
    "not-zeroed": "not zeroed",
    "exposed": "exposed",
    "did-not-boot": "did not boot",
    "unknown": "unknown",
}
STATE_MEANING = {
    "consumed": "a seed arrived and was zeroed (sysfs and RAM)",
    "absent": "no seed reached this layer",
    "not-zeroed": "a seed arrived and was left in place",
    "exposed": "a seed arrived and any user can read it in sysfs",
    "did-not-boot": "the layer did not report (panic, hang, load failure)",
    "unknown": "the checks could not tell",
}
STATUS_MEANING = {
    "pass": "every check as expected",
    "known-gap": "failed, but every failure is a known gap",
    "unexpected-pass": "a known gap did not happen: news, check the gap",
    "fail": "a failure no known gap explains",
    "error": "the harness itself failed",
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
            files = sorted(path.rglob(RESULT_NAME))
        elif path.is_file():
            files = [path]
        else:
            raise SeedchainError("no such file or folder", where=str(path),
                                 hint="give result.json files or folders holding them")
        for file in files:
            result = _read_result(file)
            by_id[result_id(result)] = result
    return list(by_id.values())


def _read_result(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("layers", []), list):
            raise ValueError("not a seedchain result (a JSON object with layers)")
    except (OSError, ValueError) as e:
        return {"format": REPORT_FORMAT, "id": f"unreadable:{file}", "scenario": file.parent.name,
                "description": "", "cell": {}, "passed": False, "layers": [], "qemu": {},
                "artifacts": str(file.parent), "result_file": str(file),
                "error": f"cannot read {file}: {e}"}
    data["result_file"] = str(file)
    return data


# --- one cell ----------------------------------------------------------------------------

def layer_state(layer: dict) -> str:
    """consumed, absent, not-zeroed, exposed, did-not-boot or unknown."""
    if not layer.get("booted"):
        return "did-not-boot"
    if layer.get("received") is False:
        return "absent"
    if layer.get("exposed"):
        return "exposed"
    if layer.get("zeroed_sysfs") is False or layer.get("zeroed_ram") is False:
        return "not-zeroed"
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
        index = layer.get("index") if isinstance(layer.get("index"), int) else i + 1
        explained, unexplained, news = classification.layer_findings(index)
        verdict = ("fail" if unexplained else "news" if news
                   else "known-gap" if explained else "ok")
        records.append({
            "index": index,
            "kernel": layer.get("kernel"),
            "kernel_version": layer.get("kernel_version") or "",
            "kernel_spec": layer.get("kernel_spec") or "",
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
    cells = [cell_record(r, classify(r, gaps), Path(out_dir)) for r in results]
    return MatrixReport(cells=cells, counts=count(cells))


def count(cells: Sequence[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for cell in cells:
        counts[cell["status"]] = counts.get(cell["status"], 0) + 1
    return counts


def write_report(results: Sequence[dict], gaps: Sequence[Gap], out_dir: Path) -> MatrixReport:
    """Classify every result and write matrix.json, matrix.md and matrix.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build(results, gaps, out_dir)
    files = {
        "matrix.json": json.dumps({"format": REPORT_FORMAT, "counts": report.counts,
                                   "gaps": [g.to_json() for g in gaps],
                                   "cells": report.cells}, indent=2) + "\n",
        "matrix.md": render_markdown(report.cells, gaps),
        "matrix.html": render_html(report.cells, gaps),
    }
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        report.files[name] = out_dir / name
    return report


# --- Markdown ----------------------------------------------------------------------------

def _md(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _layers_words(cell: dict) -> str:
    parts = []
    for layer in cell["layers"]:
        words = f"L{layer['index']} {layer['kernel_version'] or layer['kernel'] or layer['kernel_spec']}"
        if layer["index"] > 1:
            words += f" ← {layer['loader']}"
            if layer["loader"] == "kexec_load" or layer["loaded_with_kexec_tools"]:
                words += f" (kexec-tools {layer['loaded_with_kexec_tools'] or '?'})"
        words += f": {STATES[layer['state']]}"
        if layer["verdict"] != "ok":
            words += {"fail": " FAIL", "known-gap": " (gap)", "news": " NEWS"}[layer["verdict"]]
        parts.append(words)
    return "; ".join(parts) or "-"


def _notes(cell: dict) -> str:
    c = cell["classification"]
    if cell["status"] == "error":
        return f"harness error: {cell['error']}"
    notes = [f"UNEXPLAINED L{f['layer']} {f['check']}: expected {_yn(f['expected'])}, "
             f"observed {_yn(f['observed'])}" + _followers(f) for f in c["headlines"]]
    notes += c["notes"]
    notes += [f"UNEXPECTED: gap {u['gap']} no longer seen (L{u['layer']} {u['check']} "
              f"{_yn(u['observed'])})" for u in c["unexpected"]]
    if c["gaps"]:
        notes.append(f"known gap: {', '.join(c['gaps'])}")
    return "; ".join(notes)


def _followers(finding: dict) -> str:
    n = finding.get("followers", 0)
    return f" (+{n} check{'s' if n > 1 else ''} that follow from it)" if n else ""


def _yn(value) -> str:
    return {True: "yes", False: "no", None: "n/a"}.get(value, str(value))


def render_markdown(cells: Sequence[dict], gaps: Sequence[Gap] = ()) -> str:
    counts = count(cells)
    scenarios = list(dict.fromkeys(c["scenario"] for c in cells))
    cells = sorted(cells, key=lambda c: scenarios.index(c["scenario"]))
    out = ["# seedchain matrix", "",
           f"{len(cells)} cells, {len(scenarios)} scenarios, "
           f"{sum(1 for g in gaps if not g.informational)} known gaps applied.", "",
           "| status | cells | meaning |", "|---|---:|---|"]
    out += [f"| {s} | {counts[s]} | {STATUS_MEANING[s]} |" for s in STATUSES]
    out += ["", "| cell | status | QEMU | layers | notes |", "|---|---|---|---|---|"]
    for cell in cells:
        out.append(f"| `{_md(cell['id']).replace('`', '')}` | {cell['status']} | "
                   f"{_md(cell['qemu'].get('version') or '?')} | {_md(_layers_words(cell))} | "
                   f"{_md(_notes(cell))} |")
    for status, title in (("unexpected-pass", "Unexpected passes: a known gap did not happen"),
                          ("fail", "Failures no known gap explains"),
                          ("error", "Harness errors")):
        chosen = [c for c in cells if c["status"] == status]
        if not chosen:
            continue
        out += ["", f"## {title}", ""]
        for cell in chosen:
            out.append(f"- `{cell['id']}`")
            lines = ([f"harness error: {cell['error']}"] if status == "error"
                     else [f["text"] + _followers(f) for f in cell["classification"]["headlines"]]
                     + cell["classification"]["notes"]
                     + [u["text"] for u in cell["classification"]["unexpected"]])
            out += [f"  - {' '.join(str(line).split())}" for line in lines]
    return "\n".join(out) + "\n"


# --- HTML --------------------------------------------------------------------------------

def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def anchor(text: str, prefix: str = "cell") -> str:
    """An HTML id for a cell (or scenario): readable, unique, safe in URLs and CSS."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:60]
    return f"{prefix}-{slug}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def _upstream(version: str) -> tuple[str, str]:
    """('7.2.22', '(Debian 1:7.2+dfsg-7+deb12u18+b3)') from a QEMU version string."""
    head, _, rest = (version or "").partition(" ")
    return head, rest


def _layer_title(cell: dict, layer: dict) -> str:
    lines = [f"layer {layer['index']}: {STATES[layer['state']]}",
             f"kernel {layer['kernel_version'] or '?'} ({layer['kernel'] or layer['kernel_spec'] or '?'})",
             f"started by {layer['loader'] or '?'}"
             + (f" with kexec-tools {layer['loaded_with_kexec_tools']}"
                if layer["index"] > 1 and layer["loaded_with_kexec_tools"] else "")]
    checks = []
    for name in CHECKS:
        outcome = layer["outcome"].get(name, "-")
        mark = {"pass": "", "fail": "  <-- FAIL", "-": ""}.get(outcome, "")
        want = layer["expect"].get(name)
        checks.append(f"  {name}: {_yn(layer['observed'][name])}"
                      + (f" (expected {_yn(want)})" if want is not None else "") + mark)
    lines += ["checks:"] + checks
    if layer["fault"]:
        lines.append(f"fault: {layer['fault']}")
    if layer["gaps"]:
        lines.append(f"known gap: {', '.join(layer['gaps'])}")
    if layer["verdict"] == "news":
        lines.append("a known gap did not happen here")
    return "\n".join(lines)


def _marks(cell: dict) -> str:
    if not cell["layers"]:
        return '<div class="marks"><span class="mark s-unknown">no layers</span></div>'
    pills = []
    for layer in cell["layers"]:
        flag = {"fail": ' <i aria-label="unexplained failure">!</i>',
                "news": ' <i aria-label="known gap not seen">★</i>',
                "known-gap": ' <i aria-label="known gap">gap</i>', "ok": ""}[layer["verdict"]]
        pills.append(f'<span class="mark s-{layer["state"]} v-{layer["verdict"]}" '
                     f'data-layer="{layer["index"]}" data-state="{layer["state"]}" '
                     f'title="{_e(_layer_title(cell, layer))}">'
                     f'<b>{layer["index"]}</b> {_e(STATES[layer["state"]])}{flag}</span>')
    return '<div class="marks">' + '<span class="arrow">›</span>'.join(pills) + "</div>"


def _versions(cell: dict) -> str:
    head, rest = _upstream(cell["qemu"].get("version") or "?")
    machine = cell["qemu"].get("machine") or ""
    rows = [f'<tr><th>QEMU</th><td><b>{_e(head)}</b> <small>{_e(rest)}'
            f'{" · " + _e(machine) if machine else ""}</small></td></tr>']
    for layer in cell["layers"]:
        how = ""
        if layer["index"] > 1:
            how = _e(layer["loader"])
            if layer["loaded_with_kexec_tools"]:
                how += f" · kexec-tools {_e(layer['loaded_with_kexec_tools'])}"
        release = layer["kernel"] or layer["kernel_spec"]
        rows.append(f'<tr><th>L{layer["index"]}</th><td><b>{_e(layer["kernel_version"] or release or "?")}</b>'
                    f' <small>{_e(release if layer["kernel_version"] else "")}'
                    f'{"<br>← " + how if how else ""}</small></td></tr>')
    return '<table class="ver">' + "".join(rows) + "</table>"


def _why(cell: dict) -> str:
    c = cell["classification"]
    items = []
    if cell["status"] == "error":
        items.append(f'<li class="w-error" title="{_e(cell["error"])}">harness error: '
                     f'{_e(_clip(cell["error"], 160))}</li>')
    for f in c["headlines"]:
        items.append(f'<li class="w-fail" title="{_e(f["text"])}">L{f["layer"]} {_e(f["check"])}: '
                     f'expected {_yn(f["expected"])}, got {_yn(f["observed"])}'
                     f'{_e(_followers(f))}</li>')
    for note in c["notes"]:
        items.append(f'<li class="w-fail">{_e(note)}</li>')
    for u in c["unexpected"]:
        items.append(f'<li class="w-news" title="{_e(u["text"])}">gap <b>{_e(u["gap"])}</b> not seen: '
                     f'L{u["layer"]} {_e(u["check"])} {_yn(u["observed"])}</li>')
    if c["gaps"]:
        items.append('<li class="w-gap">known gap: '
                     + ", ".join(f'<a href="#gap-{_e(g)}">{_e(g)}</a>' for g in c["gaps"]) + "</li>")
    return f'<ul class="why">{"".join(items)}</ul>' if items else ""


def _links(cell: dict) -> str:
    if not cell["links"]:
        return '<div class="links">no artifacts</div>'
    parts = []
    for name, link in cell["links"].items():
        cls = "" if link["present"] else ' class="missing" title="not found when the report was written"'
        parts.append(f'<a href="{_e(link["href"])}"{cls}>{_e(name)}</a>')
    return '<div class="links">' + " ".join(parts) + "</div>"


def _card(cell: dict) -> str:
    status = cell["status"]
    return (f'<div class="card" id="{anchor(cell["id"])}" data-id="{_e(cell["id"])}" '
            f'data-status="{status}">'
            f'<div class="top"><span class="badge b-{status}">{status}</span> '
            f'<a class="cid" href="#{anchor(cell["id"])}" title="{_e(cell["summary"])}">'
            f'{_e(cell["id"])}</a></div>'
            f'{_marks(cell)}{_versions(cell)}{_why(cell)}{_links(cell)}</div>')


def _axis_label(axes: dict) -> str:
    return " · ".join(f"{k}={v}" for k, v in axes.items())


_SUITES = ("buzz", "rex", "bo", "hamm", "slink", "potato", "woody", "sarge", "etch", "lenny",
           "squeeze", "wheezy", "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie",
           "forky", "duke", "sid")


def _value_key(value: object, observed: Sequence[tuple[int, ...]] = ()) -> tuple:
    """Axis values in a reading order: by the version seen in the cells, else the last
    version in the value ('debian:bullseye/5.10' -> 5.10), else by Debian release."""
    if value is None:
        return (3, (), "")
    text = str(value)
    if observed:
        return (0, min(observed), text)
    numbers = re.findall(r"\d+(?:\.\d+)+", text)
    if numbers:
        return (0, tuple(int(n) for n in numbers[-1].split(".")), text)
    suite = re.search(r"\b(" + "|".join(_SUITES) + r")\b", text)
    if suite:
        return (1, (_SUITES.index(suite.group(1)),), text)
    return (2, (), text)


def _grid(scenario: str, cells: list[dict]) -> str:
    has_qemu = any(QEMU_AXIS in c["cell"] for c in cells)
    has_kernel = any(KERNEL_AXIS in c["cell"] for c in cells)

    def qemu_key(column):
        seen = [upstream_version(c["qemu"].get("version")) for c in cells
                if c["cell"].get(QEMU_AXIS) == column]
        return _value_key(column, [v for v in seen if v])

    columns = sorted(dict.fromkeys(c["cell"].get(QEMU_AXIS) for c in cells), key=qemu_key)
    rows: dict[tuple, dict[object, list[dict]]] = {}
    for cell in cells:
        other = tuple((k, str(v)) for k, v in cell["cell"].items() if k not in (QEMU_AXIS, KERNEL_AXIS))
        key = (cell["cell"].get(KERNEL_AXIS) if has_kernel else scenario, other)
        rows.setdefault(key, {}).setdefault(cell["cell"].get(QEMU_AXIS), []).append(cell)
    rows = dict(sorted(rows.items(), key=lambda item: (
        _value_key(item[0][0]) if has_kernel else (), [_value_key(v) for _, v in item[0][1]])))

    corner = (f'{"kernel" if has_kernel else "scenario"} ↓ &nbsp; '
              f'{"qemu →" if has_qemu else ""}')
    head = [f'<th class="corner">{corner}</th>']
    for column in columns:
        versions = sorted({_upstream(c["qemu"].get("version") or "")[0]
                           for c in cells if c["cell"].get(QEMU_AXIS) == column} - {""})
        label = column if column is not None else ("(scenario's QEMU)" if has_qemu else "QEMU")
        head.append(f'<th scope="col" data-axis-value="{_e(column if column is not None else "")}">'
                    f'{_e(label)}<div class="sub">{_e(", ".join(versions))}</div></th>')
    body = []
    for (row, other), slots in rows.items():
        label = row if row is not None else "(scenario's kernel)"
        sub = f'<div class="sub">{_e(_axis_label(dict(other)))}</div>' if other else ""
        tds = []
        for column in columns:
            found = slots.get(column, [])
            if not found:
                tds.append('<td class="empty">not run</td>')
                continue
            worst = max(found, key=lambda c: _SEVERITY[c["status"]])["status"]
            tds.append(f'<td class="cell t-{worst}" data-row="{_e(label)}" '
                       f'data-column="{_e(column if column is not None else "")}">'
                       + "".join(_card(c) for c in found) + "</td>")
        body.append(f'<tr><th scope="row" data-axis-value="{_e(label)}">{_e(label)}{sub}</th>'
                    + "".join(tds) + "</tr>")
    return (f'<table class="grid"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


_SEVERITY = {"pass": 0, "known-gap": 1, "unexpected-pass": 2, "fail": 3, "error": 4}


def _chips(cells: Sequence[dict], filters: bool) -> str:
    counts = count(cells)
    chips = []
    for status in STATUSES:
        if not filters and not counts[status]:
            continue
        inner = f'<span class="badge b-{status}">{status}</span> {counts[status]}'
        if filters:
            chips.append(f'<label class="chip" title="{_e(STATUS_MEANING[status])}">'
                         f'<input type="checkbox" data-status="{status}" checked> {inner}</label>')
        else:
            chips.append(f'<span class="chip">{inner}</span>')
    return "".join(chips)


def _attention(cells: Sequence[dict]) -> str:
    items = []
    for cell in sorted(cells, key=lambda c: -_SEVERITY[c["status"]]):
        if cell["status"] not in ("unexpected-pass", "fail", "error"):
            continue
        c = cell["classification"]
        if cell["status"] == "error":
            what = f"harness error: {_clip(cell['error'], 200)}"
        elif cell["status"] == "fail":
            what = "; ".join([f["text"] + _followers(f) for f in c["headlines"]] + c["notes"])
        else:
            what = "; ".join(f"known gap {u['gap']} did not happen: layer {u['layer']} {u['check']} "
                             f"was {_yn(u['observed'])} with {u['component']}" for u in c["unexpected"])
        items.append(f'<li class="a-{cell["status"]}"><span class="badge b-{cell["status"]}">'
                     f'{cell["status"]}</span> <a href="#{anchor(cell["id"])}">{_e(cell["id"])}</a>'
                     f' <span class="what">{_e(what)}</span></li>')
    if not items:
        return '<p class="allgood">Nothing needs a look: every cell passed or is a known gap.</p>'
    return f'<section class="attention"><h2>Needs a look</h2><ul>{"".join(items)}</ul></section>'


def _legend() -> str:
    marks = "".join(f'<span class="mark s-{key}" title="{_e(STATE_MEANING[key])}"><b>n</b> '
                    f'{_e(label)}</span><span class="lg">{_e(STATE_MEANING[key])}</span>'
                    for key, label in STATES.items() if key != "unknown")
    overlays = ('<span class="mark s-absent v-known-gap"><b>n</b> absent '
                '<i>gap</i></span><span class="lg">failure explained by a known gap</span>'
                '<span class="mark s-absent v-fail"><b>n</b> absent <i>!</i></span>'
                '<span class="lg">failure no known gap explains</span>'
                '<span class="mark s-consumed v-news"><b>n</b> consumed <i>★</i></span>'
                '<span class="lg">a known gap did not happen (news)</span>')
    return (f'<section class="legend"><h2>Legend</h2><div class="lrow">'
            f'<span class="lt">Layer n, seed state:</span>{marks}</div>'
            f'<div class="lrow"><span class="lt">Outline:</span>{overlays}</div></section>')


def _gaps_table(gaps: Sequence[Gap], cells: Sequence[dict]) -> str:
    if not gaps:
        return '<section class="gaps"><h2>Known gaps</h2><p>None given.</p></section>'
    hits = {g.id: 0 for g in gaps}
    for cell in cells:
        for gap in set(cell["classification"]["gaps"]):
            hits[gap] = hits.get(gap, 0) + 1
    rows = []
    for gap in gaps:
        selectors = []
        if gap.layer:
            selectors.append(f"layer {gap.layer}")
        if gap.loader:
            selectors.append("loader " + " or ".join(gap.loader))
        if gap.when:
            selectors.append("when " + ", ".join(f"{k} {'/'.join(_yn(v) for v in vs)}"
                                                 for k, vs in gap.when))
        checks = ", ".join(f"{k} {'/'.join(_yn(v) for v in vs)}" for k, vs in gap.checks)
        rows.append(
            f'<tr id="gap-{_e(gap.id)}"><td><b>{_e(gap.id)}</b>'
            f'{"<br><small>informational</small>" if gap.informational else ""}</td>'
            f'<td>{_e(gap.component)} {_e(gap.versions_text)}'
            f'{"<br><small>" + _e("; ".join(selectors)) + "</small>" if selectors else ""}</td>'
            f'<td>{_e(checks)}</td><td>{hits.get(gap.id, 0)}</td>'
            f'<td>{_e(gap.reason)}<br><small>{_e("; ".join(gap.source))}</small></td></tr>')
    return ('<section class="gaps"><h2>Known gaps</h2><table class="gaptable"><thead><tr>'
            '<th>id</th><th>component, versions</th><th>makes</th><th>cells</th>'
            '<th>reason, source</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></section>")


def _clip(text: object, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


_CSS = """
:root { --pass:#2e7d32; --gap:#b26a00; --news:#1565c0; --fail:#c62828; --error:#6a1b9a;
  --consumed:#2e7d32; --absent:#78909c; --notzeroed:#ef6c00; --exposed:#c62828; --dnb:#212121; }
* { box-sizing: border-box; }
body { font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0; padding: 12px 18px 40px; color: #1d1d1d; background: #fafafa; }
h1 { font-size: 20px; margin: 0 12px 0 0; display: inline-block; }
h2 { font-size: 15px; margin: 18px 0 6px; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-bottom: 6px; }
header .meta { color: #555; margin-right: 12px; }
.chip { display: inline-flex; align-items: center; gap: 4px; padding: 2px 8px 2px 4px;
  border: 1px solid #ccc; border-radius: 14px; background: #fff; cursor: pointer; user-select: none; }
.chip input { margin: 0 2px 0 0; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 9px; color: #fff; font-weight: 600;
  font-size: 11.5px; letter-spacing: .2px; white-space: nowrap; }
.b-pass { background: var(--pass); } .b-known-gap { background: var(--gap); }
.b-unexpected-pass { background: var(--news); } .b-fail { background: var(--fail); }
.b-error { background: var(--error); }
.attention { border: 2px solid var(--fail); background: #fff; border-radius: 6px; padding: 2px 12px 6px;
  margin: 8px 0; }
.attention h2 { margin: 6px 0 4px; color: var(--fail); }
.attention ul { margin: 0; padding-left: 4px; list-style: none; }
.attention li { margin: 3px 0; }
.attention li.a-unexpected-pass { font-weight: 600; }
.attention .what { color: #333; }
.allgood { color: var(--pass); font-weight: 600; }
.legend { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 2px 12px 8px; }
.legend h2 { margin: 6px 0 4px; font-size: 13px; }
.lrow { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 6px; margin: 3px 0; }
.lt { font-weight: 600; margin-right: 4px; } .lg { color: #444; margin-right: 12px; }
.scenario { margin-top: 14px; }
.scenario h2 { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.desc { margin: 0 0 6px; color: #444; max-width: 1100px; }
.axes { margin: 8px 0 2px; font-weight: 600; color: #444; }
table.grid { border-collapse: separate; border-spacing: 4px; }
table.grid > thead th { background: #eceff1; padding: 4px 8px; text-align: left; border-radius: 4px;
  font-weight: 600; }
table.grid > tbody > tr > th { background: #eceff1; padding: 6px 8px; text-align: left; vertical-align: top;
  border-radius: 4px; min-width: 150px; max-width: 220px; overflow-wrap: anywhere; }
th .sub, .sub { font-weight: 400; color: #555; font-size: 11.5px; }
th.corner { color: #555; font-weight: 400; }
td.cell { vertical-align: top; padding: 0; min-width: 250px; max-width: 340px; border-radius: 6px; }
td.empty { color: #999; text-align: center; border: 1px dashed #ccc; border-radius: 6px; min-width: 120px; }
.card { padding: 6px 8px; border-radius: 6px; border: 1px solid #ddd; border-left-width: 6px; background: #fff; }
.card + .card { margin-top: 4px; }
.card[data-status="pass"] { border-left-color: var(--pass); background: #f1f8f1; }
.card[data-status="known-gap"] { border-left-color: var(--gap); background: #fff8e6; }
.card[data-status="unexpected-pass"] { border-left-color: var(--news); background: #e8f1fc;
  box-shadow: 0 0 0 2px var(--news); }
.card[data-status="fail"] { border-left-color: var(--fail); background: #fdecec; }
.card[data-status="error"] { border-left-color: var(--error); background: #f6ecf8; }
.top { display: flex; align-items: center; gap: 6px; margin-bottom: 4px; }
.cid { color: #333; text-decoration: none; font-size: 11.5px; word-break: break-all; }
.marks { display: flex; flex-wrap: wrap; align-items: center; gap: 2px; margin: 2px 0 4px; }
.arrow { color: #777; font-weight: 700; padding: 0 1px; }
.mark { display: inline-flex; align-items: center; gap: 3px; padding: 1px 6px; border-radius: 4px;
  color: #fff; font-size: 11.5px; white-space: nowrap; outline-offset: 1px; cursor: help; }
.mark b { font-weight: 700; } .mark i { font-style: normal; font-weight: 700; }
.s-consumed { background: var(--consumed); } .s-absent { background: var(--absent); }
.s-not-zeroed { background: var(--notzeroed); } .s-exposed { background: var(--exposed); }
.s-did-not-boot { background: var(--dnb); } .s-unknown { background: #fff; color: #333; border: 1px dashed #777; }
.v-known-gap { outline: 2px dashed var(--gap);
  background-image: repeating-linear-gradient(135deg, rgba(255,255,255,.28) 0 3px, transparent 3px 7px); }
.v-known-gap i { background: var(--gap); border-radius: 3px; padding: 0 3px; font-size: 10px; }
.v-fail { outline: 3px solid var(--fail); }
.v-fail i { background: #fff; color: var(--fail); border-radius: 50%; padding: 0 4px; }
.v-news { outline: 3px solid var(--news); }
table.ver { border-collapse: collapse; width: 100%; font-size: 11.5px; }
table.ver th { text-align: left; color: #555; font-weight: 600; padding: 0 6px 0 0; vertical-align: top;
  width: 36px; }
table.ver td { padding: 0; word-break: break-word; }
table.ver small { color: #555; }
ul.why { margin: 4px 0 0; padding-left: 16px; font-size: 11.5px; }
.w-fail { color: var(--fail); font-weight: 600; } .w-news { color: var(--news); font-weight: 600; }
.w-error { color: var(--error); font-weight: 600; } .w-gap { color: #6d4c00; }
.links { margin-top: 4px; font-size: 11.5px; }
.links a { margin-right: 8px; } .links a.missing { color: #999; text-decoration: line-through; }
.gaps table { border-collapse: collapse; background: #fff; max-width: 1300px; }
.gaps td, .gaps th { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
.gaps small { color: #555; }
body.hide-pass .card[data-status="pass"], body.hide-known-gap .card[data-status="known-gap"],
body.hide-unexpected-pass .card[data-status="unexpected-pass"], body.hide-fail .card[data-status="fail"],
body.hide-error .card[data-status="error"] { display: none; }
"""

_JS = """
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-status]'));
  function apply() {
    boxes.forEach(function (box) {
      document.body.classList.toggle('hide-' + box.getAttribute('data-status'), !box.checked);
    });
  }
  boxes.forEach(function (box) { box.addEventListener('change', apply); });
  apply();
  document.body.setAttribute('data-ready', String(document.querySelectorAll('.card').length));
})();
"""


def render_html(cells: Sequence[dict], gaps: Sequence[Gap] = ()) -> str:
    scenarios: dict[str, list[dict]] = {}
    for cell in cells:
        scenarios.setdefault(cell["scenario"], []).append(cell)
    # matrix scenarios first, then results from outside a matrix; each in the order read
    scenarios = dict(sorted(scenarios.items(), key=lambda item: not any(c["cell"] for c in item[1])))
    sections = []
    for name, group in scenarios.items():
        description = next((c["description"] for c in group if c["description"]), "")
        # one grid per set of axes (a scenario may be in several groups of a matrix)
        by_axes: dict[tuple[str, ...], list[dict]] = {}
        for cell in group:
            axes = sorted(cell["cell"], key=lambda a: ({QEMU_AXIS: 0, KERNEL_AXIS: 1}.get(a, 2), a))
            by_axes.setdefault(tuple(axes), []).append(cell)
        grids = []
        for axes, cells_of in by_axes.items():
            caption = ""
            if len(by_axes) > 1:
                caption = (f'<p class="axes">axes: {_e(" × ".join(axes))}</p>' if axes
                           else '<p class="axes">outside the matrix</p>')
            grids.append(f'<div class="axisgroup" data-axes="{_e(",".join(axes))}">'
                         f'{caption}{_grid(name, cells_of)}</div>')
        sections.append(
            f'<section class="scenario" id="{anchor(name, "scenario")}" data-scenario="{_e(name)}">'
            f'<h2>{_e(name)} {_chips(group, filters=False)}</h2>'
            f'<p class="desc">{_e(_clip(description, 400))}</p>{"".join(grids)}</section>')
    applied = sum(1 for g in gaps if not g.informational)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>seedchain matrix: {len(cells)} cells</title><style>{_CSS}</style></head>\n<body>'
        f'<header><h1>seedchain matrix</h1><span class="meta">{len(cells)} cells · '
        f'{len(scenarios)} scenarios · {applied} known gaps applied</span>'
        f'{_chips(cells, filters=True)}</header>'
        f'{_attention(cells)}{_legend()}{"".join(sections)}{_gaps_table(gaps, cells)}'
        f'<script>{_JS}</script></body></html>\n')


# --- a picture of the page ---------------------------------------------------------------

def chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    """Headless Chromium (Debian's chromium) on a file:// page; the page's console goes to
    stderr. The compositor and virtual-time flags make a screenshot wait for a fully
    painted page; the networking flags keep it from calling out."""
    binary = shutil.which("chromium")
    if binary is None:
        raise SeedchainError("chromium is not installed", where="screenshot",
                             hint="apt-get install chromium (./dev setup does)")
    profile.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(dir=profile))        # a fresh profile for every start
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--window-size=1400,900", "--run-all-compositor-stages-before-draw",
         "--virtual-time-budget=1000", *mode, Path(page).resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(profile)},
        stdin=subprocess.DEVNULL)


def screenshot(page: Path, png: Path) -> Path:
    """A PNG of the page as a person first sees it (1400x900)."""
    with tempfile.TemporaryDirectory() as profile:
        run = chromium(page, Path(profile), f"--screenshot={Path(png).resolve()}")
    if not Path(png).exists():
        raise SeedchainError(f"chromium made no screenshot of {page}", where="screenshot",
                             hint=run.stderr.strip()[-500:])
    return Path(png)


# --- command line ------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.matrix_report",
        description="Classify matrix results against the known gaps; write matrix.json, "
                    "matrix.md and matrix.html into OUT_DIR.")
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
        report = write_report(results, gaps, args.out_dir)
        if args.screenshot:
            report.files["matrix.png"] = screenshot(report.files["matrix.html"], args.out_dir / "matrix.png")
    except SeedchainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for cell in report.cells:
        if cell["status"] in ("fail", "error", "unexpected-pass"):
            print(cell["summary"])
    print(", ".join(f"{n} {s}" for s, n in report.counts.items() if n) or "no cells")
    for path in report.files.values():
        print(f"wrote {path}")
    return 1 if args.check and not report.ok else 0


if __name__ == "__main__":
    sys.exit(main())
