# SPDX-License-Identifier: GPL-2.0-only
"""The guest's RAM as a host file, searched for copies of the chain's seeds.

QEMU is given its RAM as a shared memory-backend file (on tmpfs), so the host maps
guest RAM directly: no dump is written (QMP pmemsave writes 2 GiB in about 8 s here,
in 1 KiB pieces). Below 4 GiB, a file offset is the guest-physical address; the part
of RAM a machine puts above 4 GiB (q35 from 2 GiB up, pc from 3.5 GiB) is mapped at
0x100000000 onwards.

A copy is any run of MIN_RUN or more consecutive bytes of a seed. Every such run of a
32-byte seed holds its bytes 8..16 or 16..24 (a run starting at or before 8 reaches 16;
one starting later reaches 24), so two 8-byte probes per seed find every candidate
(a longer seed gets one probe per 8 bytes up to its last 16),
which is then grown to its full length. Pages the guest never touched are holes in
the file and are not read at all.

The file holds the guest's seeds, so no other local user may ever open it: seedchain
makes a 0700 folder of its own on tmpfs (marked as its own) and in it the file, 0600 and
empty (O_EXCL), before QEMU starts; QEMU opens that existing file and sizes it
(backends/hostmem-file.c, file_ram_open in QEMU's system/physmem.c). Only a folder that
carries the mark and belongs to this user is ever removed.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SeedchainError
from harness.private import FOLDER_MODE, open_file

MIN_RUN = 16
CHUNK = 16 << 20
MARGIN = 64                 # > the seed's length: a run across a chunk's edge is seen whole
CONTEXT = 256
BACKEND_ID = "seedchain-ram"
FILE = "ram"
MARK = ".seedchain-ram"


def shm_folder() -> Path:
    """Where the RAM file lives: tmpfs, so the guest's writes never reach a disk."""
    for folder in (Path("/dev/shm"), Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"))):
        if folder.is_dir() and os.access(folder, os.W_OK):
            return folder
    return Path("/tmp")


def _ours(folder: Path) -> bool:
    """A folder this user made as a RAM folder: a real folder (no symlink), owned by us,
    with the mark inside."""
    try:
        info = os.lstat(folder)
        mark = os.lstat(folder / MARK)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and stat.S_ISREG(mark.st_mode) and mark.st_uid == os.geteuid())


def remove_folder(folder: Path) -> None:
    """Remove a RAM folder seedchain made (the file and the mark); anything else is left."""
    if not _ours(folder):
        return
    for name in (FILE, MARK):
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass            # someone put more there: not ours to remove


def make_file(folder: Path) -> Path:
    """A fresh, empty RAM file only this user can open, in a fresh private `folder`
    (one a killed run left is removed first)."""
    remove_folder(folder)
    try:
        os.mkdir(folder, FOLDER_MODE)
    except FileExistsError:
        raise SeedchainError(f"{folder} exists and is not a RAM folder seedchain made for this user",
                             where="guest RAM",
                             hint="it is left alone; remove it if it is a leftover, or ask who made it") from None
    except OSError as exc:
        raise SeedchainError(f"cannot make the folder for the guest's RAM, {folder}: {exc.strerror}",
                             where="guest RAM") from None
    os.chmod(folder, FOLDER_MODE)
    os.close(open_file(folder / MARK, exclusive=True))
    os.close(open_file(folder / FILE, exclusive=True))
    return folder / FILE


def qemu_args(path: Path, memory_mib: int) -> list[str]:
    return ["-object", f"memory-backend-file,id={BACKEND_ID},size={memory_mib}M,mem-path={path},share=on",
            "-machine", f"memory-backend={BACKEND_ID}"]


def low_memory_limit(machine: str, memory_mib: int) -> int:
    """Bytes of RAM below 4 GiB, as QEMU's PC machines split it (pc_q35/pc_piix)."""
    size = memory_mib << 20
    if machine.split(",", 1)[0].startswith(("q35", "pc-q35")):
        limit = 0x80000000 if size >= 0xB0000000 else size
    elif machine.split(",", 1)[0] == "microvm":
        limit = min(size, 0xC0000000)
    else:
        limit = 0xC0000000 if size >= 0xE0000000 else size
    return min(size, limit)


