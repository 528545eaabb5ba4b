# SPDX-License-Identifier: GPL-2.0-only
"""The setup_data seed carrier: how an x86 boot loader hands the kernel its seed.

The boot protocol (uapi asm/bootparam.h) links `struct setup_data { u64 next; u32 type;
u32 len; u8 data[len]; }` entries from boot_params' hdr.setup_data (offset 0x250); type 9
(SETUP_RNG_SEED, Linux 6.0 commit 68b8e9713c8e "x86/setup: Use rng seeds from
setup_data") carries 32 random bytes, which the kernel mixes in, then zeroes with the
entry's len. An architecture whose SEED_CARRIER is "setup_data" reads its seeds here.
"""

from __future__ import annotations

from collections.abc import Callable

SETUP_RNG_SEED = 9
SEED_SIZE = 32
SETUP_HEADER_SIZE = 16      # u64 next, u32 type, u32 len
MAX_SETUP_ENTRIES = 32      # a corrupt list must not loop us forever

Read = Callable[[int, int], bytes]      # (guest-physical address, size) -> bytes


def read_seed_records(read: Read, head: int) -> list[tuple[int, bytes]]:
    """Walk the setup_data list from hdr.setup_data: (address, header + payload) per entry.
    A consumed seed has len 0, so a type-9 entry's 32 seed bytes are read whatever len says."""
    records: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    address = head
    while address and address not in seen and len(records) < MAX_SETUP_ENTRIES:
        seen.add(address)
        header = read(address, SETUP_HEADER_SIZE)
        kind = int.from_bytes(header[8:12], "little")
        payload = read(address + SETUP_HEADER_SIZE, SEED_SIZE) if kind == SETUP_RNG_SEED else b""
        records.append((address, header + payload))
        address = int.from_bytes(header[0:8], "little")
    return records
