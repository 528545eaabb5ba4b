# SPDX-License-Identifier: GPL-2.0-only
"""The matrix report for people: matrix.md and matrix.html, from Jinja2 templates.

The markup is in templates/ (matrix.md.j2; matrix.html.j2 with the grid and card
macros in grid.html.j2, and matrix.css and matrix.js included inline, so the page
stays one self-contained file). This module holds what the templates compute
with: the order of a grid's rows and columns, the tooltip of a layer's mark, the
short texts of the Markdown table and the "Needs a look" list.

HTML templates (*.html.j2) are autoescaped; the Markdown template is not, and
escapes table cells itself with the `md` filter.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness.matrix.classify import STATUSES
from harness.matrix.gaps import Gap
from harness.matrix.versions import upstream_version
from harness.reports.cells import KERNEL_AXIS, QEMU_AXIS, STATE_MEANING, STATES, STATUS_MEANING, count
from harness.scenario.model import CHECKS
from harness.text import code_span, markdown

SEVERITY = {"pass": 0, "known-gap": 1, "unexpected-pass": 2, "fail": 3, "error": 4}
NEEDS_A_LOOK = ("unexpected-pass", "fail", "error")

_SUITES = ("buzz", "rex", "bo", "hamm", "slink", "potato", "woody", "sarge", "etch", "lenny",
           "squeeze", "wheezy", "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie",
           "forky", "duke", "sid")


# --- small texts -------------------------------------------------------------------------

def yn(value) -> str:
    """yes, no or n/a for an observed or expected check value."""
    return {True: "yes", False: "no", None: "n/a"}.get(value, str(value))


def oneline(text: object) -> str:
    """The text with every run of white space (new lines too) made one space."""
    return " ".join(str(text).split())


def clip(text: object, limit: int) -> str:
    """The text on one line, cut to at most `limit` characters."""
    text = oneline(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def followers(finding: dict) -> str:
    """' (+n checks that follow from it)' for a headline finding, else ''."""
    n = finding.get("followers", 0)
    return f" (+{n} check{'s' if n > 1 else ''} that follow from it)" if n else ""


def md(text: object) -> str:
    """Text safe inside a Markdown table cell or list item: one line, control characters,
    Markdown's and HTML's special characters escaped (harness.text.markdown)."""
    return markdown(text)


def anchor(text: str, prefix: str = "cell") -> str:
    """An HTML id for a cell (or scenario): readable, unique, safe in URLs and CSS."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:60]
    return f"{prefix}-{slug}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def upstream(version: str) -> tuple[str, str]:
    """('7.2.22', '(Debian 1:7.2+dfsg-7+deb12u18+b3)') from a QEMU version string."""
    head, _, rest = (version or "").partition(" ")
    return head, rest


def layers_words(cell: dict) -> str:
    """The Markdown table's layers column: 'L1 6.1.0: absent (gap); L2 ...'."""
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


def notes(cell: dict) -> str:
    """The Markdown table's notes column: what failed, what is news, which gaps apply."""
    c = cell["classification"]
    if cell["status"] == "error":
        return f"harness error: {cell['error']}"
    found = [f"UNEXPLAINED L{f['layer']} {f['check']}: expected {yn(f['expected'])}, "
             f"observed {yn(f['observed'])}" + followers(f) for f in c["headlines"]]
    found += c["notes"]
    found += [f"UNEXPECTED: gap {u['gap']} no longer seen (L{u['layer']} {u['check']} "
              f"{yn(u['observed'])})" for u in c["unexpected"]]
    if c["gaps"]:
        found.append(f"known gap: {', '.join(c['gaps'])}")
    return "; ".join(found)


def layer_title(cell: dict, layer: dict) -> str:
    """The tooltip of a layer's mark: kernel, loader, every check, fault and gaps."""
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
        checks.append(f"  {name}: {yn(layer['observed'][name])}"
                      + (f" (expected {yn(want)})" if want is not None else "") + mark)
    lines += ["checks:"] + checks
    if layer["fault"]:
        lines.append(f"fault: {layer['fault']}")
    if layer["gaps"]:
        lines.append(f"known gap: {', '.join(layer['gaps'])}")
    if layer["verdict"] == "news":
        lines.append("a known gap did not happen here")
    return "\n".join(lines)


def needs_a_look(cells: Sequence[dict]) -> list[tuple[dict, str]]:
    """(cell, what happened) for every unexpected pass, failure and harness error,
    worst first."""
    found = []
    for cell in sorted(cells, key=lambda c: -SEVERITY[c["status"]]):
        if cell["status"] not in NEEDS_A_LOOK:
            continue
        c = cell["classification"]
        if cell["status"] == "error":
            what = f"harness error: {clip(cell['error'], 200)}"
        elif cell["status"] == "fail":
            what = "; ".join([f["text"] + followers(f) for f in c["headlines"]] + c["notes"])
        else:
            what = "; ".join(f"known gap {u['gap']} did not happen: layer {u['layer']} {u['check']} "
                             f"was {yn(u['observed'])} with {u['component']}" for u in c["unexpected"])
        found.append((cell, what))
    return found


def gap_rows(gaps: Sequence[Gap], cells: Sequence[dict]) -> list[tuple[Gap, str, str, int]]:
    """(gap, where it applies, what it makes of the checks, cells it explains) per gap."""
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
            selectors.append("when " + ", ".join(f"{k} {'/'.join(yn(v) for v in vs)}"
                                                 for k, vs in gap.when))
        checks = ", ".join(f"{k} {'/'.join(yn(v) for v in vs)}" for k, vs in gap.checks)
        rows.append((gap, "; ".join(selectors), checks, hits.get(gap.id, 0)))
    return rows


