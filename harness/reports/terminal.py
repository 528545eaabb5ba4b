# SPDX-License-Identifier: GPL-2.0-only
"""Render a RunResult for people: the verdict table of layers x checks.

The table fits 100 columns: a check that is n/a in every layer (not observed and not
expected, e.g. lingering when RAM was not searched) has no column, and a line under
the table names those checks; the checks' headers are short forms of their
result.json keys, named in a legend line. On a terminal the cells are coloured (an
expectation that held green, a broken one red, n/a dim), never when NO_COLOR is set
(any value, https://no-color.org) or when the output is not a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from harness.scenario.model import CHECKS
from harness.checks.verdict import RunResult
from harness.text import terminal

_WORD = {True: "yes", False: "no", None: "n/a"}
WIDTH = 100          # columns the table fits (recorded runs: tests/test_terminal_table.py)

# Header of each check's column; the legend line under the table names the long form.
SHORT = {"booted": "boot", "received": "recv", "fresh": "fresh", "zeroed_sysfs": "zsysfs",
         "zeroed_ram": "zram", "credited": "cred", "exposed": "expos", "lingering": "linger",
         "passed_on": "passon", "seed_file_refreshed": "sf_ref"}

_GREEN, _RED, _DIM, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[2m", "\x1b[0m"


def colour_wanted(out: TextIO | None = None) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (to any value, even empty)."""
    out = sys.stdout if out is None else out
    if "NO_COLOR" in os.environ:
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):      # no isatty, or closed
        return False


def cell(observed: bool | None, expected: bool | None) -> str:
    """Observed value; "ok" when it is what the scenario expected, "!= X" when not."""
    text = _WORD[observed]
    if expected is None:
        return text
    return f"{text} ok" if observed == expected else f"{text} != {_WORD[expected]}"


def _paint(text: str, observed: bool | None, expected: bool | None) -> str:
    if expected is not None:
        return f"{_GREEN if observed == expected else _RED}{text}{_RESET}"
    return f"{_DIM}{text}{_RESET}" if observed is None else text


def shown(result: RunResult) -> tuple[list[str], list[str]]:
    """(checks with a column, checks n/a in every layer)."""
    applicable = [n for n in CHECKS if any(layer.observed[n] is not None or layer.expect[n] is not None
                                           for layer in result.layers)]
    return applicable, [n for n in CHECKS if n not in applicable]


State = tuple[bool | None, bool | None] | None      # (observed, expected) of a check's cell


def table(result: RunResult, colour: bool = False) -> str:
    """Layers down (# is the layer), checks across; each cell is observed vs expected; under
    the table the legend of the short headers and the checks that apply to no layer.

    Where broken expectations ("no != yes") widen the columns past WIDTH, the table is
    turned: checks down, by their full names, and a column per layer (at most 4 layers in
    the shipped scenarios: its widest column is a kernel release, not a cell)."""
    checks, absent = shown(result)
    identity = [[str(layer.facts.index), _kernel(layer), layer.facts.loader] for layer in result.layers]
    header = ["#", "kernel", "loader", *(SHORT[n] for n in checks)]
    rows = [header] + [ident + [cell(layer.observed[n], layer.expect[n]) for n in checks]
                       for ident, layer in zip(identity, result.layers, strict=True)]
    states: list[list[State]] = [[None] * len(header)]
    states += [[None, None, None, *((layer.observed[n], layer.expect[n]) for n in checks)] for layer in result.layers]
    gaps = ["", " ", " "] + ["  " if i == 0 else " " for i in range(len(checks))]
    legend = [f"{SHORT[n]}={n}" for n in checks if SHORT[n] != n]
    below = _wrapped("columns: ", legend) if legend else []
    if max(len(line) for line in _grid(rows, states, False, gaps) + below) > WIDTH:
        rows = [["check", *(f"layer {ident[0]}" for ident in identity)],
                ["kernel", *(ident[1] for ident in identity)], ["loader", *(ident[2] for ident in identity)]]
        rows += [[n, *(cell(layer.observed[n], layer.expect[n]) for layer in result.layers)] for n in checks]
        states = [[None] * len(rows[0])] * 3
        states += [[None, *((layer.observed[n], layer.expect[n]) for layer in result.layers)] for n in checks]
        gaps, below = ["  "] * len(rows[0]), []         # full names: no legend
    lines = _grid(rows, states, colour, gaps) + below
    if absent and result.layers:        # no layer at all (set-up failed): nothing to say of them
        lines += _wrapped("not applicable in any layer: ", absent)
    return "\n".join(lines)


def _kernel(layer) -> str:
    f = layer.facts
    return terminal(f.field("kernel_release") or f.component.kernel_spec)     # uname -r: guest text


def _grid(rows: list[list[str]], states: list[list[State]], colour: bool, gaps: list[str]) -> list[str]:
    """rows[0] the header, then a line of dashes, then the rows; gaps[i] is put before column i
    (gaps[0] is not used); a cell with a state is coloured when colour is on."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    dashes = ["-" * w for w in widths]
    lines = []
    for row, state in zip([rows[0], dashes, *rows[1:]], [states[0], states[0], *states[1:]], strict=True):
        out = ""
        for i, (value, width) in enumerate(zip(row, widths, strict=True)):
            cell_state = state[i]
            shown_value = _paint(value, *cell_state) if colour and cell_state is not None else value
            out += (gaps[i] if i else "") + shown_value + " " * (width - len(value))
        lines.append(out.rstrip())
    return lines


def _wrapped(head: str, words: list[str]) -> list[str]:
    """head + words, comma-separated, in lines of at most WIDTH columns."""
    lines = [head + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + len(", " + word + ",") > WIDTH:     # room for its comma
            lines[-1] += ","
            lines.append("  " + word)
        else:
            lines[-1] += ", " + word
    return lines


def verdict_line(result: RunResult) -> str:
    """The scenario, its verdict, the QEMU and the wall time: the summary's first line and
    all `seedchain run -q` prints of a result."""
    verdict = "ERROR (no verdict)" if result.error else "PASS" if result.passed else "FAIL"
    s = result.scenario
    return terminal(f"{s.name}: {verdict}  (QEMU {result.qemu_version or '?'}, {s.qemu.machine}, "
                    f"cpu {s.qemu.cpu}, {result.accel or '?'}; {result.seconds:.1f} s)")


def summary(result: RunResult, colour: bool = False) -> str:
    parts = [verdict_line(result), table(result, colour)]
    failures = result.failures()
    if failures:
        parts.append(terminal("what broke:\n" + "\n".join(f"  {line}" for line in failures)))
    for layer in result.layers:
        if layer.facts.fault and layer.facts.fault != "not-reached" and layer.facts.console_tail:
            parts.append(terminal(f"last console lines of layer {layer.facts.index}:\n"
                                  + "\n".join(f"  | {line}" for line in layer.facts.console_tail[-12:])))
    parts.append(terminal(f"artifacts: {result.artifacts}"))
    return "\n".join(parts)     # guest strings (faults, versions, kernel releases) escaped above
