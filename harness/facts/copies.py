# SPDX-License-Identifier: GPL-2.0-only
"""What a lingering copy of a seed sits in, from what the run knows about guest memory:
the layer's /proc/iomem (kernel code, data, the crash kernel's reservation, ...), the
hand-overs' boot_params and seed entries, the kexec segments a loader reported, and
any text around the copy.
"""

from __future__ import annotations

import re

from harness.facts.layer import SETUP_HEADER_SIZE, SETUP_RNG_SEED, LayerFacts, RamCopy

_IOMEM = re.compile(r"^(\s*)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.+)$")
# kexec -d (kexec_load): "segment[0].mem   = 0x100000" and "segment[0].memsz = 0x1000"
_SEGMENT = re.compile(r"segment\[(\d+)\]\.(mem|memsz)\s*=\s*(0x[0-9a-fA-F]+)")
_TEXT = re.compile(rb"[ -~]{6,}")
CONTEXT_BACK = 128             # harness/boot/ram.py takes the context from 128 bytes before, 64-aligned
BOOT_PARAMS_SPAN = 0x2000      # boot_params and what kexec_file_load puts after it (setup_data, cmdline)


def iomem_regions(f: LayerFacts) -> list[tuple[int, int, int, str]]:
    """(depth, start, end, name) of every /proc/iomem line the layer reported."""
    regions = []
    for line in (f.report.get("iomem") if f.report else "").splitlines():
        m = _IOMEM.match(line)
        if m:
            regions.append((len(m[1]) // 2, int(m[2], 16), int(m[3], 16), m[4].strip()))
    return regions


def region(f: LayerFacts, address: int) -> str:
    """The innermost /proc/iomem region holding the address, e.g. "Kernel data in System RAM"."""
    inside = [(depth, name) for depth, start, end, name in iomem_regions(f) if start <= address <= end]
    if not inside:
        return "no /proc/iomem region" if iomem_regions(f) else "(no /proc/iomem in the report)"
    inside.sort()
    return " in ".join(name for _, name in reversed(inside))


def segments(f: LayerFacts) -> list[tuple[int, int, int]]:
    """(number, start, end) of the kexec segments the layer's loader printed (kexec -d)."""
    found: dict[int, dict[str, int]] = {}
    for number, key, value in _SEGMENT.findall(f.loader_record.output if f.loader_record else ""):
        found.setdefault(int(number), {})[key] = int(value, 16)
    return [(n, s["mem"], s["mem"] + s["memsz"]) for n, s in sorted(found.items()) if {"mem", "memsz"} <= set(s)]


def _record_before(copy: RamCopy) -> str:
    """A whole setup_data record (next, type 9, len) in front of a copy that starts at the
    seed's first byte: the entry was copied as it was handed over, before it was consumed."""
    if copy.offset != 0 or copy.address < CONTEXT_BACK:
        return ""
    at = copy.address - ((copy.address - CONTEXT_BACK) & ~63) - SETUP_HEADER_SIZE
    header = copy.context[at:at + SETUP_HEADER_SIZE] if at >= 0 else b""
    if len(header) == SETUP_HEADER_SIZE and int.from_bytes(header[8:12], "little") == SETUP_RNG_SEED:
        return (f"a whole setup_data record (type {SETUP_RNG_SEED}, len "
                f"{int.from_bytes(header[12:16], 'little')}) in front: a copy of the entry made "
                "before the kernel consumed it")
    return ""


def describe(copy: RamCopy, f: LayerFacts, chain: list[LayerFacts]) -> str:
    """One line on what the memory around a copy suggests it is."""
    notes = [region(f, copy.address)]
    if notes[0] == "no /proc/iomem region":
        # A crash kernel knows only its own reservation; the crashed parent's memory is intact.
        for parent in reversed(chain[:f.index - 1]):
            outer = region(parent, copy.address)
            if not outer.startswith(("no ", "(")):
                notes = [f"outside this layer's memory, in layer {parent.index}'s {outer}"]
                break
    for other in chain:
        caught = other.seed_in_flight
        if caught is None or not caught.stopped:
            continue
        params = caught.boot_params
        if params is not None and params <= copy.address < params + BOOT_PARAMS_SPAN:
            notes.append(f"within the boot_params area handed to layer {other.index} "
                         f"(at {caught.boot_params:#x})")
    for parent in chain:
        for number, start, end in segments(parent):
            if start <= copy.address < end:
                notes.append(f"in kexec segment {number} ({start:#x}-{end:#x}) that layer "
                             f"{parent.index} loaded for layer {parent.index + 1}")
    record = _record_before(copy)
    if record:
        notes.append(record)
    text = [t.decode() for t in _TEXT.findall(copy.context)][:3]
    if text:
        notes.append("text nearby: " + ", ".join(repr(t[:40]) for t in text))
    return "; ".join(notes)