@dataclass(frozen=True)
class Hit:
    address: int
    seed: int           # index in the seeds searched for
    offset: int         # where in the seed the run starts
    length: int
    context: bytes


class GuestRam:
    """The RAM file, read with pread: holes (pages the guest never touched) are skipped
    with SEEK_DATA/SEEK_HOLE, all-zero chunks with one compare."""

    def __init__(self, path: Path, machine: str, memory_mib: int, base: int = 0):
        """`base`: where RAM starts in the guest's physical map (0 on PCs, whose RAM is
        split around 4 GiB; 1 GiB on arm64's virt, one contiguous block)."""
        self.path = path
        self.base = base
        self.low = low_memory_limit(machine, memory_mib) if base == 0 else memory_mib << 20
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def physical(self, offset: int) -> int:
        if self.base:
            return self.base + offset
        return offset if offset < self.low else offset - self.low + 0x100000000

    def data_ranges(self) -> list[tuple[int, int]]:
        """The file's allocated ranges (all of it where the file system cannot tell)."""
        ranges, at = [], 0
        try:
            while at < self.size:
                start = os.lseek(self.fd, at, os.SEEK_DATA)
                end = os.lseek(self.fd, start, os.SEEK_HOLE)
                ranges.append((start, end))
                at = end
        except OSError as exc:
            if exc.errno != errno.ENXIO:     # ENXIO: no data after `at`
                return [(0, self.size)]
        return ranges

    def chunks(self):
        """(file offset, bytes) of every chunk with a non-zero byte, each read with
        MARGIN bytes of its neighbours on both sides so no run is cut in two. One
        buffer is read into again and again (a fresh 16 MiB object per chunk costs
        more in page faults than the reading), so a chunk is valid until the next."""
        buffer = bytearray(CHUNK + 2 * MARGIN)
        view = memoryview(buffer)
        zero = bytes(len(buffer))
        for start, end in self.data_ranges():
            for at in range(start, end, CHUNK):
                lo, hi = max(0, at - MARGIN), min(self.size, min(at + CHUNK, end) + MARGIN)
                got = os.preadv(self.fd, [view[:hi - lo]], lo)
                data = buffer if got == len(buffer) else bytes(view[:got])
                if data != (zero if got == len(buffer) else zero[:got]):    # memcmp, stops early
                    yield lo, data

    def find(self, seeds: list[bytes]) -> list[Hit]:
        """Every run of MIN_RUN or more bytes of a seed, each reported once."""
        hits: dict[tuple[int, int], Hit] = {}
        probes = [(number, seed, at, seed[at:at + 8]) for number, seed in enumerate(seeds)
                  if len(seed) >= 24 and any(seed) for at in _probe_offsets(len(seed))]
        for base, data in self.chunks():
            for number, seed, probe_at, probe in probes:
                at = data.find(probe)
                while at >= 0:
                    first, length = _grow(data, at, probe_at, seed)
                    if length >= MIN_RUN and (base + first, number) not in hits:
                        lo = max(0, (first - CONTEXT // 2) & ~63)
                        hits[(base + first, number)] = Hit(
                            address=self.physical(base + first), seed=number,
                            offset=probe_at - (at - first), length=length,
                            context=bytes(data[lo:lo + CONTEXT]))
                    at = data.find(probe, at + 1)
        return sorted(hits.values(), key=lambda h: (h.address, h.seed))

    def close(self) -> None:
        os.close(self.fd)


def _probe_offsets(length: int) -> range:
    """Where to probe a seed of `length` bytes: every run of MIN_RUN (16) of its bytes
    holds one of these 8-byte windows (8, 16 for a 32-byte seed; up to length - 16 for
    arm64's 128-byte kexec seed)."""
    return range(8, length - MIN_RUN + 1, 8)


def _grow(m: bytes, at: int, probe_at: int, seed: bytes) -> tuple[int, int]:
    """The maximal run of the seed around a probe match at `at`: (first byte, length)."""
    back = 0
    while probe_at - back > 0 and at - back > 0 and m[at - back - 1] == seed[probe_at - back - 1]:
        back += 1
    forward = 8
    while probe_at + forward < len(seed) and at + forward < len(m) and m[at + forward] == seed[probe_at + forward]:
        forward += 1
    return at - back, back + forward
