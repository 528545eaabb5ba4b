# SPDX-License-Identifier: GPL-2.0-only
"""Compare observed checks with a scenario's expectations; build the result record.

The JSON written from RunResult.to_json() is a contract other tools read: its keys keep
their names (docs/results.md), and scenarios/result.schema.json describes every one of
them (tests/test_docs.py).
"""

from __future__ import annotations

from typing import Any

from dataclasses import dataclass, field

from harness.arch import carrier
from harness.checks import devicetree
from harness.checks import efi as efi_table
from harness.checks.rules import (SETUP_DATA, credit_attributable_to, credited_without_seed, efi_seed_source,
                                  fresh_findings, other_entropy_sources, received_via, run_checks,
                                  seed_file_findings)
from harness.facts.copies import describe
from harness.facts.layer import SETUP_RNG_SEED, Component, LayerFacts
from harness.scenario.model import CHECKS, Scenario

RESULT_FORMAT = 1


@dataclass
class LayerResult:
    facts: LayerFacts
    expect: dict[str, bool | None]
    observed: dict[str, bool | None]
    loaded_by: Component | None = None      # the parent's components, for kexec'd layers
    chain: list[LayerFacts] = field(default_factory=list)   # every layer's facts, for cross-layer views

    @property
    def mismatches(self) -> list[str]:
        return [name for name in CHECKS
                if self.expect[name] is not None and self.observed[name] != self.expect[name]]

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def outcome(self) -> dict[str, str]:
        """Per check: "pass", "fail", or "-" where nothing was expected."""
        return {name: "-" if self.expect[name] is None
                else ("pass" if self.observed[name] == self.expect[name] else "fail")
                for name in CHECKS}

    def blame(self) -> str:
        """One line naming the layer's components and versions, for failure messages."""
        f, c = self.facts, self.facts.component
        kernel = f.field("kernel_release") or c.kernel_spec
        parts = [f"layer {f.index}", f"kernel {kernel}"]
        if c.kernel_package:
            parts.append(f"({c.kernel_package} {c.kernel_version})")
        parts.append(f"started by {f.loader}")
        if f.loader.startswith("kexec") and self.loaded_by:
            # The parent's kexec-tools ran the load, not this layer's own.
            parts.append(f"with kexec-tools {self.loaded_by.kexec_tools_version or '?'} "
                         f"from {self.loaded_by.userland}")
        return " ".join(parts)

    @property
    def parent(self) -> LayerFacts | None:
        """The layer that started this one (None for layer 1)."""
        i = self.facts.index
        return self.chain[i - 2] if i > 1 and len(self.chain) >= i - 1 else None

    def seed_address(self) -> int | None:
        for entry in self.facts.ram_entries:
            if entry.type == SETUP_RNG_SEED:
                return entry.address
        return None

    def to_json(self) -> dict[str, Any]:
        data = self._to_json()
        if carrier(self.facts.arch) == "device_tree":
            data["device_tree"] = self.device_tree()
        return data

    def _to_json(self) -> dict[str, Any]:
        f, c = self.facts, self.facts.component
        seeds = [e for e in f.ram_entries if e.type == SETUP_RNG_SEED]
        address = self.seed_address()
        prev = self.parent
        via = received_via(f, prev) if f.booted else []
        efi = f.efi_seed_ram
        return {
            "index": f.index,
            "kernel": f.field("kernel_release") or None,
            "kernel_spec": c.kernel_spec,
            "kernel_package": c.kernel_package,
            "kernel_version": c.kernel_version,
            **({"kernel_note": c.kernel_note} if c.kernel_note else {}),
            "loader": f.loader,
            "userland": c.userland,
            "kexec_tools": c.kexec_tools_version,
            **{name: self.observed[name] for name in CHECKS},
            "received_via": via,
            "seed_address": None if address is None else f"{address:#x}",
            "seed_ram": [{"address": f"{e.address:#x}", "type": e.type, "len": e.len,
                          "bytes": e.data.hex()} for e in seeds],
            "seed_sysfs": [{"entry": e.number, "bytes": e.data.hex(), "mode": f"{e.mode:o}"}
                           for e in f.sysfs_seeds],
            "setup_data_head": None if f.report is None else f"{f.report.setup_data_head:#x}",
            "efi_seed_address": None if f.efi_rng_address is None else f"{f.efi_rng_address:#x}",
            "efi_seed_ram": None if efi is None else {
                "address": f"{efi.address:#x}", "size": efi.size, "bytes": efi.data.hex(),
                "zeroed": efi.size > 0 and not any(efi.data)},
            "efi_seed_source": efi_seed_source(f, prev) if f.booted else None,
            "efi_inherited": {**(efi_table.describe(f, prev) or {}),
                              "credited_without_seed": credited_without_seed(f, prev)}
                             if f.booted and efi_table.inherited_from(f, prev) else None,
            "seed_file": self.seed_file(),
            "other_entropy_sources": other_entropy_sources(f, via[0] if via else SETUP_DATA)
                                     if f.booted else [],
            "credit_attributable_to": credit_attributable_to(f, prev) if f.booted else [],
            "handed_on": None if f.loader_record is None else {
                "loader": f.loader_record.loader, "rc": f.loader_record.rc,
                "rng_ready": f.loader_record.rng_ready, "output": f.loader_record.output},
            "expect": self.expect,
            "outcome": self.outcome(),
            "passed": self.passed,
            "fault": f.fault,
            "fault_detail": f.fault_detail,
            "console_tail": f.console_tail,
            "ram_error": f.ram_error,
            "seconds": round(f.seconds, 2),
            "seed_in_flight": self.seed_in_flight(),
            "ram_search": None if not (f.ram_searched or f.ram_search_error) else {
                "searched": f.ram_searched, "error": f.ram_search_error,
                "seconds": round(f.ram_search_seconds, 3),
                "copies": [{"address": f"{c.address:#x}", "seed_of_layer": c.seed_layer,
                            "seed_bytes": [c.offset, c.offset + c.length], "length": c.length,
                            "what": describe(c, f, self.chain)} for c in f.ram_copies]},
        }

    def device_tree(self) -> dict[str, Any]:
        """A device-tree layer's DTB: as handed over (at the entry), as read again from RAM
        after the report, and as the guest shows it (/proc/device-tree, /sys/firmware/fdt)."""
        f = self.facts
        caught, after = f.seed_in_flight, f.dtb_after
        seen = devicetree.views(f) if f.booted else None
        return {
            "dtb_address": None if caught is None or caught.boot_params is None else f"{caught.boot_params:#x}",
            "at_entry": None if caught is None or not caught.stopped else {
                "size": caught.dtb_size, "rng_seed_len": caught.len if caught.caught else None,
                "kaslr_seed": caught.kaslr_seed},
            "in_ram_after": None if after is None else {
                "size": after.size, "rng_seed": after.rng_seed, "seed_bytes": after.seed_bytes,
                "kaslr_seed": after.kaslr_seed, "error": after.error},
            "proc_device_tree": None if seen is None else {
                "rng_seed": hexed(seen.proc_rng_seed), "kaslr_seed": hexed(seen.proc_kaslr_seed)},
            "sys_firmware_fdt": None if seen is None else {
                "size": len(seen.fdt_bytes), "error": seen.fdt_error,
                "rng_seed": None if seen.fdt is None else hexed(seen.fdt.rng_seed),
                "kaslr_seed": None if seen.fdt is None else hexed(seen.fdt.kaslr_seed)},
            "findings": devicetree.zeroed_findings(f) if f.booted else [],
        }

    def seed_file(self) -> dict[str, Any] | None:
        """The boot loader's seed file on the ESP, before and after the boot (digests only)."""
        sf = self.facts.seed_file
        if sf is None:
            return None
        return {"loader": sf.loader, "path": sf.path, "system_token": sf.system_token,
                "before": {"sha256": sf.before_sha256, "size": sf.before_size} if sf.before_sha256 else None,
                "after": {"sha256": sf.after_sha256, "size": sf.after_size, "all_zero": sf.after_zero}
                         if sf.after_sha256 else None,
                "error": sf.error, "same_as": sf.same_as, "findings": seed_file_findings(self.facts)}

    def seed_in_flight(self) -> dict[str, Any] | None:
        """The seed caught at this layer's hand-over, or why none was; None when nobody tried."""
        caught = self.facts.seed_in_flight
        if caught is None:
            return None
        def address(value: int | None) -> str | None:
            return None if value is None else f"{value:#x}"
        return {
            "caught": caught.caught, "stopped": caught.stopped, "reason": caught.reason or None,
            "stop_address": address(caught.stop_address), "stop_how": caught.stop_how,
            "boot_params": address(caught.boot_params), "setup_data_head": address(caught.setup_data_head),
            "address": address(caught.address), "len": caught.len, "entries": caught.entries,
            "bytes": caught.data.hex() if caught.caught else None, "sha256": caught.sha256 or None,
            "same_as": caught.same_as, "findings": fresh_findings(self.facts, self.parent),
            "efi_address": address(caught.efi_address),
            "efi_size": None if caught.efi_address is None else f"{caught.efi_size:#x}",
            "efi_bytes": caught.efi_data.hex() if caught.efi_read else None,
            "efi_sha256": caught.efi_sha256 or None,
            "stopped_seconds": round(caught.stopped_seconds, 3),
        }


