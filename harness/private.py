# SPDX-License-Identifier: GPL-2.0-only
"""Files and folders only the invoking user can read: what holds seeds (results, facts,
guest RAM, the ledger) is made with its mode set here, whatever the caller's umask.

A folder is 0700 and a file 0600 from the moment it exists (created with that mode,
then set again with chmod, which the umask does not touch); a file is never written
through a symlink (O_NOFOLLOW), so a link planted where a result goes cannot redirect it.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_folder(path: Path) -> Path:
    """`path` as a folder, made 0700 with any missing parents (those made too are 0700;
    a folder that existed already keeps its mode: it may be the user's own)."""
    path = Path(path)
    missing = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, FOLDER_MODE)
    return path


def open_file(path: Path, *, exclusive: bool = False, append: bool = False, follow: bool = False) -> int:
    """A descriptor for writing `path` as a 0600 file (truncated, or appended to); never
    through a symlink unless `follow` (a path the user named); with `exclusive`, only a
    file this call creates."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    flags |= os.O_EXCL if exclusive else (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file(path: Path, data: bytes | str, *, follow: bool = False) -> None:
    """Write `path` whole as a 0600 file."""
    raw = data.encode() if isinstance(data, str) else data
    with os.fdopen(open_file(path, follow=follow), "wb") as out:
        out.write(raw)


def mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o777
