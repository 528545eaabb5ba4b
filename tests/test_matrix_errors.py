# SPDX-License-Identifier: GPL-2.0-only
"""A matrix cell that cannot be set up (a kernel that cannot be had, a download that
fails, a QEMU that does not start) is an error in every report: matrix.json, matrix.md,
matrix.html and the KCIDB data, with its reason; it never disappears and never looks
like a verdict, and the report counts as many cells as the matrix has.

The cells here fail for real reasons before anything boots: a kernel file that does
not exist, a file that is no kernel, a Debian kernel whose package lists cannot be
downloaded (the mirror is a loopback port nobody listens on: apt fails at once), and a
kernel path out of the scenario's folder and the project (refused when collected). A checkout (this repository's conftest.py, a
pytest.ini and a scenarios folder) is run by a pytest of its own, as CI runs the matrix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness import runfolder
from harness.matrix.expand import expand
from harness.reports.kcidb import main as kcidb_main

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = """\
name: one
description: d
layers:
  - kernel: {kernel}
    expect: {{seed: absent}}
"""


def checkout(tmp_path: Path) -> Path:
    """A checkout whose matrix `m` has four cells that cannot be set up."""
    tmp_path.mkdir()
    shutil.copy(ROOT / "conftest.py", tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "not-a-kernel").write_bytes(b"MZ" + bytes(4094))
    (scenarios / "one.yaml").write_text(SCENARIO.format(kernel="not-a-kernel"))
    missing, garbage = scenarios / "missing-kernel", scenarios / "not-a-kernel"
    outside = tmp_path.parent / "outside-kernel"
    outside.write_bytes(b"MZ" + bytes(4094))
    (scenarios / "matrix.yaml").write_text(
        "matrices:\n  m:\n    groups:\n      - scenarios: [one]\n"
        f"        axes:\n          kernel: [{missing}, {garbage}, debian:bookworm/6.1, {outside}]\n")
    (scenarios / "known-gaps.yaml").write_text("[]\n")
    return tmp_path


def run_matrix(where: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEEDCHAIN_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
           "SEEDCHAIN_DEBIAN_SECURITY": "http://127.0.0.1:9/debian-security"}
    env.pop("SEEDCHAIN_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--artifacts", str(out), "--seedchain-cache", str(where / "cache"),
                           "scenarios", "--matrix", "m"],
                          cwd=where, capture_output=True, text=True, timeout=300, check=False,
                          stdin=subprocess.DEVNULL, env=env)


def test_cells_that_cannot_be_set_up_are_errors_in_every_report(tmp_path):
    where = checkout(tmp_path / "checkout")
    out = tmp_path / "out"
    # An earlier run's verdict in a cell's folder must not stand in for this run's.
    stale = runfolder.claim(out / "one_kernel=missing-kernel")      # a run folder seedchain made
    (stale / "result.json").write_text(json.dumps({"id": "one[kernel=missing-kernel]",
                                                   "scenario": "one", "passed": True, "layers": []}))
    proc = run_matrix(where, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "4 failed" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr, proc.stdout

    cells = expand(where / "scenarios" / "matrix.yaml", "m")
    report = json.loads((out / "matrix" / "matrix.json").read_text())
    assert len(report["cells"]) == len(cells) == 4
    assert report["counts"]["error"] == 4 and report["counts"]["pass"] == 0
    reasons = {c["id"]: c["error"] for c in report["cells"]}
    assert set(reasons) == {c.id for c in cells}
    assert "does not exist" in reasons["one[kernel=missing-kernel]"]
    assert "not an x86 bzImage" in reasons["one[kernel=not-a-kernel]"]
    assert "package lists" in reasons["one[kernel=6.1]"] and "127.0.0.1:9" in reasons["one[kernel=6.1]"]
    assert "leads out of the scenario's folder" in reasons["one[kernel=outside-kernel]"]
    assert all(r.startswith("could not run: ") for r in reasons.values())
    for cell in report["cells"]:
        assert cell["status"] == "error" and cell["layers"] == [] and cell["passed"] is False

    markdown = (out / "matrix" / "matrix.md").read_text()
    html = (out / "matrix" / "matrix.html").read_text()
    for cid in reasons:
        assert f"`{cid}`" in markdown and cid in html
    for words in ("does not exist", "not an x86 bzImage", "leads out of"):
        assert words in markdown and words in html

    kcidb = tmp_path / "kcidb.json"
    assert kcidb_main(["--kcidb", str(kcidb), str(out)]) == 0
    tests = json.loads(kcidb.read_text())["tests"]
    missed = {t["misc"]["result"]: t for t in tests if t["status"] == "MISS"}
    assert set(missed) == set(reasons)
    assert all("could not run" in t["comment"] for t in missed.values())
    assert not [t for t in tests if t["status"] in ("PASS", "FAIL")]


def test_a_matrix_folder_of_ones_own_without_known_gaps_gets_its_report(tmp_path):
    """A matrix folder outside any checkout, with no known-gaps.yaml of its own: the cells
    are judged and reported against the gaps seedchain ships (the report's writer looked for
    <rootdir>/scenarios/known-gaps.yaml and ended the session in a traceback)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(ROOT / "scenarios" / "schema.json", folder)
    (folder / "one.yaml").write_text(SCENARIO.format(kernel="./no-such-bzImage"))
    (folder / "matrix.yaml").write_text("matrices:\n  m:\n    description: d\n    groups:\n"
                                        "      - scenarios: [one]\n        axes:\n          machine: [q35, pc]\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.pytest_session", "-p", "no:cacheprovider",
                           "-q", "--matrix", "m", "--artifacts", str(out), str(folder)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((out / "matrix" / "matrix.json").read_text())
    assert len(report["cells"]) == 2 and {c["status"] for c in report["cells"]} == {"error"}
