# SPDX-License-Identifier: GPL-2.0-only
"""A known gap: behaviour of QEMU, a kernel or kexec-tools known today, as data.

harness.matrix.known_gaps reads the gaps from scenarios/known-gaps.yaml; harness.matrix.classify
judges a result against them. Both use this type, which holds no file and no judgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.matrix.versions import VersionRange, component_version, in_ranges, layer_index

Values = tuple  # of True / False / None: the observed values a check may take
COMPONENTS = ("qemu", "kernel", "parent-kernel", "kexec-tools", "bootloader")
LAYER_SELECTORS = ("first",)


@dataclass(frozen=True)
class Gap:
    id: str
    component: str                                  # one of COMPONENTS
    versions: tuple[VersionRange, ...]              # any of them
    checks: tuple[tuple[str, Values], ...]          # check -> values it takes instead
    reason: str
    source: tuple[str, ...]
    loader: tuple[str, ...] = ()                    # () = any loader
    layer: str | None = None                        # "first": layer 1 only
    when: tuple[tuple[str, Values], ...] = ()       # applies only with these observations
    informational: bool = False                     # shown, never matched
    where: str = ""                                 # file:line, for messages
    # Further conditions, all of which must hold too: another component's range,
    # and the QEMU CPU model (some faults need a combination to show).
    also: tuple[tuple[str, tuple[VersionRange, ...]], ...] = ()
    cpu: tuple[str, ...] = ()
    firmware: tuple[str, ...] = ()                  # () = any; results before it are seabios
    machine: tuple[str, ...] = ()                   # () = any; the type before options ("microvm,rtc=on")
    arch: tuple[str, ...] = ("x86_64",)             # an entry without arch: is an x86 fact

    @property
    def predicts(self) -> dict[str, Values]:
        return dict(self.checks)

    @property
    def versions_text(self) -> str:
        return " or ".join(str(r) for r in self.versions)

    def applies(self, result: dict[str, Any], position: int) -> bool:
        """Does this gap hold for result["layers"][position]?"""
        if self.informational:
            return False
        layers = result.get("layers") or []
        layer = layers[position]
        if self.layer == "first" and layer_index(layer, position) != 1:
            return False
        if self.loader and layer.get("loader") not in self.loader:
            return False
        _, version = component_version(result, position, self.component)
        if not in_ranges(version, self.versions):
            return False
        for component, ranges in self.also:
            if not in_ranges(component_version(result, position, component)[1], ranges):
                return False
        if self.cpu and (result.get("qemu") or {}).get("cpu") not in self.cpu:
            return False
        if self.arch and result.get("arch", "x86_64") not in self.arch:
            return False
        if self.machine and str((result.get("qemu") or {}).get("machine", "")).split(",", 1)[0] not in self.machine:
            return False
        if self.firmware and (result.get("qemu") or {}).get("firmware", "seabios") not in self.firmware:
            return False
        return all(layer.get(name) in values for name, values in self.when)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "component": self.component, "versions": self.versions_text,
                "loader": list(self.loader), "layer": self.layer,
                "when": {k: list(v) for k, v in self.when},
                "also": {c: " or ".join(str(r) for r in rs) for c, rs in self.also},
                "cpu": list(self.cpu), "machine": list(self.machine), "arch": list(self.arch),
                "checks": {k: list(v) for k, v in self.checks},
                "reason": self.reason, "source": list(self.source),
                "informational": self.informational, "where": self.where}
