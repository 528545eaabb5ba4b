# SPDX-License-Identifier: GPL-2.0-only
"""What every architecture module does the same way, with its own names filled in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from collections.abc import Callable
from typing import BinaryIO

from harness import files
from harness.errors import ImageError, QemuError

# The largest kernel file read: Debian's amd64 bzImage is 8 to 15 MiB, its arm64 Image 38 MiB,
# one padded by pad_kernel at most 256 MiB; a larger file (a disk image, a 40 GiB sparse file
# named by mistake or on purpose) is refused by its size before a byte is read.
MAX_KERNEL_BYTES = 512 << 20


def open_kernel(path: Path, image: str, hint: str) -> BinaryIO:
    """A kernel file opened for reading: an ImageError at once for a missing or unreadable
    file, a folder, a FIFO or device (nothing waits for a writer), or one over MAX_KERNEL_BYTES."""
    return files.open_regular(path, what="kernel file", max_bytes=MAX_KERNEL_BYTES, error=ImageError,
                              hint=f"give {image} file itself" + (f" ({hint})" if hint else ""),
                              expected=image)


def read_kernel_bytes(path: Path) -> bytes:
    """A kernel file whole (bounded as open_kernel bounds it)."""
    return files.read_bytes(path, MAX_KERNEL_BYTES, what="kernel file", error=ImageError)

Read = Callable[[int, int], bytes]      # (guest-physical address, size) -> bytes


def find_qemu(build: str, binary: str, package: str) -> str:
    """The QEMU binary to run: "system" means `binary` on PATH; else a path, or a name
    found on PATH as a shell would."""
    if build == "system":
        found = shutil.which(binary)
        if not found:
            raise QemuError(f"{binary} is not installed", where="qemu.build: system",
                            hint=f"apt-get install {package}, or give a binary with --qemu PATH")
        return found
    path = Path(build)
    on_path = shutil.which(build) if "/" not in build and not path.is_file() else None
    if on_path:
        return on_path
    if not path.is_file() or not os.access(path, os.X_OK):
        raise QemuError(f"{build} is not an executable file" + ("" if "/" in build else " nor a program on PATH"),
                        where="qemu.build", hint=f"give the path of a built {binary}")
    return str(path.resolve())


EFI_SEED_HEADER_SIZE = 4    # struct linux_efi_random_seed { u32 size; u8 bits[size]; }
EFI_SEED_MAX = 1024         # the kernel uses at most this many bytes of bits (SZ_1K)


def read_efi_seed(read: Read, address: int) -> tuple[int, bytes]:
    """The EFI RNG seed table (LINUX_EFI_RANDOM_SEED_TABLE), laid out alike on every
    architecture the EFI stub serves: (its size field, bits[0 .. min(size, EFI_SEED_MAX)])."""
    size = int.from_bytes(read(address, EFI_SEED_HEADER_SIZE), "little")
    count = min(size, EFI_SEED_MAX)
    return size, read(address + EFI_SEED_HEADER_SIZE, count) if count else b""


def pflash(code: Path, template: Path, workdir: Path, copy_name: str, where: str, package: str) -> list[str]:
    """-drive options for UEFI firmware in flash: the code read-only, and a fresh copy of
    the variable store in the run's folder (the firmware writes to it; the package's
    stays clean)."""
    missing = [str(f) for f in (code, template) if not f.is_file()]
    if missing:
        raise QemuError(f"UEFI firmware not found: {', '.join(missing)}", where=where,
                        hint=f"apt-get install {package}")
    workdir.mkdir(parents=True, exist_ok=True)
    vars_copy = workdir / copy_name
    shutil.copyfile(template, vars_copy)
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
