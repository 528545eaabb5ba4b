# SPDX-License-Identifier: GPL-2.0-only
"""Untrusted text made safe for where it is shown.

Scenario descriptions, kernel paths, cell ids from result files and whatever a guest
prints may hold terminal escape sequences (ESC [ ... moves the cursor, retitles the
window, hides text) and HTML. Each place that prints or renders such text passes it
through one of these:

- terminal(): for a terminal or a log; every control character but newline and tab
  (C0, DEL and the C1 range, where 0x9b alone is a CSI) shown as a \\xNN escape;
- one_line(): the same, with newlines and tabs escaped too (a field on one line);
- markdown(): for a Markdown table cell or list item: one line, control characters
  escaped, and \\, |, `, <, > and & escaped, so that nothing becomes markup or HTML;
- code_span(): the same for the inside of a `code span` (where markup is already text):
  one line, control characters escaped, | escaped (GFM tables), backticks dropped.

The HTML page is Jinja2-autoescaped (harness/reports/render.py); JSON is escaped by json.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")          # keeps \t (0x09) and \n (0x0a)
_CONTROL_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = {"\\": "\\\\", "|": "\\|", "`": "\\`", "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _escape(match: re.Match) -> str:
    return f"\\x{ord(match[0]):02x}"


def terminal(text: object) -> str:
    """Text safe to write to a terminal: control characters (but newline and tab) escaped."""
    return _CONTROL.sub(_escape, str(text))


def one_line(text: object) -> str:
    """Text safe on one line of a terminal: every control character escaped."""
    return _CONTROL_ALL.sub(_escape, str(text))


def markdown(text: object) -> str:
    """Text safe inside a Markdown table cell: one line (runs of white space one space),
    control characters escaped, and Markdown's and HTML's special characters escaped."""
    flat = one_line(" ".join(str(text).split()))
    return "".join(_MARKDOWN.get(c, c) for c in flat)


def code_span(text: object) -> str:
    """Text safe between backticks in a Markdown table: one line, control characters escaped,
    '|' escaped (a table splits on it even in a code span), backticks dropped."""
    return one_line(" ".join(str(text).split())).replace("`", "").replace("|", "\\|")
