# SPDX-License-Identifier: GPL-2.0-only
"""A content-addressed cache of built things (downloaded packages, kernels, trees).

An entry is a directory `root/KIND/HASH`, where HASH comes from the key parts that
describe how it was made. It appears atomically (built in a temp dir, then renamed)
and carries a manifest of its files, so a half-written entry is never used: it is
removed and rebuilt. Builders of the same entry in several processes (pytest-xdist
workers) serialise on a lock file, so the work is done once. A builder holds that lock
for as long as its temporary folder exists, so `sweep()` tells the folder of a killed
builder (lock free) from a live one's (lock held) and removes only the former.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.errors import ImageError

MANIFEST = ".seedchain-manifest.json"
_HASH_LEN = 24
# errno values that mean "this cache directory cannot be written to".
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def default_root() -> Path:
    """$SEEDCHAIN_CACHE, else $XDG_CACHE_HOME/seedchain, else ~/.cache/seedchain."""
    if os.environ.get("SEEDCHAIN_CACHE"):
        return Path(os.environ["SEEDCHAIN_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "seedchain"
    return Path.home() / ".cache" / "seedchain"


def key_parts(key: str | bytes | Iterable[str | bytes]) -> list[bytes]:
    if isinstance(key, (str, bytes)):
        key = [key]
    return [p.encode() if isinstance(p, str) else bytes(p) for p in key]


def key_hash(key: str | bytes | Iterable[str | bytes]) -> str:
    h = hashlib.sha256()
    for part in key_parts(key):
        # Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:_HASH_LEN]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _unwritable(directory: Path, err: OSError) -> ImageError:
    where = os.fsdecode(err.filename) if err.filename else str(directory)
    return ImageError(
        f"cannot write to the cache directory {where}: {err.strerror or err}",
        where="cache",
        hint="set SEEDCHAIN_CACHE to a writable directory with free space",
    )


class Cache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, kind: str, key: str | bytes | Iterable[str | bytes]) -> Path:
        """Where the entry for this key lives (whether built or not)."""
        return self.root / kind / key_hash(key)

    def build(self, kind: str, key: str | bytes | Iterable[str | bytes],
              builder: Callable[[Path], object]) -> Path:
        """Return the complete entry for `key`, calling `builder(dir)` to make it if needed."""
        parts = key_parts(key)
        entry = self.path(kind, parts)
        if self.verify(entry):  # the fast path: stat() only, no lock
            return entry
        kind_dir = entry.parent
        tmp: Path | None = None
        in_builder = False
        try:
            with self._locked(kind_dir, entry.name):
                if self.verify(entry):  # another process built it while we waited
                    return entry
                self._discard(kind_dir, entry)
                tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=kind_dir))
                tmp.chmod(0o755)  # mkdtemp's 0700 would hide entries from other users
                try:
                    in_builder = True
                    builder(tmp)
                    in_builder = False
                    _write_manifest(tmp, parts)
                    os.rename(tmp, entry)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
        except OSError as err:
            # A builder's own OSError (say, a missing input) passes through; not
            # being able to write to the cache becomes one clear ImageError.
            if err.errno in _UNWRITABLE and (not in_builder or _inside(err, tmp)):
                raise _unwritable(kind_dir, err) from err
            raise
        return entry

    def verify(self, path: Path, full: bool = False) -> bool:
        """True if the entry exists and matches its manifest (sizes; also hashes if full)."""
        try:
            with open(path / MANIFEST) as f:
                files = json.load(f)["files"]
            for rel, (size, digest) in files.items():
                p = path / rel
                if p.stat().st_size != size:
                    return False
                if full and sha256_file(p) != digest:
                    return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return True

    @contextmanager
    def _locked(self, kind_dir: Path, name: str) -> Iterator[None]:
        kind_dir.mkdir(parents=True, exist_ok=True)
        with open(kind_dir / f"{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def sweep(self) -> list[Path]:
        """Remove the temporary folders builders killed mid-build left (SIGKILL runs no
        clean-up), whatever entry they were for; the folders of live builders stay. Best
        effort: what cannot be read, locked or removed is left as it is."""
        removed: list[Path] = []
        try:
            kind_dirs = [d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        except OSError:
            return removed
        for kind_dir in kind_dirs:
            for tmp in sorted(kind_dir.glob(".*.tmp-*")):
                entry = tmp.name[1:].split(".tmp-", 1)[0]
                with _unless_locked([kind_dir / f"{entry}.lock"]) as free:
                    if free and tmp.is_dir():
                        shutil.rmtree(tmp, ignore_errors=True)
                        removed.append(tmp)
        # Work folders of userland builds from before they were made inside their entry:
        # stale once no userland build is under way.
        old = sorted(self.root.glob(".userland-*"))
        if old:
            with _unless_locked(list((self.root / "userland").glob("*.lock"))) as free:
                for tmp in old if free else ():
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(tmp)
        return removed

    @staticmethod
    def _discard(kind_dir: Path, entry: Path) -> None:
        """Remove a broken entry and temp dirs left by killed builders (we hold the lock)."""
        for leftover in kind_dir.glob(f".{entry.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if entry.exists() or entry.is_symlink():
            # Rename first so a reader never sees a half-deleted tree as an entry.
            doomed = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=kind_dir))
            os.rename(entry, doomed / "old")
            shutil.rmtree(doomed, ignore_errors=True)


@contextmanager
def _unless_locked(locks: list[Path]) -> Iterator[bool]:
    """True (holding them) when none of these lock files is held by anyone, else False."""
    with ExitStack() as stack:
        try:
            for path in locks:
                lock = stack.enter_context(open(path, "a"))
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)    # released when closed
        except OSError:
            free = False
        else:
            free = True
        yield free


def _inside(err: OSError, tmp: Path | None) -> bool:
    """Is this error about the entry being written (or about no file in particular)?"""
    if tmp is None or err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) or not err.filename:
        return True
    return Path(os.fsdecode(err.filename)).absolute().is_relative_to(tmp.absolute())


def _write_manifest(tmp: Path, parts: list[bytes]) -> None:
    files: dict[str, list] = {}
    for dirpath, _dirs, names in os.walk(tmp):
        for name in names:
            p = Path(dirpath, name)
            if p.is_symlink() and not p.exists():
                continue  # a dangling link (e.g. modules' build/) has nothing to check
            files[str(p.relative_to(tmp))] = [p.stat().st_size, sha256_file(p)]
    manifest = {
        "key": [p.decode(errors="backslashreplace") for p in parts],
        "files": files,
    }
    with open(tmp / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=0, sort_keys=True)
