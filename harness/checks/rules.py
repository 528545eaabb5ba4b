# SPDX-License-Identifier: GPL-2.0-only
"""The checks: pure functions from recorded layer facts to True, False or None.

None means "does not apply" (nothing was received, so nothing can be zeroed; other
entropy sources were on, so a credit cannot be attributed to the seed). Each
function's docstring says what it looks at, so a verdict can be traced to facts.
Each check takes the layer's facts, the next layer's (for passed_on) and the previous
layer's (a kexec'd layer's EFI seed table may be its parent's: harness/checks/efi.py).
"""

from __future__ import annotations

from typing import Any

import re

from harness.arch import carrier
from harness.checks import devicetree
from harness.checks import efi as efi_table
from harness.facts.layer import SEED_SIZE, SETUP_RNG_SEED, LayerFacts
from harness.scenario.model import CHECKS

_CRNG_DONE = re.compile(r"random: crng init done")
_RUN_INIT = re.compile(r"Run /init as init process")
_EFI_RNG_LINE = re.compile(r"\befi: .*\bRNG=0x")

# The two ways a boot-time seed reaches an x86 kernel.
SETUP_DATA = "setup_data"   # SETUP_RNG_SEED in the boot_params setup_data list
EFI = "efi"                 # LINUX_EFI_RANDOM_SEED_TABLE, installed by the EFI stub or a boot loader