# --- the grids ---------------------------------------------------------------------------

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


@dataclass
class Column:
    value: str                   # the qemu axis value, "" when the cells have none
    label: str
    versions: str                # the upstream QEMU versions seen in the column


@dataclass
class Slot:
    column: str
    cells: list[dict]            # empty: not run
    worst: str = ""              # the worst status of the cells


@dataclass
class Row:
    label: str                   # the kernel axis value, or the scenario
    sub: str                     # the other axes, "k=v · k=v"
    slots: list[Slot]


@dataclass
class Grid:
    """One table of a scenario: columns = the qemu axis, rows = the kernel axis (the
    scenario when there is none), other axes as sub-rows."""
    has_qemu: bool
    has_kernel: bool
    columns: list[Column]
    rows: list[Row]


@dataclass
class Section:
    """A scenario on the page: one grid per set of axes its cells have."""
    name: str
    description: str
    cells: list[dict]
    grids: list[tuple[tuple[str, ...], Grid]] = field(default_factory=list)


def grid(scenario: str, cells: list[dict]) -> Grid:
    has_qemu = any(QEMU_AXIS in c["cell"] for c in cells)
    has_kernel = any(KERNEL_AXIS in c["cell"] for c in cells)

    def qemu_key(column):
        seen = [upstream_version(c["qemu"].get("version")) for c in cells
                if c["cell"].get(QEMU_AXIS) == column]
        return _value_key(column, [v for v in seen if v])

    values = sorted(dict.fromkeys(c["cell"].get(QEMU_AXIS) for c in cells), key=qemu_key)
    by_row: dict[tuple, dict[object, list[dict]]] = {}
    for cell in cells:
        other = tuple((k, str(v)) for k, v in cell["cell"].items() if k not in (QEMU_AXIS, KERNEL_AXIS))
        key = (cell["cell"].get(KERNEL_AXIS) if has_kernel else scenario, other)
        by_row.setdefault(key, {}).setdefault(cell["cell"].get(QEMU_AXIS), []).append(cell)
    ordered = sorted(by_row.items(), key=lambda item: (
        _value_key(item[0][0]) if has_kernel else (), [_value_key(v) for _, v in item[0][1]]))

    columns = []
    for value in values:
        versions = sorted({upstream(c["qemu"].get("version") or "")[0]
                           for c in cells if c["cell"].get(QEMU_AXIS) == value} - {""})
        label = value if value is not None else ("(scenario's QEMU)" if has_qemu else "QEMU")
        columns.append(Column("" if value is None else str(value), str(label), ", ".join(versions)))
    rows = []
    for (row, other), found in ordered:
        slots = []
        for value, column in zip(values, columns, strict=True):
            chosen = found.get(value, [])
            worst = max(chosen, key=lambda c: SEVERITY[c["status"]])["status"] if chosen else ""
            slots.append(Slot(column.value, chosen, worst))
        label = row if row is not None else "(scenario's kernel)"
        rows.append(Row(str(label), " · ".join(f"{k}={v}" for k, v in other), slots))
    return Grid(has_qemu, has_kernel, columns, rows)


def sections(cells: Sequence[dict]) -> list[Section]:
    """The scenarios of the page: matrix scenarios first, then results from outside a
    matrix; each in the order read."""
    groups: dict[str, list[dict]] = {}
    for cell in cells:
        groups.setdefault(cell["scenario"], []).append(cell)
    found = []
    for name, group in sorted(groups.items(), key=lambda item: not any(c["cell"] for c in item[1])):
        section = Section(name, next((c["description"] for c in group if c["description"]), ""), group)
        # one grid per set of axes (a scenario may be in several groups of a matrix)
        by_axes: dict[tuple[str, ...], list[dict]] = {}
        for cell in group:
            axes = sorted(cell["cell"], key=lambda a: ({QEMU_AXIS: 0, KERNEL_AXIS: 1}.get(a, 2), a))
            by_axes.setdefault(tuple(axes), []).append(cell)
        section.grids = [(axes, grid(name, chosen)) for axes, chosen in by_axes.items()]
        found.append(section)
    return found


# --- rendering ---------------------------------------------------------------------------

@cache
def environment() -> Environment:
    """The templates' environment: autoescaped HTML, undefined names are errors."""
    env = Environment(
        loader=PackageLoader("harness.reports", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters.update(anchor=anchor, clip=clip, followers=followers, layers_words=layers_words,
                       code=code_span, md=md, notes=notes, oneline=oneline, upstream=upstream, yn=yn)
    env.globals.update(STATUSES=STATUSES, STATES=STATES, STATE_MEANING=STATE_MEANING,
                       STATUS_MEANING=STATUS_MEANING, status_counts=count, gap_rows=gap_rows,
                       layer_title=layer_title, needs_a_look=needs_a_look)
    return env


def render_markdown(cells: Sequence[dict], gaps: Sequence[Gap] = ()) -> str:
    """matrix.md: counts by status, one row per cell, then what needs a look."""
    scenarios = list(dict.fromkeys(c["scenario"] for c in cells))
    return environment().get_template("matrix.md.j2").render(
        cells=sorted(cells, key=lambda c: scenarios.index(c["scenario"])),
        scenarios=scenarios, counts=count(cells),
        applied=sum(1 for g in gaps if not g.informational))


def render_html(cells: Sequence[dict], gaps: Sequence[Gap] = ()) -> str:
    """matrix.html: one self-contained page, a grid per scenario."""
    return environment().get_template("matrix.html.j2").render(
        cells=list(cells), gaps=list(gaps), sections=sections(cells),
        applied=sum(1 for g in gaps if not g.informational))
