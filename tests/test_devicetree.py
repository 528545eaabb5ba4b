# SPDX-License-Identifier: GPL-2.0-only
"""The device-tree path (arm64): DTB parsing, where the hand-overs are, and the checks in
device-tree terms, over recorded real runs (tests/fixtures/runs/a64-*)."""

import dataclasses
import struct

import pytest

from harness.arch import aarch64, fdt
from harness.boot.ram import MIN_RUN, _probe_offsets
from harness.checks import devicetree, rules
from harness.facts import dtb
from harness.matrix.known_gaps import load_gaps
from recorded import facts, result
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _kept_fdt(name: str, layer: int = 0) -> bytes:
    return bytes.fromhex(facts(name)[layer].field("fdt"))


# -- parsing -----------------------------------------------------------------------------

def test_a_removed_rng_seed_leaves_its_name_but_no_property():
    """The kernel NOPs the property in place (drivers/of/fdt.c, early_init_dt_scan_chosen),
    so the name stays in the strings block; only a parser tells the property is gone."""
    blob = _kept_fdt("a64-qemu-hop")
    assert b"rng-seed" in blob
    chosen = fdt.chosen(blob)
    assert chosen.rng_seed is None
    assert chosen.kaslr_seed == bytes(8) and chosen.kaslr_zero


def test_the_seed_caught_at_the_entry_was_in_the_dtb_qemu_placed():
    caught = facts("a64-qemu-hop")[0].seed_in_flight
    assert caught.caught and caught.len == 32 and any(caught.data)
    assert caught.stop_address == 0x40200000 and "boot stub" in caught.stop_how
    assert caught.address - caught.boot_params < caught.dtb_size
    assert caught.kaslr_seed is not None and caught.kaslr_seed != "00" * 8


def test_padding_is_not_content_and_bad_blobs_are_errors():
    blob = _kept_fdt("a64-qemu-hop")
    assert fdt.used_size(blob[:fdt.HEADER_SIZE]) == len(blob)
    with pytest.raises(fdt.DtbError, match="no FDT magic"):
        fdt.chosen(b"\0" * 64)
    with pytest.raises(fdt.DtbError, match="cut short"):
        fdt.chosen(blob[:100])
    huge = bytearray(blob[:fdt.HEADER_SIZE])
    huge[36:40] = struct.pack(">I", 1 << 30)          # size_dt_struct
    with pytest.raises(fdt.DtbError, match="at most"):
        fdt.chosen(bytes(huge))
    broken = bytearray(blob)
    struct_at = struct.unpack(">I", blob[8:12])[0]
    broken[struct_at:struct_at + 4] = b"\xff" * 4     # no FDT_BEGIN_NODE where the tree starts
    with pytest.raises(fdt.DtbError, match="libfdt"):
        fdt.chosen(bytes(broken))


def test_report_views_say_why_a_copy_cannot_be_judged():
    fields = {"dt_rng_seed_present": "no", "fdt": "zz"}
    views = dtb.views(lambda name: fields.get(name, ""))
    assert views.fdt is None and "not hex" in views.fdt_error
    assert dtb.views(lambda name: "").fdt_error == "the report has no copy of /sys/firmware/fdt"


# -- where the hand-overs are ------------------------------------------------------------

def test_layer_one_entry_from_qemus_boot_stub():
    stub = bytes.fromhex("c0000058e1031faae2031faae3031faa84000058" "80001fd6") + \
        struct.pack("<QQ", 0x48200000, 0x40200000)

    def read(address, size):
        assert address == aarch64.RAM_BASE
        return stub[:size]

    entry, how = aarch64.first_entry("virt", "none", read=read)
    assert entry == 0x40200000 and "0x48200000" in how
    assert aarch64.first_entry("virt", "none", read=lambda a, s: b"\0" * s)[0] is None
    assert aarch64.first_entry("virt", "uefi", read=read)[0] is None


def test_kexec_load_entry_from_kexec_d():
    parent, child = facts("a64-debian-kexec-load")
    entry, how = aarch64.next_entry(parent.loader_record.output, parent.loader_record.dmesg)
    assert entry == child.seed_in_flight.stop_address and how.startswith("kexec -d: kernel_segment")
    assert child.seed_in_flight.stopped and not child.seed_in_flight.caught


def test_kexec_file_load_entry_from_the_kernel_log():
    entry, how = aarch64.next_entry("", "[ 9.1] kexec_image: Loaded kernel at 0x7c000000 bufsz=0x1 memsz=0x2")
    assert entry == 0x7c000000 and "kexec_image.c" in how
    assert aarch64.next_entry("", "")[0] is None


def test_probes_find_every_run_of_a_long_seed():
    for length in (32, 128):
        offsets = list(_probe_offsets(length))
        for start in range(0, length - MIN_RUN + 1):      # a run of MIN_RUN bytes from `start`
            assert any(start <= at and at + 8 <= start + MIN_RUN for at in offsets), (length, start)


# -- the checks --------------------------------------------------------------------------

def test_qemus_hop_is_received_fresh_zeroed_credited():
    layer = facts("a64-qemu-hop")[0]
    assert [rules.FUNCTIONS[c](layer, None) for c in
            ("received", "fresh", "zeroed_sysfs", "zeroed_ram", "credited", "exposed")] == \
        [True, True, True, True, True, False]
    assert rules.received_via(layer) == ["dtb"]


def test_kexec_load_child_is_not_received_and_its_parent_passed_nothing():
    parent, child = facts("a64-debian-kexec-load")
    assert rules.received(child) is False and rules.passed_on(parent, child) is False
    assert rules.credited(child) is False


def test_nokaslr_leaves_kaslr_seed_readable():
    layer = facts("a64-nokaslr")[0]
    assert rules.received(layer) and rules.credited(layer)
    assert rules.zeroed_sysfs(layer) is False and rules.zeroed_ram(layer) is False
    assert rules.exposed(layer) is True
    assert devicetree.zeroed_findings(layer) == [
        "/proc/device-tree/chosen/kaslr-seed is not zero", "/sys/firmware/fdt's kaslr-seed is not zero"]


def test_without_the_hand_over_a_removed_seed_cannot_be_told():
    layer = facts("a64-qemu-hop")[0]
    layer = dataclasses.replace(layer, seed_in_flight=None)
    assert rules.received(layer) is None


def test_a_trusted_feat_rng_makes_the_credit_unattributable():
    layer = facts("a64-qemu-hop")[0]
    fields = dict(layer.report.fields, cmdline=layer.field("cmdline").replace("random.trust_cpu=off", ""))
    trusting = dataclasses.replace(layer, report=dataclasses.replace(layer.report, fields=fields))
    assert " rng " in f" {layer.field('cpu_flags')} "
    assert rules.credited(trusting) is None


# -- known gaps by architecture ----------------------------------------------------------

def test_known_gaps_match_their_architecture_only():
    gaps = load_gaps(ROOT / "scenarios" / "known-gaps.yaml")
    run = result("a64-debian-kexec-load")
    explained = [g.id for g in gaps if g.applies(run, 1)]
    assert explained == ["kexec-tools-arm64-no-rng-seed"]
    x86 = result("kexec-load")
    assert not any(g.applies(x86, 1) for g in gaps if g.arch == ("aarch64",))
