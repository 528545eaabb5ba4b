# SPDX-License-Identifier: GPL-2.0-only
"""A kexec'd child's EFI seed table, judged by what it held at the child's entry: the
recorded systemd-boot runs (the parent refreshed it), and the same facts with the bytes
at the entry changed to zero, to the parent's, or left unread."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.checks import efi, rules
from harness.checks.verdict import judge
from harness.scenario.load import load_scenario
from recorded import facts

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def _at_entry(child, size=None, data=None, read=True):
    """The child with other bytes found at its entry (or none read there)."""
    changed = dataclasses.replace(child)
    caught = child.seed_in_flight
    changed.seed_in_flight = dataclasses.replace(
        caught, efi_address=caught.efi_address if read else None,
        efi_size=caught.efi_size if size is None else size,
        efi_data=caught.efi_data if data is None else data)
    return changed


def test_the_child_finds_its_parents_table_refreshed_before_the_kexec():
    parent, child = facts("sdboot-child-without-setup-data")
    # No setup_data seed (kexec-tools 2.0.20), only a SETUP_EFI entry: kexec handed on the EFI tables.
    assert child.ram_seeds == [] and [e.type for e in child.ram_entries] == [4]
    assert child.efi_rng_address == parent.efi_rng_address
    assert efi.inherited_from(child, parent)
    size, bits = efi.at_entry(child)
    # Zero in the parent after it booted, 32 other non-zero bytes at the child's entry ...
    assert (parent.efi_seed_ram.size, parent.efi_seed_ram.data) == (0x20, bytes(32))
    assert size == 0x20 and len(bits) == 32 and any(bits)
    # ... and zero again once the child consumed them.
    assert child.efi_seed_ram.data == bytes(32)
    assert efi.inherited_state(child, parent) == efi.FRESH
    assert rules.received_via(child, parent) == ["efi"]
    assert rules.fresh(child, prev=parent) is True and rules.fresh_findings(child, parent) == []
    assert rules.credited(child, prev=parent) is True
    assert rules.credited_without_seed(child, parent) is None
    assert rules.passed_on(parent, child) is True


def test_with_virtio_rng_the_refresh_shrinks_the_merged_table():
    parent, child = facts("sdboot-seed-file-virtio-rng")
    assert parent.efi_seed_ram.size == 0x40            # the EFI stub's 32 bytes and systemd-boot's 32
    size, bits = efi.at_entry(child)
    assert size == 0x20 and any(bits)                  # min(size, EFI_RANDOM_SEED_SIZE) fresh bytes
    assert efi.inherited_state(child, parent) == efi.FRESH
    assert bits != child.seed_in_flight.data            # not the setup_data seed kexec_file_load made
    assert rules.received_via(child, parent) == ["setup_data", "efi"]
    assert rules.credit_attributable_to(child, parent) == ["setup_data"]   # logged before the efi: line


def test_a_zeroed_inherited_table_alone_is_neither_received_nor_fresh():
    parent, child = facts("sdboot-child-without-setup-data")
    stale = _at_entry(child, data=bytes(32))
    assert efi.inherited_state(stale, parent) == efi.STALE
    assert rules.received(stale, prev=parent) is False and rules.received_via(stale, parent) == []
    assert rules.fresh(stale, prev=parent) is False
    (finding,) = rules.fresh_findings(stale, parent)
    assert "layer 1's, zero at this layer's entry" in finding
    assert rules.zeroed_ram(stale, prev=parent) is None
    assert rules.credited(stale, prev=parent) is False
    # The recorded kernel declared its RNG ready right after the efi: line: on zero bytes
    # that would be a credit without a seed, which the result names.
    assert rules.credited_without_seed(stale, parent) is True
    assert rules.passed_on(parent, stale) is False
    # A size field of 0 is no seed either.
    assert efi.inherited_state(_at_entry(child, size=0, data=b""), parent) == efi.STALE


def test_a_crash_kernel_finds_the_table_not_refreshed():
    parent, crash = facts("ovmf-crash-kernel")
    assert crash.loader == "kexec_crash" and efi.inherited_from(crash, parent)
    # A panic runs no reboot notifiers: the table is as layer 1 left it, zero, size kept.
    assert efi.at_entry(crash) == (0x20, bytes(32)) == (parent.efi_seed_ram.size, parent.efi_seed_ram.data)
    assert efi.inherited_state(crash, parent) == efi.STALE
    assert rules.received_via(crash, parent) == ["setup_data"]
    assert rules.fresh(crash, prev=parent) is True and rules.fresh_findings(crash, parent) == []
    # Credited before the efi: line, by the setup_data seed made at load time.
    assert rules.credit_attributable_to(crash, parent) == ["setup_data"]
    assert rules.credited(crash, prev=parent) is True
    assert rules.credited_without_seed(crash, parent) is None
    assert "zero at this layer's entry" in rules.efi_seed_source(crash, parent)["source"]


def test_a_stale_table_beside_a_setup_data_seed_does_not_spoil_it():
    parent, child = facts("sdboot-seed-file-virtio-rng")
    stale = _at_entry(child, data=bytes(32))
    assert rules.received_via(stale, parent) == ["setup_data"]
    assert rules.fresh(stale, prev=parent) is True and rules.fresh_findings(stale, parent) == []
    assert rules.credit_attributable_to(stale, parent) == ["setup_data"]
    assert "EFI RNG table" in rules.other_entropy_sources(stale)


def test_the_parents_bytes_handed_on_are_received_but_not_fresh():
    parent, child = facts("sdboot-child-without-setup-data")
    kept = dataclasses.replace(parent, efi_seed_ram=dataclasses.replace(
        parent.efi_seed_ram, data=bytes(range(1, 33))))    # a parent kernel that did not zero them
    replayed = _at_entry(child, data=bytes(range(1, 33)))
    assert efi.inherited_state(replayed, kept) == efi.REPLAYED
    assert rules.received(replayed, prev=kept) is True
    assert rules.fresh(replayed, prev=kept) is False
    assert "held layer 1's bytes" in rules.fresh_findings(replayed, kept)[0]


def test_a_table_not_read_at_the_entry_is_not_counted():
    parent, child = facts("sdboot-child-without-setup-data")
    unread = _at_entry(child, read=False)
    assert efi.inherited_state(unread, parent) == efi.UNREAD
    assert rules.received(unread, prev=parent) is False and rules.fresh(unread, prev=parent) is None
    source = rules.efi_seed_source(unread, parent)["source"]
    assert "cannot be told apart" in source
    # Layer 1's own table is no inherited one, whatever the checks are given.
    assert efi.inherited_state(parent, None) is None and rules.received(parent) is True


@pytest.mark.parametrize("name", ["sdboot-child-without-setup-data", "sdboot-seed-file", "sdboot-seed-file-virtio-rng"])
def test_the_result_says_what_the_child_found(name):
    parent, child = facts(name)
    run = judge(load_scenario(SCENARIOS / f"{name}.yaml"), [parent, child])
    layer = run.to_json()["layers"][1]
    inherited = layer["efi_inherited"]
    assert inherited["from_layer"] == 1 and inherited["state"] == "fresh"
    assert inherited["address"] == f"{parent.efi_rng_address:#x}"
    assert inherited["at_entry"] == {"size": "0x20", "sha256": child.seed_in_flight.efi_sha256, "zero": False}
    assert inherited["credited_without_seed"] is None
    assert "refreshed before the hand-over" in layer["efi_seed_source"]["source"]
    assert layer["seed_in_flight"]["efi_bytes"] == child.seed_in_flight.efi_data.hex()
    assert run.to_json()["layers"][0]["efi_inherited"] is None and run.passed


def test_a_stale_table_fails_the_scenario_with_the_reason():
    parent, child = facts("sdboot-child-without-setup-data")
    run = judge(load_scenario(SCENARIOS / "sdboot-child-without-setup-data.yaml"),
                [parent, _at_entry(child, data=bytes(32))])
    layer = run.to_json()["layers"][1]
    assert layer["efi_inherited"]["state"] == "stale" and layer["efi_inherited"]["credited_without_seed"] is True
    assert not run.passed
    text = "\n".join(run.failures())
    assert "received expected yes observed no" in text and "fresh expected yes observed no" in text
    assert "zero at this layer's entry" in text
