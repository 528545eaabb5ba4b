# SPDX-License-Identifier: GPL-2.0-only
"""What holds seeds is out of other local users' reach: guest RAM on tmpfs, the gdbstub,
the run folder with result.json and layer-N.json, the ledger and the matrix report,
from the moment each exists and whatever the umask (tests/other_user.py is the other
user)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import pipeline
from harness.boot import chain, ram
from harness.errors import SeedchainError
from harness.facts import ledger
from harness.facts.layer import LayerFacts, SeedInFlight
from harness.reports.matrix import write_report
from harness.scenario.load import load_scenario
from other_user import NOBODY, Shared, attempt, connect, list_folder, read_file

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def mode(path) -> int:
    return os.lstat(path).st_mode & 0o777


@pytest.fixture
def open_umask():
    """The loosest umask a caller could have: only the modes seedchain sets protect."""
    old = os.umask(0)
    yield
    os.umask(old)


def _caught_facts() -> list[LayerFacts]:
    seed = SeedInFlight(stopped=True, address=0x1000, len=32, data=bytes(range(1, 33)))
    return [LayerFacts(index=1, loader="qemu", seed_in_flight=seed)]


class _Result:
    def to_json(self):
        return {"layers": [{"seed_in_flight": {"data": bytes(range(1, 33)).hex()}}]}


def test_the_run_folder_and_what_holds_seeds_in_it_are_private(open_umask):
    with Shared() as shared:
        artifacts = shared / "results"
        outdir = pipeline.prepare_artifacts(load_scenario(SCENARIOS / "kexec-file-2.yaml"), artifacts)
        pipeline.write_result(outdir, _Result())
        chain.save_facts(outdir, _caught_facts())
        assert mode(artifacts) == 0o700 and mode(outdir) == 0o700         # made by seedchain
        assert {p.name: mode(p) for p in outdir.iterdir() if not p.name.startswith(".")} == {
            "scenario.yaml": 0o600, "result.json": 0o600, "layer-1.json": 0o600}
        for path in (outdir / "result.json", outdir / "layer-1.json"):
            assert attempt(read_file, path) == "PermissionError"
        assert attempt(list_folder, outdir) == "PermissionError"


def test_an_artifacts_folder_the_user_made_keeps_its_mode_and_the_run_folder_is_private(open_umask):
    with Shared() as shared:
        outdir = pipeline.prepare_artifacts(load_scenario(SCENARIOS / "kexec-file-2.yaml"), shared)
        assert mode(shared) == 0o755 and mode(outdir) == 0o700


def test_an_artifacts_folder_the_command_line_makes_is_private(open_umask):
    from harness.cli import _writable
    with Shared() as shared:
        _writable(shared / "new" / "results", "--artifacts", folder=True)
        assert mode(shared / "new") == 0o700 and mode(shared / "new" / "results") == 0o700


def test_the_ledger_is_private(open_umask):
    with Shared() as cache:
        ledger.record(cache, "private-ledger", "private-ledger", _caught_facts())
        path = ledger.folder(cache) / "private-ledger.json"
        assert path.is_file() and mode(path) == 0o600 and mode(ledger.folder(cache)) == 0o700
        assert attempt(read_file, path) == "PermissionError"
        assert attempt(list_folder, ledger.folder(cache)) == "PermissionError"


def test_the_matrix_report_files_are_private(open_umask):
    with Shared() as shared:
        report = write_report([], [], shared / "matrix")
        assert sorted(mode(p) for p in report.files.values()) == [0o600] * 3
        assert mode(shared / "matrix") == 0o700


def test_the_ram_file_is_private_from_the_moment_it_exists(open_umask):
    with Shared() as shared:
        outdir = shared / "run"
        path = chain.make_ram_file(outdir)
        try:
            assert path == chain.ram_file(outdir) and path.stat().st_size == 0
            assert mode(path) == 0o600 and mode(path.parent) == 0o700
            assert attempt(read_file, path) == "PermissionError"
        finally:
            chain.remove_ram(outdir)
        assert not path.parent.exists()


@pytest.mark.parametrize("squatter", ["symlink", "another user's folder", "an unmarked folder"])
def test_a_ram_folder_seedchain_did_not_make_is_neither_used_nor_removed(squatter, tmp_path):
    outdir = tmp_path / "run"
    folder = chain.ram_folder(outdir)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    if squatter == "symlink":
        folder.symlink_to(victim)
    else:
        folder.mkdir()
        (folder / ram.FILE).write_text("someone's")
        (folder / ram.MARK).write_text("")
        if squatter == "another user's folder":
            for path in (folder, folder / ram.FILE, folder / ram.MARK):
                os.chown(path, NOBODY, NOBODY)
        else:
            (folder / ram.MARK).unlink()
    try:
        chain.remove_ram(outdir)
        with pytest.raises(SeedchainError, match=str(folder)):
            chain.make_ram_file(outdir)
        assert (victim / "keep").read_text() == "mine"
        assert folder.is_symlink() if squatter == "symlink" else (folder / ram.FILE).read_text() == "someone's"
    finally:
        if folder.is_symlink():
            folder.unlink()
        elif folder.is_dir():
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()


def _gdbstub_address(machine):
    """Where QEMU's gdbstub listens, from query-chardev ("disconnected:unix:PATH,server=on",
    or "...:tcp:HOST:PORT,server=on" as before): a Unix socket's path, or (host, port)."""
    for dev in machine.qmp.cmd("query-chardev"):
        if dev.get("label") == "gdbstub":
            name = dev["filename"]
            if "tcp:" in name:
                host, port = name.split("tcp:", 1)[1].split(",", 1)[0].rsplit(":", 1)
                return host, int(port)
            return name.split("unix:", 1)[1].split(",", 1)[0]
    raise AssertionError("no gdbstub chardev")


