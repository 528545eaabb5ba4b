# SPDX-License-Identifier: GPL-2.0-only
"""Seeds caught in flight: where the stop points come from, the fresh and lingering
checks over recorded captures, the ledger, and the RAM search over a RAM file."""

import dataclasses
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path


from harness.arch import x86_64
from harness.boot.ram import MIN_RUN, GuestRam, low_memory_limit
from harness.checks import rules
from harness.facts import ledger
from harness.facts.copies import describe
from harness.facts.layer import LayerFacts, SeedInFlight
from recorded import facts

ROOT = Path(__file__).parent.parent


# -- where to stop ------------------------------------------------------------------------

def test_kexec_load_entry_from_kexec_d():
    recorded = facts("qemu720-chain")[1].loader_record       # 7.2 loading 6.1 with kexec -c -d
    entry, how = x86_64.next_entry(recorded.output, recorded.dmesg)
    assert "Loaded 64bit kernel at" in recorded.output
    assert entry == facts("qemu720-chain")[2].seed_in_flight.stop_address
    assert how.startswith("kexec -d: Loaded 64bit kernel at 0x") and "+0x200" in how


def test_kexec_file_load_entry_from_the_kernel_log():
    recorded = facts("kexec-file-2")[0].loader_record        # 6.1 with dynamic debug on
    entry, how = x86_64.next_entry(recorded.output, recorded.dmesg)
    assert entry == int(recorded.dmesg.split("Loaded 64bit kernel at ")[1].split()[0], 16) + 0x200
    assert how.startswith("the kernel log")


def test_no_entry_says_why():
    entry, how = x86_64.next_entry("kexec_load: entry = 0x7ffd7760\n", "")
    assert entry is None and "KEXEC_FILE_DEBUG" in how and "2.0.28" in how


def test_first_entry_per_firmware():
    assert x86_64.first_entry("q35", "seabios")[0] == 0x100000
    assert "qboot" in x86_64.first_entry("microvm,rtc=on", "seabios")[1]
    entry, why = x86_64.first_entry("q35", "ovmf")
    assert entry is None and "EFI stub" in why


def test_every_recorded_handover_was_caught_or_says_why():
    for name in ("kexec-file-2", "kexec-load", "crash-kernel", "microvm", "machine-pc", "qemu720-chain"):
        for f in facts(name):
            caught = f.seed_in_flight
            assert caught is not None, (name, f.index)
            assert caught.stopped, (name, f.index, caught.reason)
            if f.index > 1 or name.startswith("qemu720"):
                assert caught.caught and len(caught.data) == 32 and any(caught.data), (name, f.index)
    ovmf = facts("ovmf-efi-seed")[0].seed_in_flight
    assert not ovmf.stopped and "EFI stub" in ovmf.reason


# -- fresh ---------------------------------------------------------------------------------

def _caught_child(name="kexec-file-2"):
    return facts(name)[-1]


def test_fresh_on_a_recorded_capture():
    f = _caught_child()
    assert rules.fresh(f) is True and rules.fresh_findings(f) == []
    assert f.seed_in_flight.address == f.ram_seeds[0].address   # the cross-check held


def test_fresh_fails_on_zero_bytes():
    f = _caught_child()
    f.seed_in_flight = dataclasses.replace(f.seed_in_flight, data=bytes(32))
    assert rules.fresh(f) is False
    assert rules.fresh_findings(f) == ["all 32 bytes are zero"]


def test_fresh_fails_on_a_seed_seen_before():
    f = _caught_child()
    f.seed_in_flight.same_as = ["layer 1 of the run of 2026-12-02T10:00:00Z"]
    assert rules.fresh(f) is False
    assert "the same bytes as layer 1 of the run of" in rules.fresh_findings(f)[0]


def test_fresh_fails_when_the_entry_moved():
    f = _caught_child()
    f.seed_in_flight = dataclasses.replace(f.seed_in_flight, address=f.seed_in_flight.address + 0x1000)
    assert rules.fresh(f) is False
    assert "later had its seed at" in rules.fresh_findings(f)[0]


def test_fresh_not_judged_without_a_capture():
    f = _caught_child()
    f.seed_in_flight = SeedInFlight(reason="capture: {seed_in_flight: false} in the scenario")
    assert rules.fresh(f) is None


def test_overwritten_entry_is_named():
    f = facts("qemu720-seed-overwritten")[0]
    assert rules.fresh(f) is False and rules.received(f) is False
    (finding,) = rules.fresh_findings(f)
    assert "was overwritten before the kernel read it" in finding


def test_replayed_seed_is_caught_by_the_ledger():
    f = facts("qemu720-replayed-seed")[0]
    assert rules.fresh(f) is False and rules.received(f) is True and rules.zeroed_ram(f) is True
    assert f.seed_in_flight.same_as and "of the run of" in f.seed_in_flight.same_as[0]


# -- the ledger ----------------------------------------------------------------------------

def _seeded(index: int, data: bytes) -> LayerFacts:
    return LayerFacts(index=index, loader="qemu" if index == 1 else "kexec_file_load",
                      seed_in_flight=SeedInFlight(stopped=True, address=0x990d0, data=data))


