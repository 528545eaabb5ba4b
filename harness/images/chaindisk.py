# SPDX-License-Identifier: GPL-2.0-only
"""The chain disk: one read-only raw image per chain with the later layers' kernels and initramfs.

Each layer's initramfs carries only its own payload; the kernel and initramfs of the
layer after it are extents of this disk, which QEMU attaches as a read-only virtio
block device with a serial the agent looks for. Each layer's layer.conf names its
next layer's extents (offset, size, sha256); the agent copies them out and checks
them before it loads them. So what a chain builds, copies and hashes grows with its
depth, not with its square.

The extents start on 4 KiB boundaries, in the order they are added; a file added
twice (the same kernel in several layers) is stored once. The image is a cache
entry keyed by its parts' digests and order, so a warm run builds nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.images.cache import Cache

ALIGN = 4096
IMAGE_NAME = "chain.img"


@dataclass(frozen=True)
class Extent:
    offset: int
    size: int
    sha256: str

    def conf(self) -> str:
        """As layer.conf gives it to the agent: 'OFFSET SIZE SHA256'."""
        return f"{self.offset} {self.size} {self.sha256}"


@dataclass
class Layout:
    """Where each part goes; built up part by part, written once by `write`."""

    parts: list[tuple[Path, Extent]] = field(default_factory=list)
    _by_digest: dict[str, Extent] = field(default_factory=dict)
    end: int = 0

    def add(self, path: Path, digest: str) -> Extent:
        if digest in self._by_digest:
            return self._by_digest[digest]
        size = path.stat().st_size
        extent = Extent(self.end, size, digest)
        self.parts.append((path, extent))
        self._by_digest[digest] = extent
        self.end += -(-size // ALIGN) * ALIGN
        return extent

    def key(self) -> list[str]:
        return ["chain-disk/v1", *(f"{e.offset}:{e.size}:{e.sha256}" for _, e in self.parts)]

    def write(self, out: Path) -> None:
        with open(out / IMAGE_NAME, "wb") as dst:
            for path, extent in self.parts:
                dst.seek(extent.offset)
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
            dst.truncate(max(self.end, ALIGN))


def build(layout: Layout, cache: Cache) -> Path | None:
    """The chain disk for `layout` (None when it holds nothing: a one-layer chain)."""
    if not layout.parts:
        return None
    return cache.build("chain-disk", layout.key(), layout.write) / IMAGE_NAME
