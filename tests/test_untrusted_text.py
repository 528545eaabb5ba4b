# SPDX-License-Identifier: GPL-2.0-only
"""Untrusted text (scenario descriptions and paths, result files' ids, what a guest prints)
reaches a terminal, a Markdown table or KCIDB data with its escape sequences and HTML
made harmless (harness.text); the HTML page was autoescaped already."""

from __future__ import annotations

import json
from pathlib import Path

from harness import text
from harness.reports.kcidb import main as kcidb_main
from harness.reports.matrix import write_report
from test_cli import seedchain
from test_known_gaps import synth

ESC = "\x1b]0;owned\x07\x1b[2J\x9b31m"          # OSC retitle + BEL, clear screen, C1 CSI
HTML = "<img src=x onerror=alert(1)>"
CONTROL = ("\x1b", "\x07", "\x9b")


def clean(output: str) -> bool:
    return not any(c in output for c in CONTROL)


def test_text_escapes_control_characters_and_markup():
    assert text.terminal(f"a{ESC}\nb\tc") == "a\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\nb\tc"
    assert text.one_line("a\nb") == "a\\x0ab"
    cell = text.markdown(f"{HTML} | x\ny `z` & {ESC}")
    assert clean(cell) and "<" not in cell and "\n" not in cell
    assert "&lt;img" in cell and "\\|" in cell and "\\`z\\`" in cell and "&amp;" in cell
    assert text.code_span("a|b`c\x1b") == "a\\|bc\\x1b"


def test_list_shows_a_description_escaped(tmp_path):
    (tmp_path / "s.yaml").write_text(f'name: s\ndescription: "x \\e]0;owned\\a \\e[2J {HTML}"\n'
                                     "layers:\n  - kernel: debian:bookworm/6.1\n")
    proc = seedchain("list", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert clean(proc.stdout) and "\\x1b]0;owned\\x07" in proc.stdout


def test_a_kernel_path_in_an_error_is_escaped(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text('name: s\ndescription: d\nlayers:\n  - kernel: "nothing\\e[2J\\e]0;owned\\a"\n')
    proc = seedchain("check", path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert clean(proc.stderr) and "nothing\\x1b[2J" in proc.stderr


def _result(tmp_path: Path) -> Path:
    result = synth.real("kexec-file-2")
    result["id"] = f"kexec-file-2[qemu={ESC}]"
    result["passed"] = False
    result["error"] = f"{ESC} {HTML}"
    for layer in result["layers"]:
        layer["fault"], layer["kernel_version"] = f"panic {ESC} {HTML}", f"6.1 {ESC}"
    folder = tmp_path / "results" / "cell"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(result))
    return tmp_path / "results"


def test_report_prints_cell_ids_escaped(tmp_path):
    proc = seedchain("report", tmp_path / "out", _result(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "kexec-file-2[qemu=\\x1b]0;owned" in proc.stdout and clean(proc.stdout)


def test_matrix_md_cells_carry_no_escape_or_html(tmp_path):
    result = json.loads((_result(tmp_path) / "cell" / "result.json").read_text())
    write_report([result], (), tmp_path / "out")
    md = (tmp_path / "out" / "matrix.md").read_text()
    assert clean(md) and "<img" not in md and "&lt;img" in md


def test_kcidb_strings_carry_no_escape(tmp_path, capsys):
    out = tmp_path / "k.json"
    assert kcidb_main(["--kcidb", str(out), str(_result(tmp_path))]) == 0
    data = out.read_text()
    assert "\\u001b" not in data and "\\u0007" not in data and "\\u009b" not in data
    assert "\\\\x1b" in data                           # shown, escaped