@dataclass
class RunResult:
    scenario: Scenario
    layers: list[LayerResult]
    qemu_version: str = ""
    qemu_binary: str = ""
    accel: str = ""
    artifacts: str = ""
    seconds: float = 0.0
    error: str | None = None                       # a harness-level failure, not a verdict
    qemu_args: list[str] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)   # infrastructure steps tried again
    qemu_source: dict[str, Any] | None = None                # a source:VERSION build: what it was built from

    @property
    def passed(self) -> bool:
        return self.error is None and all(layer.passed for layer in self.layers)

    def failures(self) -> list[str]:
        """One line per failing layer: who broke, and which checks."""
        lines = []
        for layer in self.layers:
            if layer.passed:
                continue
            wrong = ", ".join(f"{name} expected {_word(layer.expect[name])} observed "
                              f"{_word(layer.observed[name])}" for name in layer.mismatches)
            lines.append(f"{layer.blame()}: {wrong}")
            if "fresh" in layer.mismatches:
                caught = layer.facts.seed_in_flight
                why = fresh_findings(layer.facts, layer.parent) or [caught.reason if caught and caught.reason
                                                      else "no seed was caught at the hand-over"]
                lines.append(f"  fresh: {'; '.join(why)}")
            if "seed_file_refreshed" in layer.mismatches:
                why = seed_file_findings(layer.facts) or ["the seed file was refreshed"]
                lines.append(f"  seed_file_refreshed: {'; '.join(why)}")
            if "lingering" in layer.mismatches:
                for c in layer.facts.ram_copies[:5]:
                    lines.append(f"  copy of layer {c.seed_layer}'s seed ({c.length} bytes) at "
                                 f"{c.address:#x}: {describe(c, layer.facts, layer.chain)}")
            if layer.facts.fault:
                lines.append(f"  fault: {layer.facts.fault}: {layer.facts.fault_detail}")
        if self.error:
            lines.append(self.error)
        return lines

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "format": RESULT_FORMAT,
            "scenario": s.name,
            "id": s.id,
            "cell": dict(s.cell_values),
            "description": s.description,
            "file": s.path,
            "arch": s.arch,
            "passed": self.passed,
            "error": self.error,
            "qemu": {"version": self.qemu_version, "binary": self.qemu_binary,
                     "machine": s.qemu.machine, "cpu": s.qemu.cpu, "memory": s.qemu.memory,
                     "rng": s.qemu.rng, "firmware": s.qemu.firmware, "accel": self.accel,
                     "args": self.qemu_args, "source": self.qemu_source},
            "bootloader": None if s.bootloader is None else {
                "name": s.bootloader.name, "suite": s.bootloader.suite,
                "seed_file": s.bootloader.seed_file, "system_token": s.bootloader.system_token},
            "artifacts": self.artifacts,
            "seconds": round(self.seconds, 2),
            "retries": self.retries,
            "layers": [layer.to_json() for layer in self.layers],
            "failures": self.failures(),
        }


def _word(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "n/a"}[value]


def hexed(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def judge(scenario: Scenario, facts: list[LayerFacts], **run_info: Any) -> RunResult:
    """Checks over the facts, set beside each layer's expectations."""
    observed = run_checks(facts)
    layers = [LayerResult(facts=f, expect=layer.expect.as_dict(), observed=obs,
                          loaded_by=facts[i - 1].component if i else None, chain=facts)
              for i, (layer, f, obs) in enumerate(zip(scenario.layers, facts, observed, strict=True))]
    return RunResult(scenario=scenario, layers=layers, **run_info)
