# SPDX-License-Identifier: GPL-2.0-only
"""A minimal writer for the "newc" cpio format the kernel unpacks as an initramfs.

Written here rather than shelling out to cpio(1) so that archives are byte-for-byte
reproducible (fixed mtimes, owners and inode numbers), which keeps cache keys honest.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterable

_MAGIC = b"070701"


@dataclass(frozen=True)
class Entry:
    path: str                  # inside the archive, without a leading "/"
    mode: int                  # full st_mode: type bits and permissions
    source: Path | None = None  # regular file contents come from here...
    data: bytes = b""          # ...or from here
    rdev: tuple[int, int] = (0, 0)  # device nodes: (major, minor)


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def file(path: str, *, source: Path | None = None, data: bytes = b"", perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, source=source, data=data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, data=target.encode())


def chardev(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def tree(root: Path, prefix: str = "") -> list[Entry]:
    """Entries for every directory, file and symlink below root (sorted, for reproducibility)."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + sorted(filenames):
            full = Path(dirpath, name)
            rel = os.path.normpath(os.path.join(prefix, rel_dir, name)).lstrip("/")
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries.append(symlink(rel, os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                entries.append(directory(rel, stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                entries.append(file(rel, source=full, perm=stat.S_IMODE(st.st_mode)))
    return entries


def _header(out: BinaryIO, ino: int, mode: int, size: int, name: bytes, rdev=(0, 0)) -> None:
    fields = (ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    out.write(_MAGIC + b"".join(b"%08X" % v for v in fields))
    out.write(name + b"\0")
    _pad(out, 110 + len(name) + 1)


def _pad(out: BinaryIO, written: int) -> None:
    out.write(b"\0" * (-written % 4))


def write(out: BinaryIO, entries: Iterable[Entry]) -> None:
    """Write entries as a newc archive, parents before children, then the trailer."""
    seen: set[str] = set()
    ino = 1
    for entry in entries:
        if entry.path in seen:
            raise ValueError(f"duplicate cpio entry {entry.path}")
        seen.add(entry.path)
        name = entry.path.encode()
        if stat.S_ISREG(entry.mode) and entry.source is not None:
            size = entry.source.stat().st_size
            _header(out, ino, entry.mode, size, name)
            with open(entry.source, "rb") as src:
                copied = 0
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    copied += len(chunk)
            if copied != size:
                raise OSError(f"{entry.source} changed size while being archived")
            _pad(out, size)
        else:
            _header(out, ino, entry.mode, len(entry.data), name, entry.rdev)
            out.write(entry.data)
            _pad(out, len(entry.data))
        ino += 1
    _header(out, ino, 0, 0, b"TRAILER!!!")
