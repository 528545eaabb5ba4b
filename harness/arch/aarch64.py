"""aarch64: arm64 Image kernels, the device tree's /chosen/rng-seed, qemu-system-aarch64
`-M virt`, Debian's arm64 packages.

What the stages need to know about this architecture, and nothing else: see the
INTERFACE in harness/arch/__init__.py. The seed travels in the DTB the kernel is
handed (x0 at its entry), not in a setup_data list.
"""

from __future__ import annotations

import mmap
import os
import re
from pathlib import Path
from typing import Callable

from harness.arch import common
from harness.errors import ImageError

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
# The arm64 Image header (Documentation/arch/arm64/booting.rst): u32 code0, code1; u64
# text_offset, image_size, flags, res2, res3, res4; u32 magic "ARM\x64" at 0x38; u32 res5
# (the PE header's offset in an EFI-stub kernel, whose code0 is "MZ"). The Image is not
# compressed: QEMU's -kernel and both kexec loaders take it as it is. A gzip'd Image.gz
# (or an EFI zboot vmlinuz.efi) is refused rather than unpacked: kexec_file_load's
# image_probe wants the magic in the file itself, so the layer could not be kexec'd, and
# the file a user names is the one that should boot.
HEADER_SIZE = 64
MAGIC_AT, MAGIC = 0x38, b"ARM\x64"
IMAGE_SIZE_AT, FLAGS_AT = 0x10, 0x18
FLAG_BE = 1 << 0                     # flags bit 0: a big-endian kernel
_BANNER = re.compile(rb"Linux version (\d+\.\d+[^\0\n]{0,250})")
FILE_LOADERS = ("kexec_file_load", "kexec_crash")   # both load through kexec_file_load (kexec -s)


def _open_error(path: Path, err: OSError) -> ImageError:
    if isinstance(err, FileNotFoundError):
        return ImageError(f"kernel file {path} does not exist", where=str(path),
                          hint="give an existing arm64 Image or a debian:SUITE/SERIES spec")
    if isinstance(err, IsADirectoryError):
        return ImageError(f"kernel {path} is a directory, not an arm64 Image", where=str(path),
                          hint="give the kernel image file itself (e.g. arch/arm64/boot/Image)")
    return ImageError(f"cannot read kernel file {path}: {err.strerror}", where=str(path),
                      hint="check the path and its permissions")


def _header(path: Path) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            return f.read(0x400), os.fstat(f.fileno()).st_size
    except OSError as err:
        raise _open_error(path, err) from None


def read_kernel(path: Path) -> tuple[str, str]:
    """Check that path is an arm64 Image; (release, version) from its "Linux version"
    banner ('' when it has none)."""
    head, size = _header(path)
    if head[MAGIC_AT:MAGIC_AT + 4] != MAGIC:
        raise ImageError(f"{path} is not an arm64 Image: {_describe(head, size)}", where=str(path),
                         hint="give an uncompressed arm64 Image (arch/arm64/boot/Image, Debian's "
                              "/boot/vmlinuz-*-arm64), not an Image.gz, a vmlinux or an initramfs")
    try:
        text = _banner(path)
    except OSError as err:
        raise _open_error(path, err) from None
    # e.g. "6.1.0-41-arm64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, ...)
    # #1 SMP Debian 6.1.158-1 (...)": the package's version follows the build number (Debian's
    # Image has a first banner with "# SMP", no number), the compiler's comes before it.
    words = text.split()
    if not words or not re.match(r"\d+\.\d+", words[0]):
        return "", ""
    debian = re.search(r"#\d* .*\bDebian (\S+)", text)
    return words[0], debian[1] if debian else words[0]


def _banner(path: Path) -> str:
    """The text of the kernel's linux_banner: the first "Linux version " that a version
    number follows (format strings such as "Linux version %s" are passed over)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return ""
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = _BANNER.search(data)
            return found[1].decode(errors="replace") if found else ""


def kexec_problems(path: Path, loader: str) -> list[str]:
    """What in an Image's header keeps `loader` from starting it; [] when nothing does.
    kexec_file_load (arch/arm64/kernel/kexec_image.c): image_probe wants the magic (read_kernel
    checked it), image_load a non-zero image_size and the parent's endianness (Debian's arm64
    kernels are little-endian). kexec-tools' kexec_load takes an image_size of 0 (it guesses
    the old 3.16 layout). Call after read_kernel."""
    if loader not in FILE_LOADERS:
        return []
    head, _ = _header(path)
    problems = []
    if not int.from_bytes(head[IMAGE_SIZE_AT:IMAGE_SIZE_AT + 8], "little"):
        problems.append(f"its header's image_size (offset {IMAGE_SIZE_AT:#x}) is 0, as in kernels "
                        "before 3.17; kexec_file_load wants an unambiguous Image header")
    if int.from_bytes(head[FLAGS_AT:FLAGS_AT + 8], "little") & FLAG_BE:
        problems.append("it is a big-endian kernel (header flags bit 0); kexec_file_load in a "
                        "little-endian parent refuses it unless the CPU supports mixed endianness")
    return problems


def kernel_payload(path: Path) -> tuple[bytes | None, str]:
    """The kernel image itself: an arm64 Image is stored uncompressed, so the embedded
    configuration (CONFIG_IKCONFIG) sits in the file as it is."""
    try:
        return Path(path).read_bytes(), ""
    except OSError as err:
        return None, f"it cannot be read ({err.strerror})"


def _describe(head: bytes, size: int) -> str:
    """What a file that is not an arm64 Image seems to be: its kind and size, never any of
    its bytes (the path may name any file the user can read)."""
    if head[:2] == b"MZ" and head[4:8] == b"zimg":
        return (f"found an EFI zboot image, {size} bytes: a compressed kernel behind an EFI "
                "stub; build or unpack the plain Image")
    if head[0x202:0x206] == b"HdrS":
        return f"found an x86 bzImage, {size} bytes: this scenario's arch is aarch64"
    kinds = [(b"\x7fELF", "an ELF file", ": a vmlinux? QEMU -kernel and kexec want the Image"),
             (b"\x1f\x8b", "gzip data", ": an Image.gz? gunzip it; kexec_file_load takes only the Image"),
             (b"\xfd7zXZ", "xz data", ""), (b"(\xb5/\xfd", "zstd data", ""),
             (b"070701", "a cpio archive", ": an initramfs?"), (b"!<arch>", "a Debian package or ar archive", ""),
             (b"MZ", "a PE/EFI file", " without an arm64 Image header")]
    for magic, kind, note in kinds:
        if head.startswith(magic):
            return f"found {kind}, {size} bytes{note}"
    if len(head) < HEADER_SIZE:
        return f"found only {len(head)} bytes"
    return f"found a file of {size} bytes with no arm64 Image header (no 'ARM\\x64' at offset {MAGIC_AT:#x})"


def find_qemu(build: str) -> str:
    """The qemu-system-aarch64 to run: "system" means the one on PATH."""
    return common.find_qemu(build, QEMU_BINARY, QEMU_PACKAGE)



# ---------------------------------------------------------------- the machine


# ---------------------------------------------------------------- the device tree and its seed


# ---------------------------------------------------------------- catching the seed in flight
