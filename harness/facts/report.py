# SPDX-License-Identifier: GPL-2.0-only
"""Parse what the guest agent sends on its report channel (see images/agent/agent.sh).

The guest is untrusted: its bytes are bounded, decoded leniently, matched against
a fixed grammar and never evaluated or used as a host path. Anything outside the
grammar raises ReportError, which the runner turns into a layer fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_REPORT_BYTES = 4 << 20       # a report is ~100 KiB (mostly dmesg)
MAX_FIELDS = 1024
_FIELD_NAME = re.compile(r"^(?:[a-z_]{1,32}|setup_data/[0-9]{1,3}/(?:type|data|mode))$")
_HEX = re.compile(r"^(?:[0-9a-f]{2})*$")


class ReportError(ValueError):
    """The guest sent something that is not a well-formed report."""


@dataclass(frozen=True)
class SysfsEntry:
    """One /sys/kernel/boot_params/setup_data/N directory as the guest saw it."""

    number: int
    type: int
    data: bytes
    mode: int              # permission bits of the data file

    @property
    def world_readable(self) -> bool:
        return bool(self.mode & 0o004)


@dataclass(frozen=True)
class GuestReport:
    layer: int
    fields: dict[str, str]
    sysfs_entries: tuple[SysfsEntry, ...]
    boot_params: bytes

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    @property
    def setup_data_head(self) -> int:
        """hdr.setup_data: physical address of the first setup_data entry, 0 if none."""
        if len(self.boot_params) < 0x258:
            return 0
        return int.from_bytes(self.boot_params[0x250:0x258], "little")


@dataclass(frozen=True)
class LoaderRecord:
    """What the agent said after loading the next layer."""

    loader: str
    rc: int
    rng_ready: bool
    output: str = field(default="")
    dmesg: str = field(default="")      # the kernel's kexec lines while loading (dynamic debug)
    uptime: str = field(default="")     # the guest's clock at go, images fetched, loaded: one a line


def _decode(raw: bytes) -> list[str]:
    if len(raw) > MAX_REPORT_BYTES:
        raise ReportError(f"report is {len(raw)} bytes, over the {MAX_REPORT_BYTES} limit")
    return raw.decode("utf-8", errors="replace").replace("\r", "").split("\n")


def _fields(lines: list[str]) -> dict[str, str]:
    """Collect "@field NAME" sections whose content lines start with "|"."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(lines, 1):
        if line.startswith("|"):
            if current is None:
                raise ReportError(f"line {number}: content outside a field")
            current.append(line[1:])
        elif line.startswith("@field "):
            name = line[7:]
            if not _FIELD_NAME.match(name):
                raise ReportError(f"line {number}: bad field name {name[:40]!r}")
            if name in fields:
                raise ReportError(f"line {number}: field {name} sent twice")
            if len(fields) >= MAX_FIELDS:
                raise ReportError(f"more than {MAX_FIELDS} fields")
            current = fields[name] = []
        elif line:
            raise ReportError(f"line {number}: unexpected {line[:40]!r}")
    return {name: "\n".join(content) for name, content in fields.items()}


def _hex(text: str, name: str) -> bytes:
    text = text.strip()
    if not _HEX.match(text):
        raise ReportError(f"field {name} is not hex")
    return bytes.fromhex(text)


def _int(text: str, name: str, base: int) -> int:
    try:
        return int(text.strip(), base)
    except ValueError:
        raise ReportError(f"field {name} is not a number: {text.strip()[:20]!r}") from None


def take_block(buffer: bytes, start: bytes, end: bytes) -> tuple[bytes | None, bytes]:
    """Split the first complete block, from a line starting with `start` through the
    line `end`, off the stream; (None, buffer) while it is incomplete."""
    if buffer.startswith(start):
        begin = 0
    else:
        begin = buffer.find(b"\n" + start) + 1
        if begin == 0:
            return None, buffer
    stop = buffer.find(b"\n" + end + b"\n", begin)
    if stop < 0:
        return None, buffer
    stop += len(end) + 2
    return buffer[begin:stop], buffer[stop:]


def parse_report(raw: bytes) -> GuestReport:
    """Parse one block from "@begin N" to "@end N" inclusive."""
    lines = _decode(raw)
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        raise ReportError("report is empty")
    begin = re.fullmatch(r"@begin ([0-9]{1,3})", lines[0])
    if not begin:
        raise ReportError(f"report does not start with '@begin N': {lines[0][:40]!r}")
    layer = int(begin.group(1))
    if lines[-1] != f"@end {layer}":
        raise ReportError(f"report of layer {layer} is not closed by '@end {layer}'")
    fields = _fields(lines[1:-1])
    entries = []
    numbers = sorted({int(name.split("/")[1]) for name in fields if name.startswith("setup_data/")})
    for n in numbers:
        prefix = f"setup_data/{n}/"
        if not all(prefix + part in fields for part in ("type", "data", "mode")):
            raise ReportError(f"setup_data entry {n} is incomplete")
        entries.append(SysfsEntry(
            number=n,
            type=_int(fields[prefix + "type"], prefix + "type", 0),
            data=_hex(fields[prefix + "data"], prefix + "data"),
            mode=_int(fields[prefix + "mode"], prefix + "mode", 8),
        ))
    boot_params = _hex(fields.get("boot_params", ""), "boot_params")
    return GuestReport(layer=layer, fields=fields, sysfs_entries=tuple(entries), boot_params=boot_params)


def parse_loader(raw: bytes) -> LoaderRecord:
    """Parse one block from "@loader NAME RC READY" to "@end-loader" inclusive."""
    lines = _decode(raw)
    while lines and lines[-1] == "":
        lines.pop()
    head = re.fullmatch(r"@loader ([a-z_]{1,32}) ([0-9]{1,3}) (yes|no)", lines[0] if lines else "")
    if not head:
        raise ReportError(f"bad loader record: {(lines[0] if lines else '')[:60]!r}")
    if lines[-1] != "@end-loader":
        raise ReportError("loader record is not closed by '@end-loader'")
    fields = _fields(lines[1:-1])
    return LoaderRecord(loader=head.group(1), rc=int(head.group(2)),
                        rng_ready=head.group(3) == "yes", output=fields.get("loader_output", ""),
                        dmesg=fields.get("loader_dmesg", ""), uptime=fields.get("loader_uptime", ""))
