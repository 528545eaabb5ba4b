"""aarch64: arm64 Image kernels, the device tree's /chosen/rng-seed, qemu-system-aarch64
`-M virt`, Debian's arm64 packages.

What the stages need to know about this architecture, and nothing else: see the
INTERFACE in harness/arch/__init__.py. The seed travels in the DTB the kernel is
handed (x0 at its entry), not in a setup_data list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

NAME = "aarch64"
DEBIAN_ARCH = "arm64"
QEMU_BINARY = "qemu-system-aarch64"
QEMU_PACKAGE = "qemu-system-arm"
FIRMWARES = ("none", "uefi")     # direct kernel boot, or qemu-efi-aarch64's AAVMF

Read = Callable[[int, int], bytes]      # (guest-physical address, size) -> bytes


# ---------------------------------------------------------------- Debian packages

# Generic arm64 kernels only, named as the amd64 ones are (see x86_64.py).
_ABI = r"(?P<abi>(?P<series>\d+\.\d+)\.\d+(?:-[0-9][^-]*|\+deb[^-]*)?)"
KERNEL_PACKAGES = (re.compile(rf"linux-image-{_ABI}-arm64-unsigned"),
                   re.compile(rf"linux-binary-{_ABI}-arm64"))
LOADER = "ld-linux-aarch64.so.1"
LIBDIR = "lib/aarch64-linux-gnu"


# ---------------------------------------------------------------- kernels


# ---------------------------------------------------------------- the machine


# ---------------------------------------------------------------- the device tree and its seed


# ---------------------------------------------------------------- catching the seed in flight
