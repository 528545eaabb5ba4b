# SPDX-License-Identifier: GPL-2.0-only
"""What the runner recorded about each layer: the input of the checks.

Facts are plain data with a JSON form, so a run can be saved and the checks run
again over it later (the unit tests do exactly that with recorded runs).
"""

from __future__ import annotations

from typing import Any

import hashlib
import re
from dataclasses import asdict, dataclass, field

from harness.facts.report import GuestReport, LoaderRecord, SysfsEntry

from harness.arch import carrier
from harness.arch.common import EFI_SEED_HEADER_SIZE, EFI_SEED_MAX  # noqa: F401 (re-exported)
from harness.arch.setup_data import SEED_SIZE as SEED_SIZE
from harness.arch.setup_data import SETUP_HEADER_SIZE as SETUP_HEADER_SIZE
from harness.arch.setup_data import SETUP_RNG_SEED as SETUP_RNG_SEED
# The kernel's efi_config_parse_tables() line, e.g. "efi: ACPI=0x7f77d000 ... RNG=0x7f773018"
_EFI_RNG_ADDRESS = re.compile(r"\befi: .*\bRNG=(0x[0-9a-fA-F]+)")


@dataclass(frozen=True)
class RamEntry:
    """A setup_data entry read from guest RAM through QMP."""

    address: int
    next: int
    type: int
    len: int
    data: bytes             # the first bytes of the payload (SEED_SIZE for type 9)

    @classmethod
    def parse(cls, address: int, raw: bytes) -> RamEntry:
        return cls(address=address,
                   next=int.from_bytes(raw[0:8], "little"),
                   type=int.from_bytes(raw[8:12], "little"),
                   len=int.from_bytes(raw[12:16], "little"),
                   data=bytes(raw[16:]))


@dataclass(frozen=True)
class EfiSeedRam:
    """LINUX_EFI_RANDOM_SEED_TABLE read from guest RAM at the address dmesg's RNG= gave."""

    address: int
    size: int               # the table's size field (the kernel leaves it as it was)
    data: bytes             # bits[0 .. min(size, EFI_SEED_MAX)]


@dataclass(frozen=True)
class DtbRam:
    """The DTB a layer was handed (device tree), read again from guest RAM after its
    report: whether /chosen/rng-seed and its bytes are still there, and kaslr-seed."""

    address: int
    size: int = 0                    # its content bytes (0: it could not be read)
    rng_seed: bool = False           # /chosen/rng-seed is still a property
    seed_bytes: bool = False         # the seed caught at the hand-over is still in the blob
    kaslr_seed: str | None = None    # hex; None: no such property
    error: str | None = None         # why it could not be read or parsed


