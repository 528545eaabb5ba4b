# SPDX-License-Identifier: GPL-2.0-only
"""A kexec'd layer's EFI seed table: one of its own, or its parent's handed on again.

kexec hands the child the EFI system table and its configuration tables (a SETUP_EFI
setup_data entry on x86), so a child of an EFI boot finds LINUX_EFI_RANDOM_SEED_TABLE
at the parent's RNG= address. The parent consumed that table when it booted (the kernel
zeroes its bits and keeps its size field); whether the child gets a seed from it depends
on what is there at the child's entry, which the hand-over stop reads (SeedInFlight's
efi_* fields). Read after the child booted, the table is zero whatever it held before.

States of an inherited table, from the bytes at the child's entry:
  fresh     non-zero and not the parent's bytes (a parent kernel refreshed it)
  replayed  the bytes the parent had (handed on as they were)
  stale     size 0 or all zero: no seed, whatever the child's kernel makes of it
  unread    not read at the entry (no stop, capture off, or an older recording):
            a refreshed table cannot be told from a stale one, so it is not counted
"""

from __future__ import annotations

from typing import Any

from harness.facts.layer import LayerFacts

FRESH, REPLAYED, STALE, UNREAD = "fresh", "replayed", "stale", "unread"
COUNTED = (FRESH, REPLAYED)          # inherited tables that count as a seed received


def inherited_from(f: LayerFacts, prev: LayerFacts | None) -> bool:
    """The layer's EFI seed table is at its parent's RNG= address: handed on by kexec."""
    return _giver(f, prev) is not None


def _giver(f: LayerFacts, prev: LayerFacts | None) -> LayerFacts | None:
    """The parent whose EFI seed table the layer found again, or None."""
    if (prev is not None and f.loader.startswith("kexec") and f.efi_rng_address is not None
            and f.efi_rng_address == prev.efi_rng_address):
        return prev
    return None


def at_entry(f: LayerFacts) -> tuple[int, bytes] | None:
    """(size, bits) of the table the layer found, read at its entry (None: not read there)."""
    caught = f.seed_in_flight
    if caught is None or not caught.efi_read or caught.efi_address != f.efi_rng_address:
        return None
    return caught.efi_size, caught.efi_data


def _parents_bits(prev: LayerFacts) -> list[bytes]:
    """The non-zero bits the parent's table held: at the parent's own entry (when it was a
    kexec'd layer too) and after it booted (a kernel that does not zero them)."""
    seen = []
    if (mine := at_entry(prev)) is not None:
        seen.append(mine[1])
    if prev.efi_seed_ram is not None:
        seen.append(prev.efi_seed_ram.data)
    return [bits for bits in seen if any(bits)]


def inherited_state(f: LayerFacts, prev: LayerFacts | None) -> str | None:
    """fresh, replayed, stale or unread (see the module's docstring); None: not inherited."""
    parent = _giver(f, prev)
    if parent is None:
        return None
    seen = at_entry(f)
    if seen is None:
        return UNREAD
    size, bits = seen
    if size == 0 or not any(bits):
        return STALE
    if any(bits == old or (len(bits) >= 16 and bits in old) for old in _parents_bits(parent)):
        return REPLAYED
    return FRESH


def counts_as_received(f: LayerFacts, prev: LayerFacts | None) -> bool:
    """The layer's EFI table is a seed it received: its own, or an inherited one that held
    non-zero bytes at its entry."""
    if f.efi_rng_address is None:
        return False
    state = inherited_state(f, prev)
    return state is None or state in COUNTED


def findings(f: LayerFacts, prev: LayerFacts | None) -> list[str]:
    """What is wrong with an inherited table as a seed: zero at the entry, or the parent's bytes."""
    state, parent, seen = inherited_state(f, prev), _giver(f, prev), at_entry(f)
    if parent is None or f.efi_rng_address is None:
        return []
    if state == STALE:
        size = f" (size field {seen[0]:#x})" if seen is not None else ""
        return [f"the EFI seed table at {f.efi_rng_address:#x} is layer {parent.index}'s, zero at this "
                f"layer's entry{size}: already consumed, not refreshed"]
    if state == REPLAYED:
        return [f"the EFI seed table at {f.efi_rng_address:#x} held layer {parent.index}'s bytes at this "
                "layer's entry: handed on as it was, not refreshed"]
    return []


def describe(f: LayerFacts, prev: LayerFacts | None) -> dict[str, Any] | None:
    """The inherited table for the result: whose, what was at the entry, and its state."""
    state, parent = inherited_state(f, prev), _giver(f, prev)
    if state is None or parent is None or f.efi_rng_address is None:
        return None
    seen = at_entry(f)
    caught = f.seed_in_flight
    return {"from_layer": parent.index, "address": f"{f.efi_rng_address:#x}", "state": state,
            "at_entry": None if seen is None or caught is None else {
                "size": f"{seen[0]:#x}", "sha256": caught.efi_sha256, "zero": not any(seen[1])}}
