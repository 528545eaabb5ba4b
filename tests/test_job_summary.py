# SPDX-License-Identifier: GPL-2.0-only
"""harness/reports/summary.py, the workflows' job summary: the counts by status and what
needs a look, from a matrix.json; every text of a result shown as text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.matrix.known_gaps import load_gaps
from harness.reports import summary as job_summary
from harness.reports.matrix import DEFAULT_GAPS, merge, write_report

MATRIX = Path(__file__).parent / "fixtures" / "matrix"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("matrix")
    write_report(merge([MATRIX]), load_gaps(DEFAULT_GAPS), out)
    return out / "matrix.json"


def _main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.reports.summary", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_counts_and_what_needs_a_look(report):
    data = json.loads(report.read_text())
    proc = _main(str(report), "--title", "nightly")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = proc.stdout
    assert text.startswith("## nightly\n\n17 cells.\n")
    assert data["counts"] == {"pass": 5, "known-gap": 7, "unexpected-pass": 2, "fail": 2, "error": 1}
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| status")]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| pass", "5"], ["| known gap (xfail)", "7"], ["| unexpected pass", "2"], ["| fail", "2"],
        ["| error", "1"]]
    block = text.split("### Needs a look: 5\n\n```text\n", 1)[1].split("\n```\n")[0].splitlines()
    assert block[0::2] == [
        "kexec-file-2[qemu=10.0,kernel=6.1]: error",
        "kexec-file-2[qemu=7.2.0,kernel=6.1]: fail",
        "kexec-file-2[qemu=7.2.0,kernel=7.2]: fail",
        "ideal-2[qemu=11.1,kernel=5.10]: unexpected-pass",
        "ideal-2[qemu=11.1,kernel=6.1]: unexpected-pass"]
    assert block[1] == "    harness error: cannot prepare QEMU debian:trixie: mmdebstrap exited with 1 (synthetic)"
    assert block[3].endswith("received expected no, observed yes")
    assert block[7].startswith("    known gap qemu-no-seed did not happen: layer 1 received was yes")


def _cell(cell_id: str, error: str) -> dict:
    return {"id": cell_id, "status": "error", "error": error, "classification": {}}


def test_a_result_text_stays_text():
    """Backticks cannot close the block, new lines and control characters cannot start
    Markdown of their own."""
    report = {"counts": {"error": 1},
              "cells": [_cell("x````[a]", "```\n## <img src=x> [link](http://example.invalid)\x1b[31m")]}
    text = job_summary.summary(report, "t\n# two")
    assert text.startswith("## t # two\n")
    block = text.split("### Needs a look: 1\n\n", 1)[1]
    fence = block.split("\n", 1)[0]
    assert fence == "`````text"
    lines = block.splitlines()
    assert lines[-1] == "`````" and "`````" not in "\n".join(lines[1:-1])
    assert lines[1] == "x````[a]: error"
    assert lines[2] == "    harness error: ``` ## <img src=x> [link](http://example.invalid)?[31m"


def test_at_most_max_listed_cells():
    report = {"counts": {"error": 60}, "cells": [_cell(f"c{i}", "boom") for i in range(60)]}
    text = job_summary.summary(report, "t")
    assert f"c{job_summary.MAX_LISTED - 1}: error" in text and f"c{job_summary.MAX_LISTED}: error" not in text
    assert f"... and {60 - job_summary.MAX_LISTED} more" in text


def test_nothing_to_look_at_and_an_unknown_status():
    text = job_summary.summary({"counts": {"pass": 1, "later": 2}, "cells": []}, "t")
    assert "| pass | 1 |" in text and "| later | 2 |" in text and "Nothing needs a look." in text


def test_no_report_and_a_bad_one(tmp_path):
    proc = _main(str(tmp_path / "missing.json"))
    assert proc.returncode == 0 and "No matrix report was written" in proc.stdout
    for content in ("{not json", '{"cells": 3}', "[]", '{"cells": [{"status": "error"}]}'):
        (tmp_path / "bad.json").write_text(content)
        proc = _main(str(tmp_path / "bad.json"))
        assert proc.returncode == 2 and proc.stdout == "", content
        assert proc.stderr.startswith(f"error: {tmp_path / 'bad.json'}: cannot read it as a matrix report")
        assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