@pytest.mark.vm
def test_another_user_reaches_neither_guest_ram_nor_the_gdbstub_nor_the_results(seedchain, monkeypatch):
    """A real two-layer run with the RAM search on (a RAM file on tmpfs) in a folder every
    user may enter: while QEMU runs, the other user tries the RAM file, the gdbstub and the
    logs; after it, result.json, layer-N.json and the ledger. All fail, and the run still
    catches layer 2's seed and passes."""
    tried: dict[str, str] = {}
    real_boot_chain = pipeline.boot_chain

    def boot_chain(scenario, machine, facts, outdir, progress):
        ram_path = next(a.split("mem-path=", 1)[1].split(",", 1)[0] for a in machine.args if "mem-path=" in a)
        tried["ram"] = attempt(read_file, ram_path)
        tried["gdbstub"] = attempt(connect, _gdbstub_address(machine))
        for name in ("console.log", "qemu.log", "qemu-cmdline.txt"):
            tried[name] = attempt(read_file, outdir / name)
        return real_boot_chain(scenario, machine, facts, outdir, progress)

    monkeypatch.setattr(pipeline, "boot_chain", boot_chain)
    old = os.umask(0o022)
    try:
        with Shared() as shared:
            text = (SCENARIOS / "kexec-file-2.yaml").read_text().replace("name: kexec-file-2", "name: private-run")
            path = shared / "private-run.yaml"
            path.write_text(text + "capture: {ram_search: true}\n")
            try:
                result = pipeline.run(load_scenario(path), cache=seedchain.cache, artifacts=shared / "out")
                outdir = Path(result.artifacts)
                for name in ("result.json", "layer-1.json", "layer-2.json", "agent.log"):
                    tried[name] = attempt(read_file, outdir / name)
                tried["ledger"] = attempt(read_file, ledger.folder(seedchain.cache.root) / "private-run.json")
            finally:
                ledger.clear(seedchain.cache.root, "private-run")
    finally:
        os.umask(old)
    assert tried == dict.fromkeys(tried, "PermissionError") and len(tried) == 10, tried
    assert result.passed, result.to_json()
    assert result.to_json()["layers"][1]["seed_in_flight"]["caught"] is True
