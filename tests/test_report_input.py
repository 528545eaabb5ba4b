# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain report` and `report --kcidb` on results that are not what seedchain writes:
malformed or deeply nested JSON becomes an error cell, an OUT that cannot be written and a
folder without any result.json are errors (exit 2) with a message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

BAD: dict[str, str | bytes] = {
    "wrong-types": json.dumps({"scenario": "x", "layers": [{"outcome": "x", "expect": "y", "index": "z"}],
                               "cell": "q", "qemu": "v"}),
    "layer-not-mapping": json.dumps({"scenario": "y", "layers": [1, {"booted": True}], "passed": "maybe"}),
    "deep-list": "[" * 100_000 + "]" * 100_000,
    "deep-in-layer": json.dumps({"scenario": "z", "layers": [{"fault": {"a": json.loads("[" * 500 + "]" * 500)}}]}),
    "not-json": "{\"layers\": [",
    "not-utf8": b"\xff\xfe{}",
}


def results(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "results"
    for name in names:
        (folder / name).mkdir(parents=True)
        text = BAD[name]
        (folder / name / "result.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


@pytest.mark.parametrize("kcidb", [False, True], ids=["report", "kcidb"])
@pytest.mark.parametrize("name", list(BAD))
def test_a_malformed_result_is_an_error_cell(tmp_path, capsys, name, kcidb):
    folder = results(tmp_path, name)
    out = tmp_path / "out"
    argv = ["report", "--kcidb", str(out / "k.json"), str(folder)] if kcidb else ["report", str(out), str(folder)]
    assert main(argv) == 0
    if kcidb:
        assert json.loads((out / "k.json").read_text())["tests"]
    else:
        cells = json.loads((out / "matrix.json").read_text())["cells"]
        assert [c["status"] for c in cells] == ["error"]
        assert "cannot read" in cells[0]["error"]


@pytest.mark.parametrize("kcidb", [False, True], ids=["report", "kcidb"])
def test_an_out_that_cannot_be_written_is_an_error(tmp_path, capsys, kcidb):
    folder = results(tmp_path, "wrong-types")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = ["report", "--kcidb", str(blocker / "k.json"), str(folder)] if kcidb else \
        ["report", str(blocker / "out"), str(folder)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["report", "{out}"], ["report", "--check", "{out}"],
                                  ["report", "--kcidb", "{out}/k.json"]])
def test_an_empty_folder_is_an_error(tmp_path, capsys, argv):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([a.format(out=tmp_path / "out") for a in argv] + [str(empty)]) == 2
    assert f"no result.json under {empty}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
