# SPDX-License-Identifier: GPL-2.0-only
"""A damaged ledger is kept aside and said, never lost silently; a deeply nested one is
damaged like any other (no RecursionError after a whole boot); `ledger show` describes a
damaged file instead of failing; `--cache FILE` is an error, and so is a `--json` that is
the scenario file itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.facts import ledger
from harness.facts.layer import LayerFacts, SeedInFlight
from harness.progress import reporting
from test_cli import seedchain

ROOT = Path(__file__).resolve().parent.parent


def _seeded(index: int, data: bytes) -> LayerFacts:
    return LayerFacts(index=index, loader="qemu" if index == 1 else "kexec_file_load",
                      seed_in_flight=SeedInFlight(stopped=True, address=0x990d0, data=data))


def _history(cache: Path, runs: int = 14) -> Path:
    for n in range(runs):
        ledger.record(cache, "s", "s", [_seeded(1, bytes([n]) * 32)])
    path = cache / "ledger" / "s.json"
    assert len(ledger.runs(cache, "s")) == runs
    return path


def _record(cache: Path) -> list[str]:
    said: list[str] = []
    with reporting(said.append):
        ledger.annotate([_seeded(1, b"z" * 32)], ledger.runs(cache, "s"))
        ledger.record(cache, "s", "s", [_seeded(1, b"z" * 32)])
    return said


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "nested": lambda text: "[" * 100_000 + "]" * 100_000,
    "wrong-types": lambda text: text.replace('"layers": {', '"layers": {"9": 5, ', 1),
    "not-a-mapping": lambda text: "[1, 2, 3]",
    "binary": lambda text: "\udcff" + text,
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_ledger_is_kept_aside_and_said(tmp_path, how):
    path = _history(tmp_path)
    damaged = DAMAGE[how](path.read_text()).encode("utf-8", "surrogateescape")
    path.write_bytes(damaged)
    said = _record(tmp_path)
    (aside,) = (tmp_path / "ledger").glob("s.damaged-*.json")
    assert aside.read_bytes() == damaged                       # the history, as it was
    assert len(said) == 1 and "was damaged" in said[0] and aside.name in said[0]
    runs = ledger.runs(tmp_path, "s")
    assert runs[-1]["layers"]["1"] == _seeded(1, b"z" * 32).seed_in_flight.sha256
    if how == "wrong-types":                                   # the readable runs carried over
        assert len(runs) == 14 + 1 - 1
    assert ledger.scenarios(tmp_path) == ["s"]


@pytest.mark.parametrize("how", list(DAMAGE))
def test_ledger_show_describes_a_damaged_file(tmp_path, capsys, how):
    path = _history(tmp_path)
    path.write_bytes(DAMAGE[how](path.read_text()).encode("utf-8", "surrogateescape"))
    assert main(["ledger", "show", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "is damaged" in out and "the next run keeps it aside" in out
    assert path.exists()                                       # show reads, it does not move


def test_ledger_show_on_a_cache_that_is_a_file(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.write_text("")
    assert main(["ledger", "show", "--cache", str(cache)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_json_that_is_the_scenario_file_is_refused(tmp_path):
    scenario = tmp_path / "s.yaml"
    text = "name: s\ndescription: d\nlayers:\n  - kernel: debian:bookworm/6.1\n"
    scenario.write_text(text)
    (tmp_path / "link.yaml").symlink_to(scenario)
    for output in (scenario, tmp_path / "link.yaml"):
        proc = seedchain("run", scenario, "--json", output, "--artifacts", tmp_path / "out",
                         env={"SEEDCHAIN_CACHE": str(tmp_path / "cache"), "SEEDCHAIN_OFFLINE": "1"})
        assert proc.returncode == 125
        assert proc.stderr.startswith("seedchain: error: --json: ") and "would overwrite it" in proc.stderr
        assert scenario.read_text() == text


def test_a_nested_ledger_does_not_crash_a_run_after_its_boot(tmp_path):
    path = _history(tmp_path, runs=1)
    path.write_text("[" * 100_000 + "]" * 100_000)
    json.dumps(_record(tmp_path))          # returns, with its one line; no RecursionError