def test_ledger_sees_repeats_within_and_across_runs(tmp_path):
    run = [_seeded(1, b"a" * 32), _seeded(2, b"b" * 32), _seeded(3, b"a" * 32)]
    ledger.annotate(run, ledger.runs(tmp_path, "s"))
    assert run[0].seed_in_flight.same_as == ["layer 3 of this run"]
    assert run[1].seed_in_flight.same_as == []
    entry = ledger.record(tmp_path, "s", "s", run)
    assert set(entry["layers"]) == {"1", "2", "3"}
    text = (tmp_path / "ledger" / "s.json").read_text()
    assert "6161" not in text and (b"a" * 32).hex() not in text          # digests only, never bytes
    later = [_seeded(1, b"b" * 32)]
    ledger.annotate(later, ledger.runs(tmp_path, "s"))
    assert later[0].seed_in_flight.same_as == [f"layer 2 of the run of {entry['when']}"]
    other = [_seeded(1, b"b" * 32)]
    ledger.annotate(other, ledger.runs(tmp_path, "another-scenario"))
    assert other[0].seed_in_flight.same_as == []
    assert ledger.clear(tmp_path, "s") == ["s"] and ledger.runs(tmp_path, "s") == []


def _record_many(root: str, worker: int) -> None:
    for _ in range(20):
        ledger.record(Path(root), "shared", "shared", [_seeded(1, os.urandom(32))])


def test_ledger_is_whole_under_parallel_writers(tmp_path):
    workers = [multiprocessing.Process(target=_record_many, args=(str(tmp_path), w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert len(ledger.runs(tmp_path, "shared")) == 80


def test_ledger_command_shows_and_clears(tmp_path):
    ledger.record(tmp_path, "kexec-file-2", "kexec-file-2", [_seeded(2, b"c" * 32)])
    def run(*args):
        return subprocess.run([sys.executable, "-m", "harness.cli", "ledger", *args, "--cache", str(tmp_path)],
                              capture_output=True, text=True, cwd=ROOT)
    shown = run("show")
    assert shown.returncode == 0 and "kexec-file-2: 1 run" in shown.stdout
    assert ledger.runs(tmp_path, "kexec-file-2")[0]["layers"]["2"][:16] in shown.stdout
    cleared = run("clear", "kexec-file-2")
    assert cleared.returncode == 0 and "cleared the ledger of kexec-file-2" in cleared.stdout
    assert "the ledger is empty" in run("show").stdout


# -- lingering and the RAM search ------------------------------------------------------------

def test_lingering_over_recorded_searches():
    chain = facts("qemu720-chain")
    assert [rules.lingering(f) for f in chain] == [True, False, True]
    copy = chain[0].ram_copies[0]
    assert copy.seed_layer == 1 and copy.length == 32
    assert "a whole setup_data record (type 9, len 32) in front" in describe(copy, chain[0], chain)


def test_crash_kernel_copy_is_placed_in_the_parent_memory():
    chain = facts("crash-kernel")
    (copy,) = chain[1].ram_copies
    assert "outside this layer's memory, in layer 1's System RAM" in describe(copy, chain[1], chain)


def _ram_file(tmp_path, size=64 << 20) -> Path:
    path = tmp_path / "guest.ram"
    with open(path, "wb") as f:
        f.truncate(size)                      # a sparse file, like RAM the guest never touched
    return path


def test_ram_search_finds_runs_anywhere(tmp_path):
    seed = bytes(range(100, 132))
    path = _ram_file(tmp_path)
    chunk = 16 << 20
    places = {0x1234: seed,                                    # whole
              chunk - 10: seed,                                # across a chunk's edge
              0x2000100: seed[5:5 + MIN_RUN],                  # a 16-byte run from the middle
              0x3000000: seed[:MIN_RUN - 1]}                   # 15 bytes: not a copy
    with open(path, "r+b") as f:
        for at, data in places.items():
            f.seek(at)
            f.write(data)
    ram = GuestRam(path, "q35", 64)
    try:
        hits = ram.find([seed, bytes(32)])
    finally:
        ram.close()
    assert [(h.address, h.offset, h.length) for h in hits] == [
        (0x1234, 0, 32), (chunk - 10, 0, 32), (0x2000100, 5, MIN_RUN)]


def test_ram_above_4g_is_addressed_as_the_machine_maps_it():
    assert low_memory_limit("q35", 2048) == 2048 << 20
    assert low_memory_limit("q35", 4096) == 0x80000000
    assert low_memory_limit("pc-i440fx-7.2", 4096) == 0xC0000000


def test_matrix_cells_search_ram():
    from harness.matrix.expand import expand
    cells = expand(ROOT / "scenarios" / "matrix.yaml", "nightly")
    assert cells and all(c.capture.ram_search and c.capture.seed_in_flight for c in cells)
    assert any(c.qemu.build == "source:7.2.0" for c in cells)


def test_the_matrix_report_shows_stale_and_lingering_seeds():
    from harness.reports.matrix import layer_state
    from recorded import result
    assert layer_state(result("qemu720-replayed-seed")["layers"][0]) == "stale"
    assert layer_state(result("qemu720-chain")["layers"][0]) == "lingering"
    assert layer_state(result("kexec-file-2")["layers"][1]) == "consumed"
