# SPDX-License-Identifier: GPL-2.0-only
"""Opening files a user (or a scenario, a matrix file, a result folder) names.

Such a path may be anything: a FIFO or a terminal, whose open() or read() waits forever;
a folder; a sparse file of 40 GiB, read whole into memory. `open_regular` opens without
waiting (O_NONBLOCK: a FIFO with no writer opens at once) and refuses at once, with a
message, what is not a regular file or is larger than its caller allows; `read_bytes`
reads such a file whole, its size bounded first.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from harness.errors import SeedchainError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind(mode: int, folder: str = "a folder") -> str:
    """What a file that is not a regular one is, in words (a folder as `folder` says)."""
    if stat.S_ISDIR(mode):
        return folder
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike, *, what: str = "file", max_bytes: int | None = None,
                 error: type[SeedchainError] = SeedchainError, where: str | None = None,
                 hint: str | None = None, expected: str = "a regular file") -> BinaryIO:
    """`path` opened for reading, binary; an `error` when it is missing, unreadable, not a
    regular file (said at once: nothing waits; "is a FIFO (named pipe), not `expected`"), or
    larger than `max_bytes`."""
    where = str(path) if where is None else where
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist", where=where, hint=hint) from None
    except (OSError, ValueError) as err:     # ValueError: a NUL in the path
        raise error(f"cannot read {what} {path}: {getattr(err, 'strerror', None) or err}",
                    where=where, hint=hint) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is {kind(info.st_mode, 'a directory')}, not {expected}", where=where,
                        hint=hint or "give a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise error(f"{what} {path} is {_size(info.st_size)}, larger than any such file "
                        f"(at most {_size(max_bytes)})", where=where, hint=hint or "is this the right file?")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_plain(path: str | os.PathLike, error: type[SeedchainError], where: str) -> BinaryIO:
    """`path` opened for reading, binary, when it is a regular file; an `error` saying what
    it is otherwise ("is a FIFO (named pipe), not a file"). OSError from open() passes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"is {kind(mode)}, not a file", where=where, hint="give the file itself")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | os.PathLike, max_bytes: int, **kwargs) -> bytes:
    """A regular file's bytes, refused (open_regular's `error`) above max_bytes before any
    is read; a file that grew meanwhile is read only as far as max_bytes + 1 and refused."""
    with open_regular(path, max_bytes=max_bytes, **kwargs) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        error = kwargs.get("error", SeedchainError)
        raise error(f"{kwargs.get('what', 'file')} {path} grew larger than {_size(max_bytes)} while it was read",
                    where=kwargs.get("where") or str(path), hint=kwargs.get("hint"))
    return data


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def depth(data: object) -> int:
    """How deeply JSON-like data nests (a scalar: 0), counted without recursion, so data
    nested thousands deep is measured rather than crashing whatever walks it next."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, level = todo.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in children)
    return deepest


def executable_kind(path: str | os.PathLike, **kwargs) -> str:
    """'an ELF binary' or 'a script' (#!), from a regular file's first bytes, without running
    it; open_regular's `error` for anything else."""
    with open_regular(path, what="program", **kwargs) as f:
        head = f.read(4)
    if head == b"\x7fELF":
        return "an ELF binary"
    if head[:2] == b"#!":
        return "a script"
    error = kwargs.get("error", SeedchainError)
    raise error(f"{path} is neither an ELF binary nor a script", where=kwargs.get("where") or str(path),
                hint=kwargs.get("hint"))
