# SPDX-License-Identifier: GPL-2.0-only
"""A scenario's run folder, ARTIFACTS/<slug>: made by seedchain, marked as its own,
private to the user (0700), and held by one run at a time.

The mark (MARK, a file seedchain writes into every run folder it makes) is what allows
a later run to empty the folder: a folder without it, or a symlink in its place, is
someone else's and is refused, never removed. The lock (LOCK, a file in the folder,
held with flock for the whole run) keeps a second run of the same scenario into the
same folder out: it is refused at once, naming the run that holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from harness.errors import SeedchainError
from harness.private import FOLDER_MODE, make_folder, open_file

MARK = ".seedchain-run"
LOCK = ".seedchain-lock"
_MARK_TEXT = ("This folder was made by seedchain for the results of one scenario. The next run of\n"
              "that scenario into the same artifacts folder removes everything in it.\n")


def _refuse(outdir: Path, why: str) -> SeedchainError:
    return SeedchainError(f"{outdir} {why}; seedchain removes and writes only run folders it made itself",
                          where="--artifacts",
                          hint=f"move or remove {outdir} yourself, or give another --artifacts folder")


def _check_ours(outdir: Path) -> bool:
    """True when `outdir` is a run folder seedchain made, False when there is none;
    anything else there is refused."""
    try:
        info = os.lstat(outdir)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(outdir, "is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(outdir, "is not a folder")
    if info.st_uid != os.geteuid():
        raise _refuse(outdir, "belongs to another user")
    try:
        mark = os.lstat(outdir / MARK)
    except OSError:
        raise SeedchainError(f"{outdir} exists and has no {MARK} file: seedchain removes and writes only "
                             "run folders it made itself", where="--artifacts",
                             hint=f"move or remove {outdir} yourself (a run folder of a seedchain older than "
                                  "the mark is removed once by hand), or give another --artifacts folder") from None
    if not stat.S_ISREG(mark.st_mode):
        raise _refuse(outdir, f"has a {MARK} that is no file")
    return True


def claim(outdir: Path) -> Path:
    """The run folder, made (private, marked) if missing; refused when not seedchain's."""
    outdir = Path(outdir)
    if outdir.name in ("", ".", "..") or outdir.parent == outdir:
        raise _refuse(outdir, "cannot be a run folder")
    if outdir.parent.resolve() == Path("/"):
        raise SeedchainError(f"the artifacts folder is / itself, so the run folder would be {outdir}",
                             where="--artifacts", hint="give a folder of your own, such as ./seedchain-results")
    if _check_ours(outdir):
        os.chmod(outdir, FOLDER_MODE)         # a folder of an older run may be 0755
        return outdir
    make_folder(outdir.parent)
    try:
        os.mkdir(outdir, FOLDER_MODE)
    except FileExistsError:                   # another run made it just now: its mark follows
        deadline = time.monotonic() + 2.0
        while not os.path.lexists(outdir / MARK) and time.monotonic() < deadline:
            time.sleep(0.05)
        _check_ours(outdir)
        return outdir
    os.chmod(outdir, FOLDER_MODE)
    with os.fdopen(open_file(outdir / MARK, exclusive=True), "w") as out:
        out.write(_MARK_TEXT)
    return outdir


def empty(outdir: Path) -> None:
    """Remove everything in a run folder seedchain made, but its mark and its lock."""
    if not _check_ours(outdir):
        return
    for entry in os.scandir(outdir):
        if entry.name in (MARK, LOCK):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


@contextmanager
def locked(outdir: Path):
    """Hold the run folder (made if missing) for the whole run; a second holder is refused."""
    outdir = claim(outdir)
    try:
        fd = os.open(outdir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _refuse(outdir, f"has a lock file seedchain cannot open ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f"process {holder}" if holder.isdigit() else "a process"
            raise SeedchainError(f"another seedchain run ({who}) is running this scenario into {outdir}",
                                 where="--artifacts",
                                 hint="wait for it to end, or give this run another --artifacts folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield outdir
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)                          # closing releases the lock
