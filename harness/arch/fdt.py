# SPDX-License-Identifier: GPL-2.0-only
"""The device tree's /chosen node, where an arm64 kernel finds its boot-time seed.

A loader puts the seed in `/chosen/rng-seed` of the DTB it hands the kernel (x0 at its
entry): QEMU's `-M virt` writes 32 bytes, arm64 kexec_file_load 128. The kernel mixes
it in and removes the property in place (drivers/of/fdt.c: fdt_nop_property), so the
name stays in the strings block while the property is gone: the blob is parsed here
(with libfdt's own Python binding, pylibfdt), never searched for the name. `kaslr-seed` (8 bytes) sits
beside it; arm64 zeroes it after use.

It lives beside the architectures because aarch64.py reads the DTB at each hand-over;
harness/facts/dtb.py reads the guest's own views of it. The blobs come from the guest (the agent's
copy of /sys/firmware/fdt) or from guest RAM:
untrusted, bounded, and any failure to parse is a DtbError with what was wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FDT_MAGIC = 0xD00DFEED
HEADER_SIZE = 40
MAX_DTB = 2 << 20          # QEMU's virt DTB is 1 MiB (mostly padding); kexec's are a few KiB
RNG_SEED, KASLR_SEED, FROM_KEXEC = "rng-seed", "kaslr-seed", "linux,booted-from-kexec"


class DtbError(ValueError):
    """Bytes that are not a usable flattened device tree."""


@dataclass(frozen=True)
class Chosen:
    """What /chosen says about seeds."""

    rng_seed: bytes | None          # None: no rng-seed property
    kaslr_seed: bytes | None        # None: no kaslr-seed property
    from_kexec: bool = False        # linux,booted-from-kexec: a kexec_file_load child's DTB

    @property
    def kaslr_zero(self) -> bool | None:
        return None if self.kaslr_seed is None else not any(self.kaslr_seed)


def used_size(header: bytes) -> int:
    """The bytes of a blob that hold its content (the header's totalsize counts padding:
    QEMU's is 1 MiB): the end of the structure or the strings block, whichever is later."""
    if len(header) < HEADER_SIZE:
        raise DtbError(f"{len(header)} bytes are too few for an FDT header ({HEADER_SIZE})")
    fields: tuple[int, ...] = struct.unpack(">10I", header[:HEADER_SIZE])
    magic, total, off_struct, off_strings, _, _, _, _, size_strings, size_struct = fields
    if magic != FDT_MAGIC:
        raise DtbError(f"no FDT magic (found {magic:#010x}, expected {FDT_MAGIC:#010x})")
    used = max(off_struct + size_struct, off_strings + size_strings)
    if not HEADER_SIZE <= used <= min(total, MAX_DTB):
        raise DtbError(f"its header gives {used} bytes of content in a blob of {total} "
                       f"(at most {MAX_DTB} are read)")
    return used


def total_size(header: bytes) -> int:
    """The header's totalsize, checked against MAX_DTB."""
    used_size(header)
    total: int = struct.unpack(">I", header[4:8])[0]
    return min(total, MAX_DTB)


def chosen(blob: bytes) -> Chosen:
    """/chosen's seeds in a blob (a truncated copy is fine if it holds the content)."""
    import libfdt

    size = used_size(blob[:HEADER_SIZE])
    if len(blob) < size:
        raise DtbError(f"the blob is cut short: {len(blob)} of its {size} bytes of content")
    data = bytearray(blob[:size])
    data[4:8] = struct.pack(">I", len(data))          # a copy without the padding is still whole
    try:
        tree = libfdt.Fdt(bytes(data))
        node = tree.path_offset("/chosen", libfdt.QUIET_NOTFOUND)
        if node < 0:
            return Chosen(rng_seed=None, kaslr_seed=None)

        def value(name: str) -> bytes | None:
            prop = tree.getprop(node, name, libfdt.QUIET_NOTFOUND)
            return None if isinstance(prop, int) else bytes(prop)

        return Chosen(rng_seed=value(RNG_SEED), kaslr_seed=value(KASLR_SEED),
                      from_kexec=value(FROM_KEXEC) is not None)
    except libfdt.FdtException as exc:
        raise DtbError(f"libfdt cannot read it: {exc}") from None
