# SPDX-License-Identifier: GPL-2.0-only
"""The checks in device-tree terms (arm64): the seed is /chosen/rng-seed of the DTB a
kernel is handed, not a setup_data entry. harness/checks/rules.py calls these for a
layer whose facts say it is not x86_64; the names and meanings are the same.

- received: the DTB caught at the kernel's entry (x0) had a non-empty rng-seed; without
  a stop there, what the guest still shows (a kernel removes the property on receipt,
  so an unseen seed is "cannot tell", None), or an EFI seed table.
- zeroed: the property is gone from /proc/device-tree, from the FDT the kernel keeps
  (/sys/firmware/fdt) and from the DTB in RAM, the seed's bytes too, and kaslr-seed reads zero.
- exposed: seed bytes readable by any user: rng-seed or a non-zero kaslr-seed in
  /proc/device-tree/chosen (both files are mode 0444).
"""

from __future__ import annotations

from harness.checks import efi as efi_table
from harness.facts import dtb
from harness.facts.layer import LayerFacts

DTB = "dtb"                 # /chosen/rng-seed in the DTB the kernel was handed
EFI = "efi"


def views(f: LayerFacts) -> dtb.Views:
    return dtb.views(f.field)


def received_via(f: LayerFacts, prev: LayerFacts | None = None) -> list[str]:
    via = []
    caught = f.seed_in_flight
    seen = views(f) if f.booted else None
    if (caught is not None and caught.caught and caught.len > 0) or \
            (seen is not None and (seen.proc_rng_seed or (seen.fdt is not None and seen.fdt.rng_seed))):
        via.append(DTB)
    if efi_table.counts_as_received(f, prev):      # under UEFI: the stub's, or its parent's refreshed
        via.append(EFI)
    return via


def received(f: LayerFacts, prev: LayerFacts | None = None) -> bool | None:
    if not f.booted:
        return None
    via = received_via(f, prev)
    if via:
        return True
    caught = f.seed_in_flight
    if caught is not None and caught.stopped:
        return False         # the DTB at the entry had no rng-seed
    return None              # removed on receipt, and the hand-over was not seen


def _kaslr_zero(seed: bytes | None) -> bool:
    return seed is None or not any(seed)


def zeroed_findings(f: LayerFacts) -> list[str]:
    """What of the seed the guest still shows: in /proc/device-tree, in /sys/firmware/fdt."""
    seen = views(f)
    findings = []
    if seen.proc_rng_seed is not None:
        findings.append(f"/proc/device-tree/chosen/rng-seed is still there ({len(seen.proc_rng_seed)} bytes)")
    if not _kaslr_zero(seen.proc_kaslr_seed):
        findings.append("/proc/device-tree/chosen/kaslr-seed is not zero")
    if seen.fdt is None:
        findings.append(f"/sys/firmware/fdt could not be judged: {seen.fdt_error}")
    else:
        if seen.fdt.rng_seed is not None:
            findings.append("/sys/firmware/fdt still has a /chosen/rng-seed property")
        if not _kaslr_zero(seen.fdt.kaslr_seed):
            findings.append("/sys/firmware/fdt's kaslr-seed is not zero")
    caught = f.seed_in_flight
    if caught is not None and caught.caught and caught.data and caught.data in seen.fdt_bytes:
        findings.append("the seed's bytes are still in /sys/firmware/fdt")
    return findings


def zeroed_sysfs(f: LayerFacts, prev: LayerFacts | None = None) -> bool | None:
    if not received(f, prev) or DTB not in received_via(f, prev):
        return None
    return not zeroed_findings(f)


def zeroed_ram(f: LayerFacts, prev: LayerFacts | None = None) -> bool | None:
    """The DTB handed over, read again from RAM after the report: no rng-seed property,
    none of the seed's bytes, kaslr-seed zero; and an EFI seed table it received (under
    UEFI) with its bits all zero (None: nothing received, or none of it read)."""
    if not received(f, prev):
        return None
    via, verdicts = received_via(f, prev), []
    after = f.dtb_after
    if DTB in via and after is not None and not after.error:
        verdicts.append(not after.rng_seed and not after.seed_bytes and _kaslr_zero(
            bytes.fromhex(after.kaslr_seed) if after.kaslr_seed else None))
    efi = f.efi_seed_ram
    if EFI in via and efi is not None:
        verdicts.append(efi.size > 0 and not any(efi.data))
    return all(verdicts) if verdicts else None


def exposed(f: LayerFacts) -> bool | None:
    if not f.booted:
        return None
    seen = views(f)
    return bool(seen.proc_rng_seed and any(seen.proc_rng_seed)) or not _kaslr_zero(seen.proc_kaslr_seed)


def cpu_rng(f: LayerFacts) -> str | None:
    """The CPU's own RNG as the kernel trusts it at boot: FEAT_RNG (the "rng" feature,
    RNDR/RNDRRS) unless random.trust_cpu=off."""
    if " rng " in f" {f.field('cpu_flags')} " and "random.trust_cpu=off" not in f.field("cmdline").split():
        return "FEAT_RNG (trusted CPU)"
    return None