@dataclass
class SeedInFlight:
    """The seed a layer was handed, read with the guest stopped at the hand-over (the
    kernel's entry, before it ran), or why it could not be."""

    stopped: bool = False            # the guest was stopped at the hand-over
    reason: str = ""                 # why not, when not
    stop_address: int | None = None  # the breakpoint: the receiving kernel's entry
    stop_how: str = ""               # how that address was found
    boot_params: int | None = None   # %rsi at the stop (x86), x0: the DTB's address (arm64)
    setup_data_head: int | None = None
    address: int | None = None       # the type-9 entry handed over (None: the hand-over had none)
    len: int = 0                     # its len field
    data: bytes = b""                # its 32 seed bytes
    entries: int = 0                 # type-9 entries at the hand-over
    stopped_seconds: float = 0.0     # how long the guest stood still for it
    kaslr_seed: str | None = None    # device tree: /chosen/kaslr-seed at the hand-over (hex; None: none)
    dtb_size: int = 0                # device tree: the content bytes of the DTB handed over
    # A kexec'd layer: the parent's EFI seed table (dmesg's RNG= in the parent), read at the
    # same stop. kexec hands the EFI tables on (SETUP_EFI), so the child finds that table again.
    efi_address: int | None = None   # None: not read (no parent table, or no stop)
    efi_size: int = 0                # its size field at the child's entry
    efi_data: bytes = b""            # bits[0 .. min(size, EFI_SEED_MAX)] at the child's entry
    # Filled in after the boot, from this run and the ledger of earlier runs (harness/facts/ledger.py):
    same_as: list[str] = field(default_factory=list)

    @property
    def caught(self) -> bool:
        return self.stopped and self.address is not None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.caught else ""

    @property
    def efi_read(self) -> bool:
        return self.stopped and self.efi_address is not None

    @property
    def efi_sha256(self) -> str:
        return hashlib.sha256(self.efi_data).hexdigest() if self.efi_read else ""

    def to_json(self) -> dict[str, Any]:
        data = dict(asdict(self), data=self.data.hex(), sha256=self.sha256,
                    efi_data=self.efi_data.hex(), efi_sha256=self.efi_sha256)
        if self.kaslr_seed is None and not self.dtb_size:    # x86: recordings keep their shape
            del data["kaslr_seed"], data["dtb_size"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SeedInFlight | None:
        if data is None:
            return None
        data = {k: v for k, v in data.items() if k not in ("sha256", "efi_sha256")}
        return cls(**dict(data, data=bytes.fromhex(data.get("data", "")),
                          efi_data=bytes.fromhex(data.get("efi_data", ""))))


@dataclass
class SeedFile:
    """A boot loader's seed file on the ESP, read by the host before and after the boot:
    digests and sizes only (never the bytes), like the ledger."""

    loader: str = ""                 # e.g. "systemd-boot 257.13-1~deb13u1"
    path: str = ""                   # inside the ESP, e.g. loader/random-seed
    system_token: bool = False       # LoaderSystemToken was set in the variable store
    before_sha256: str | None = None # None: no seed file was written
    before_size: int = 0
    after_sha256: str | None = None  # None: none after the boot (or it could not be read)
    after_size: int = 0
    after_zero: bool = False         # the file after the boot is all zero bytes
    error: str | None = None         # why it could not be read back
    # Filled in from the ledger of earlier runs: the runs whose seed file had the same bytes.
    same_as: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RamCopy:
    """Seed bytes found in a layer's RAM after it reported, outside the entry that held them."""

    address: int                     # guest-physical address of the first matching byte
    seed_layer: int                  # whose seed: the layer it was handed to
    offset: int                      # where in that seed the match starts
    length: int                      # matching bytes (>= 16)
    context: bytes = b""             # the 64-byte-aligned 256 bytes around it, to say what it is


@dataclass(frozen=True)
class Component:
    """Where a layer's parts came from, so a broken chain names them."""

    kernel_spec: str = ""
    kernel_package: str = ""
    kernel_version: str = ""
    userland: str = ""
    kexec_tools_version: str = ""
    kernel_note: str = ""       # why the kernel is not the newest of its series (a download fallback)


@dataclass
class LayerFacts:
    index: int
    loader: str                                  # how this layer was started
    arch: str = "x86_64"                         # x86_64: setup_data seeds; aarch64: the DTB's rng-seed
    component: Component = field(default_factory=Component)
    booted: bool = False
    fault: str | None = None                     # panic, reset, hang, bad-report, load-failed, ...
    fault_detail: str = ""
    console_tail: list[str] = field(default_factory=list)
    report: GuestReport | None = None
    ram_entries: list[RamEntry] = field(default_factory=list)
    ram_error: str | None = None                 # why RAM could not be read, if it could not
    efi_seed_ram: EfiSeedRam | None = None       # the EFI RNG seed table in RAM (when dmesg names one)
    loader_record: LoaderRecord | None = None    # how this layer loaded the next one
    seconds: float = 0.0                         # hand-over to report
    seed_in_flight: SeedInFlight | None = None   # None: nobody tried (a recording older than capture)
    handed_entry_after: RamEntry | None = None   # the entry caught in flight, read again after the report
    ram_searched: bool = False                   # RAM was searched for the chain's seeds after the report
    ram_search_error: str | None = None
    ram_copies: list[RamCopy] = field(default_factory=list)
    ram_search_seconds: float = 0.0
    seed_file: SeedFile | None = None            # layer 1 through a boot loader: its seed file on the ESP
    dtb_after: DtbRam | None = None              # device tree: the handed DTB in RAM after the report
    # Named steps, seconds from the hand-over on the host's clock: entered (the in-flight stop),
    # report-begun, reported, go (RAM read), loaded (the next layer's loader record), exec.
    steps: dict[str, float] = field(default_factory=dict)

    # Convenience views over the report -------------------------------------------------
    def field(self, name: str) -> str:
        return self.report.get(name).strip() if self.report else ""

    @property
    def sysfs_seeds(self) -> list[SysfsEntry]:
        return [e for e in self.report.sysfs_entries if e.type == SETUP_RNG_SEED] if self.report else []

    @property
    def ram_seeds(self) -> list[RamEntry]:
        return [e for e in self.ram_entries if e.type == SETUP_RNG_SEED]

    @property
    def dmesg(self) -> list[str]:
        return self.report.get("dmesg").splitlines() if self.report else []

    @property
    def efi_rng_address(self) -> int | None:
        """Where the EFI RNG seed table is, from dmesg's `efi: ... RNG=0x...` (None: no table)."""
        for line in self.dmesg:
            if m := _EFI_RNG_ADDRESS.search(line):
                return int(m[1], 16)
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["report"] = None if self.report is None else {
            "layer": self.report.layer,
            "fields": self.report.fields,
        }
        data["ram_entries"] = [dict(asdict(e), data=e.data.hex()) for e in self.ram_entries]
        if self.efi_seed_ram is not None:
            data["efi_seed_ram"] = dict(asdict(self.efi_seed_ram), data=self.efi_seed_ram.data.hex())
        data["seed_in_flight"] = None if self.seed_in_flight is None else self.seed_in_flight.to_json()
        after = self.handed_entry_after
        data["handed_entry_after"] = None if after is None else dict(asdict(after), data=after.data.hex())
        data["ram_copies"] = [dict(asdict(c), context=c.context.hex()) for c in self.ram_copies]
        if carrier(self.arch) == "setup_data":       # recordings of x86 runs keep their shape
            del data["arch"], data["dtb_after"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerFacts:
        from harness.facts.report import parse_report
        report = None
        if data.get("report"):
            report = parse_report(_render_report(data["report"]["layer"], data["report"]["fields"]))
        loader = data.get("loader_record")
        return cls(
            index=data["index"], loader=data["loader"],
            component=Component(**data.get("component", {})),
            booted=data["booted"], fault=data.get("fault"), fault_detail=data.get("fault_detail", ""),
            console_tail=list(data.get("console_tail", [])), report=report,
            ram_entries=[RamEntry(**dict(e, data=bytes.fromhex(e["data"]))) for e in data.get("ram_entries", [])],
            ram_error=data.get("ram_error"),
            efi_seed_ram=_efi_seed_ram(data.get("efi_seed_ram")),
            loader_record=LoaderRecord(**loader) if loader else None,
            seconds=data.get("seconds", 0.0),
            seed_in_flight=SeedInFlight.from_json(data.get("seed_in_flight")),
            handed_entry_after=_ram_entry(data.get("handed_entry_after")),
            ram_searched=data.get("ram_searched", False),
            ram_search_error=data.get("ram_search_error"),
            ram_copies=[RamCopy(**dict(c, context=bytes.fromhex(c["context"])))
                        for c in data.get("ram_copies", [])],
            ram_search_seconds=data.get("ram_search_seconds", 0.0),
            seed_file=SeedFile(**data["seed_file"]) if data.get("seed_file") else None,
            arch=data.get("arch", "x86_64"),
            dtb_after=DtbRam(**data["dtb_after"]) if data.get("dtb_after") else None,
            steps={str(k): float(v) for k, v in (data.get("steps") or {}).items()},
        )


def _ram_entry(data: dict[str, Any] | None) -> RamEntry | None:
    return None if data is None else RamEntry(**dict(data, data=bytes.fromhex(data["data"])))


def _efi_seed_ram(data: dict[str, Any] | None) -> EfiSeedRam | None:
    return None if data is None else EfiSeedRam(**dict(data, data=bytes.fromhex(data["data"])))


def _render_report(layer: int, fields: dict[str, str]) -> bytes:
    """The agent's wire form of a report: lets saved facts go through the real parser."""
    lines = [f"@begin {layer}"]
    for name, value in fields.items():
        lines.append(f"@field {name}")
        lines.extend("|" + line for line in value.split("\n"))
    lines.append(f"@end {layer}")
    return ("\n".join(lines) + "\n").encode()
