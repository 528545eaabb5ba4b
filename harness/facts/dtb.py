# SPDX-License-Identifier: GPL-2.0-only
"""What a device-tree layer's report says of its DTB (the parsing is harness/arch/fdt.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.arch.fdt import Chosen, DtbError, chosen  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Views:
    """What a layer's report says of its device tree: /proc/device-tree/chosen (the
    kernel's live tree) and the agent's copy of /sys/firmware/fdt (the blob it was booted
    with, as the kernel left it)."""

    proc_rng_seed: bytes | None         # None: no /proc/device-tree/chosen/rng-seed
    proc_rng_seed_mode: int | None
    proc_kaslr_seed: bytes | None
    fdt: Chosen | None                  # None: no copy, or it did not parse (fdt_error says why)
    fdt_bytes: bytes = b""
    fdt_error: str | None = None


def _hex(text: str) -> bytes | None:
    text = text.strip()
    if not text:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def views(field: Callable[[str], str]) -> Views:
    """The device-tree fields of a report (`field(name)` gives one, "" when absent)."""
    proc_seed = _hex(field("dt_rng_seed")) if field("dt_rng_seed_present") == "yes" else None
    if field("dt_rng_seed_present") == "yes" and proc_seed is None:
        proc_seed = b""          # there, but empty
    mode = field("dt_rng_seed_mode")
    blob = _hex(field("fdt")) or b""
    chosen_, error = None, None
    if blob:
        try:
            chosen_ = chosen(blob)
        except DtbError as exc:
            error = str(exc)
    elif field("fdt").strip():
        error = "the agent's copy of /sys/firmware/fdt is not hex"
    else:
        error = "the report has no copy of /sys/firmware/fdt"
    return Views(proc_rng_seed=proc_seed, proc_rng_seed_mode=int(mode, 8) if mode.isdigit() else None,
                 proc_kaslr_seed=_hex(field("dt_kaslr_seed")), fdt=chosen_, fdt_bytes=blob, fdt_error=error)
