# SPDX-License-Identifier: GPL-2.0-only
"""Kernel modules for a layer's initramfs: find them, order them, make them loadable.

Debian's module trees come without modules.dep (depmod runs at install time), so
the dependencies are read from each module's own .modinfo section ("depends=").
Modules compressed with xz (sid's .ko.xz) are decompressed here, at image build
time, since busybox's insmod may not do it. A dependency that has no .ko file in
the tree is taken to be built into the kernel (Debian builds virtio into 7.x).
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ImageError

_SUFFIXES = (".ko", ".ko.xz")


@dataclass(frozen=True)
class Module:
    name: str          # e.g. virtio_rng (the kernel's name: '-' read as '_')
    source: Path       # the .ko or .ko.xz in the tree
    data: bytes        # the uncompressed ELF object, ready for insmod
    depends: tuple[str, ...]


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def index(tree: Path) -> dict[str, Path]:
    """{module name: file} of every module under tree/kernel."""
    found: dict[str, Path] = {}
    for path in sorted((tree / "kernel").rglob("*.ko*")):
        for suffix in _SUFFIXES:
            if path.name.endswith(suffix):
                found.setdefault(_canonical(path.name[: -len(suffix)]), path)
    return found


def read_object(path: Path) -> bytes:
    """The module's ELF object, decompressed when it is .ko.xz."""
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        try:
            return lzma.decompress(raw)
        except lzma.LZMAError as exc:
            raise ImageError(f"cannot decompress {path.name}: {exc}", where=str(path),
                             hint="remove the modules cache entry and run again") from None
    return raw


def modinfo(obj: bytes, where: str = "") -> dict[str, list[str]]:
    """The key=value strings of an ELF64 module's .modinfo section."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        raise ImageError(f"{where or 'module'} is not a little-endian ELF64 object", where=where,
                         hint="only little-endian 64-bit kernel modules (x86_64, arm64) are read")
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    names_at = sections[shstrndx][4]
    info: dict[str, list[str]] = {}
    for name_off, _type, _flags, _addr, offset, size in sections:
        end = obj.index(b"\0", names_at + name_off)
        if obj[names_at + name_off:end] != b".modinfo":
            continue
        for item in obj[offset:offset + size].split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                info.setdefault(key, []).append(value)
    return info


def closure(tree: Path, names: list[str]) -> list[Module]:
    """The named modules and everything they depend on, each after its dependencies
    (the insmod order). Names with no .ko in the tree are built in and skipped, but
    a name asked for directly must be either a module or listed in modules.builtin
    when the tree has that file."""
    files = index(tree)
    builtin = _builtin(tree)
    ordered: list[Module] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = _canonical(name)
        if name in done:
            return
        if name in chain:
            raise ImageError(f"module dependency loop: {' -> '.join(chain + (name,))}",
                             where=str(tree), hint="report this, with the kernel you used")
        path = files.get(name)
        if path is None:
            if not chain and builtin is not None and name not in builtin:
                raise ImageError(f"module {name} is neither in {tree} nor built in",
                                 where=str(tree), hint="this kernel cannot drive the device")
            done.add(name)       # built into the kernel
            return
        obj = read_object(path)
        depends = tuple(d for value in modinfo(obj, str(path)).get("depends", [])
                        for d in value.split(",") if d)
        for dep in depends:
            visit(dep, chain + (name,))
        done.add(name)
        ordered.append(Module(name=name, source=path, data=obj, depends=depends))

    for name in names:
        visit(name, ())
    return ordered


def _builtin(tree: Path) -> set[str] | None:
    """Names from modules.builtin (None when the tree does not carry the file)."""
    try:
        lines = (tree / "modules.builtin").read_text().split()
    except OSError:
        return None
    return {_canonical(Path(line).name.removesuffix(".ko")) for line in lines}