def booted(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool:
    """The layer's agent ran and sent a well-formed report."""
    return f.booted


def received_via(f: LayerFacts, prev: LayerFacts | None = None) -> list[str]:
    """How seeds reached the layer: "setup_data" (a type-9 entry in sysfs or in the
    setup_data list in RAM) and/or "efi" (dmesg's `efi: ... RNG=0x...`). A kexec'd
    layer's table at its parent's address counts only when it held non-zero bytes at
    the layer's entry (harness/checks/efi.py): a consumed table handed on is no seed.
    On a device-tree layer: "dtb" (harness/checks/devicetree.py) and/or "efi"."""
    if _devicetree(f):
        return devicetree.received_via(f, prev)
    via = []
    if f.sysfs_seeds or f.ram_seeds:
        via.append(SETUP_DATA)
    if efi_table.counts_as_received(f, prev):
        via.append(EFI)
    return via


def received(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """A seed reached the layer: a SETUP_RNG_SEED (type 9) entry in sysfs or in RAM,
    or an EFI RNG seed table (dmesg's `efi: ... RNG=0x...`) that is not its parent's
    consumed one; on a device-tree layer, a /chosen/rng-seed in the DTB caught at its
    entry (see devicetree.received)."""
    if _devicetree(f):
        return devicetree.received(f, prev)
    if not f.booted:
        return None
    return bool(received_via(f, prev))


def _devicetree(f: LayerFacts) -> bool:
    return carrier(f.arch) == "device_tree"


def fresh_findings(f: LayerFacts, prev: LayerFacts | None = None) -> list[str]:
    """What is wrong with the seed caught at the layer's hand-over: all zero, the same
    bytes as another seed of this run or of an earlier run (the ledger's `same_as`), or
    not the entry the kernel listed afterwards (a disagreement between the two views);
    and an inherited EFI seed table that held the parent's bytes, or (when it was all the
    layer had) zero bytes, at the entry."""
    caught = f.seed_in_flight
    if caught is None or not caught.stopped:
        return []
    efi = efi_table.findings(f, prev)
    if efi and efi_table.inherited_state(f, prev) == efi_table.STALE and (f.sysfs_seeds or f.ram_seeds):
        efi = []    # a zero table beside a setup_data seed is not a seed handed over
    if not caught.caught:
        return efi
    findings = []
    if not any(caught.data):
        findings.append(f"all {len(caught.data)} bytes are zero")
    findings += [f"the same bytes as {other}" for other in caught.same_as]
    later = {e.address for e in f.ram_seeds}
    if f.booted and later and caught.address not in later:
        findings.append(f"caught at {caught.address:#x}, but the kernel's setup_data list later "
                        f"had its seed at {', '.join(f'{a:#x}' for a in sorted(later))}")
    if f.booted and not _devicetree(f) and not (f.sysfs_seeds or f.ram_seeds):
        after = f.handed_entry_after
        if after is not None and after.type != SETUP_RNG_SEED:
            findings.append(f"the entry handed over at {caught.address:#x} was overwritten before the "
                            f"kernel read it (it now says next {after.next:#x}, type {after.type:#x}, "
                            f"len {after.len:#x}): the kernel saw no seed")
        else:
            findings.append(f"caught at {caught.address:#x}, but the kernel showed no seed afterwards")
    return findings + efi


def fresh(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """The setup_data seed caught at the hand-over is fresh: not all zero, unlike every
    other seed of the run and this scenario's seeds in earlier runs, and the entry the
    kernel later listed; an EFI seed table inherited from the parent is judged by what it
    held at the layer's entry: zero or the parent's bytes is not fresh (None: not booted,
    or no seed was caught, see seed_in_flight)."""
    caught = f.seed_in_flight
    if not f.booted:
        return None
    if caught is None or not caught.stopped:
        return None
    if not caught.caught:
        # Stopped at the hand-over and no seed there: one found later came from elsewhere.
        if f.sysfs_seeds or f.ram_seeds:
            return False
        state = efi_table.inherited_state(f, prev)
        if state in (efi_table.FRESH, efi_table.REPLAYED, efi_table.STALE):
            return state == efi_table.FRESH
        return None
    return not fresh_findings(f, prev)


def lingering(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """A copy (16 or more consecutive bytes) of a seed caught so far in the chain is in
    the layer's RAM after it reported, outside the seed's own setup_data entry (None:
    RAM not searched)."""
    if not f.booted or not f.ram_searched:
        return None
    return bool(f.ram_copies)


def zeroed_sysfs(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """Every type-9 entry's sysfs data file is empty or all zero bytes (None: no
    setup_data seed; the EFI table has no sysfs view). Device tree: rng-seed gone from
    /proc/device-tree and /sys/firmware/fdt, kaslr-seed zero in both."""
    if _devicetree(f):
        return devicetree.zeroed_sysfs(f, prev)
    if not received(f, prev=prev) or SETUP_DATA not in received_via(f, prev):
        return None
    return all(not any(e.data) for e in f.sysfs_seeds)


def zeroed_ram(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """In guest RAM every type-9 entry has len 0 and 32 zero bytes, and the EFI seed
    table's bits are all zero when it counts as received (None: nothing received, or
    none of it read from RAM). Device tree: the DTB handed over has neither rng-seed nor
    its bytes, kaslr-seed zero."""
    if _devicetree(f):
        return devicetree.zeroed_ram(f, prev)
    if not received(f, prev=prev):
        return None
    entries = list(f.ram_seeds)
    after = f.handed_entry_after
    if after is not None and after.type == SETUP_RNG_SEED and after.address not in {e.address for e in entries}:
        entries.append(after)     # the entry caught in flight, though the kernel's list no longer leads there
    verdicts = [e.len == 0 and len(e.data) >= SEED_SIZE and not any(e.data[:SEED_SIZE])
                for e in entries]
    efi = f.efi_seed_ram
    if efi is not None and EFI in received_via(f, prev):
        verdicts.append(efi.size > 0 and not any(efi.data))
    return all(verdicts) if verdicts else None


def _hwrng_module(f: LayerFacts) -> str | None:
    """The loadable module behind the current hardware RNG, if the agent loaded it
    (it is in the report's /proc/modules list): e.g. virtio_rng for virtio_rng.0."""
    hwrng = f.field("hwrng")
    loaded = set(f.field("modules").split())
    driver = re.sub(r"[.-][0-9]+$", "", hwrng).replace("-", "_")
    return driver if driver in loaded else None


def _non_seed_sources(f: LayerFacts) -> list[tuple[str, bool]]:
    """(source, could act before /init) for the sources that are not a boot seed."""
    sources = []
    cmdline = f.field("cmdline").split()
    if _devicetree(f):
        if cpu := devicetree.cpu_rng(f):
            sources.append((cpu, True))
    elif " rdrand " in f" {f.field('cpu_flags')} " and "random.trust_cpu=off" not in cmdline:
        sources.append(("RDRAND (trusted CPU)", True))
    hwrng = f.field("hwrng")
    if hwrng and hwrng != "none":
        module = _hwrng_module(f)
        if module:
            # Only the agent loads modules, so this one came up after 'Run /init'.
            sources.append((f"hardware RNG {hwrng} (module {module}, loaded after /init)", False))
        else:
            sources.append((f"hardware RNG {hwrng}", True))
    return sources


def other_entropy_sources(f: LayerFacts, seed: str = SETUP_DATA) -> list[str]:
    """Sources besides `seed` that could initialise the RNG: a trusted RDRAND, a
    hardware RNG, and for a setup_data seed also the EFI RNG table."""
    sources = [name for name, _ in _non_seed_sources(f)]
    if seed == SETUP_DATA and f.efi_rng_address is not None:
        sources.append("EFI RNG table")
    return sources


def _first_line(f: LayerFacts, pattern: re.Pattern[str]) -> int | None:
    return next((number for number, line in enumerate(f.dmesg) if pattern.search(line)), None)


def credit_attributable_to(f: LayerFacts, prev: LayerFacts | None = None) -> list[str]:
    """The received seeds an early credit ('crng init done' before /init) could be put
    down to: a setup_data seed when EFI, RDRAND and hardware RNGs are off; an EFI seed
    when RDRAND and hardware RNGs are off. A hardware RNG whose module the agent loaded
    came up after /init, so it cannot explain an early credit.

    With both seeds (a kexec'd child of an EFI boot gets both) dmesg's order decides:
    parse_setup_data() runs before efi_init(), so a 'crng init done' logged before
    the `efi: ... RNG=` line is the setup_data seed's, and one logged after it the EFI
    seed's (the setup_data seed, when credited, would have come first). That holds for
    an EFI table that does not count as received too (its parent's, zero at the entry, or
    not read there): the kernel credits what it finds, so a credit after its efi: line
    is not put down to the setup_data seed."""
    if any(before_init for _, before_init in _non_seed_sources(f)):
        return []
    via = received_via(f, prev)
    if SETUP_DATA not in via or f.efi_rng_address is None:
        return via
    crng, efi = _first_line(f, _CRNG_DONE), _first_line(f, _EFI_RNG_LINE)
    if crng is not None and efi is not None and crng < efi:
        return [SETUP_DATA]
    return [EFI] if EFI in via else []


def _crng_before_init(f: LayerFacts) -> bool:
    crng = init = None
    for number, line in enumerate(f.dmesg):
        if crng is None and _CRNG_DONE.search(line):
            crng = number
        if init is None and _RUN_INIT.search(line):
            init = number
    return crng is not None and (init is None or crng < init)


def credited(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """A seed initialised the RNG: 'crng init done' before 'Run /init', with the
    sources other than that seed off (else None: the credit cannot be attributed).
    Nothing received is not credited, even where the kernel credited a consumed EFI
    table it was handed again (see credited_without_seed)."""
    got = received(f, prev=prev)
    if got is None:
        return None
    if not got:
        return False
    if not credit_attributable_to(f, prev):
        return None
    return _crng_before_init(f)


def credited_without_seed(f: LayerFacts, prev: LayerFacts | None = None) -> bool | None:
    """The kernel declared its RNG ready before /init from its parent's EFI seed table,
    which held zero bytes at its entry, with no other seed and no other source on (None:
    no such table, or other sources were on)."""
    if not f.booted or efi_table.inherited_state(f, prev) != efi_table.STALE:
        return None
    if received_via(f, prev) or any(before for _, before in _non_seed_sources(f)):
        return None
    return _crng_before_init(f)


def exposed(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """Seed bytes are still readable by any user in sysfs (a non-zero, world-readable data file);
    device tree: a non-empty rng-seed or a non-zero kaslr-seed in /proc/device-tree/chosen."""
    if _devicetree(f):
        return devicetree.exposed(f)
    if not f.booted:
        return None
    return any(any(e.data) and e.world_readable for e in f.sysfs_seeds)


def passed_on(f: LayerFacts, nxt: LayerFacts | None = None, prev: LayerFacts | None = None) -> bool | None:
    """The next layer received a seed (None for the last layer or when it never booted)."""
    if nxt is None or not f.booted:
        return None
    return received(nxt, prev=f)


def seed_file_findings(f: LayerFacts) -> list[str]:
    """What is wrong with the boot loader's seed file after the boot: missing, unread,
    unchanged, all zero, or the same bytes as in an earlier run (the ledger's `same_as`)."""
    sf = f.seed_file
    if sf is None or sf.before_sha256 is None:
        return []
    if sf.error:
        return [f"it could not be read back: {sf.error}"]
    findings = []
    if sf.after_sha256 is None:
        findings.append(f"{sf.path} is gone from the ESP after the boot")
    elif sf.after_sha256 == sf.before_sha256:
        findings.append(f"{sf.path} holds the same bytes after the boot as before")
    elif sf.after_zero:
        findings.append(f"{sf.path} is all zero bytes after the boot")
    findings += [f"the same bytes as {other}" for other in sf.same_as]
    return findings


def seed_file_refreshed(f: LayerFacts, nxt: LayerFacts | None = None,
                        prev: LayerFacts | None = None) -> bool | None:
    """The boot loader rewrote its seed file on the ESP: other bytes after the boot than
    the host wrote before it, not all zero, and neither seen in an earlier run (None:
    no boot loader seed file, or the layer did not boot)."""
    sf = f.seed_file
    if sf is None or sf.before_sha256 is None or not f.booted:
        return None
    return not seed_file_findings(f)


_EFI_LINE = re.compile(r"\befi: .*")
_INHERITED = {
    efi_table.FRESH: "refreshed before the hand-over: other non-zero bytes at this layer's entry",
    efi_table.REPLAYED: "not refreshed: the parent's bytes at this layer's entry",
    efi_table.STALE: "not refreshed: zero at this layer's entry",
    efi_table.UNREAD: "not read at this layer's entry, so refreshed and stale cannot be told apart",
}


def efi_seed_source(f: LayerFacts, parent: LayerFacts | None = None) -> dict[str, Any] | None:
    """Who put the EFI seed table there, as far as the facts tell: its size field (0x20:
    one source, 0x40: the EFI stub merged its EFI_RNG_PROTOCOL seed into a boot loader's),
    and where RNG= stands in dmesg's efi: line relative to INITRD= (the tables are listed
    in the order they were installed: a boot loader's comes before the EFI stub loads the
    initramfs, the stub's own after). A kexec'd layer that shows its parent's RNG= address
    was handed the parent's table again."""
    if f.efi_rng_address is None:
        return None
    line = next((m[0] for line in f.dmesg if (m := _EFI_LINE.search(line)) and "RNG=" in m[0]), "")
    rng, initrd = line.find("RNG="), line.find("INITRD=")
    position = "no INITRD=" if initrd < 0 else ("before INITRD=" if rng < initrd else "after INITRD=")
    size = f.efi_seed_ram.size if f.efi_seed_ram is not None else None
    booted_by = f.seed_file.loader if f.seed_file is not None else ""
    state = efi_table.inherited_state(f, parent)
    if parent is not None and state is not None:
        source = (f"layer {parent.index}'s table again (the same RNG= address), handed on by kexec with "
                  "the EFI configuration tables (SETUP_EFI); " + _INHERITED[state])
    elif size == 0x40:
        source = f"merged: {booted_by or 'a boot loader'}'s seed and the EFI stub's (EFI_RNG_PROTOCOL)"
    elif size == 0x20 and booted_by and position == "before INITRD=":
        source = f"{booted_by} alone (one 32-byte seed, installed before the EFI stub loaded the initramfs)"
    elif size == 0x20 and position == "after INITRD=":
        source = "the EFI stub alone (EFI_RNG_PROTOCOL, installed after it loaded the initramfs)"
    elif size == 0x20:
        source = "one 32-byte seed, not told apart by its position in the efi: line"
    else:
        source = "unknown (the table's size field was not read)" if size is None else f"unknown (size {size:#x})"
    return {"size": None if size is None else f"{size:#x}", "position": position, "source": source}


FUNCTIONS = {name: globals()[name] for name in CHECKS}


def run_checks(layers: list[LayerFacts]) -> list[dict[str, bool | None]]:
    """Every check for every layer; passed_on looks at the following layer, an inherited
    EFI seed table at the previous one."""
    results = []
    for i, f in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        prev = layers[i - 1] if i else None
        results.append({name: fn(f, nxt, prev) for name, fn in FUNCTIONS.items()})
    return results
