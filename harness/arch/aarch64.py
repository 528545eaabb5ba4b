# SPDX-License-Identifier: GPL-2.0-only
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
from typing import Any

from harness.arch import common
from harness.arch.common import Read
from harness.errors import ImageError, QemuError

NAME = "aarch64"
DEBIAN_ARCH = "arm64"
SEED_CARRIER = "device_tree"    # /chosen/rng-seed of the DTB the kernel is handed
QEMU_BINARY = "qemu-system-aarch64"
QEMU_PACKAGE = "qemu-system-arm"
FIRMWARES = ("none", "uefi")     # direct kernel boot, or qemu-efi-aarch64's AAVMF



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
    with common.open_kernel(path, "an arm64 Image", "e.g. arch/arm64/boot/Image") as f:
        try:
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
    with common.open_kernel(path, "an arm64 Image", "") as f:
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
        return common.read_kernel_bytes(path), ""
    except ImageError as exc:
        return None, exc.what


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

MACHINES = ("virt",)
DEFAULT_MACHINE = "virt"
# Measured (docs/facts.md#debian-arm64-kernels): under TCG plain `-cpu max` spends its time in
# pointer authentication's QARMA5 (/init at 5.5 s); pauth-impdef=on keeps the CPU's features
# (FEAT_RNG among them) at 1.4 s.
DEFAULT_CPU = "max,pauth-impdef=on"
RAM_BASE = 0x40000000                      # -M virt's RAM starts at 1 GiB
CONSOLE = "ttyAMA0"                        # the PL011, virt's only UART
AAVMF_DIR = Path("/usr/share/AAVMF")      # Debian's qemu-efi-aarch64
AAVMF_CODE, AAVMF_VARS = "AAVMF_CODE.fd", "AAVMF_VARS.fd"
# virt has one UART, so the agent's channel is a virtio serial port on virtio-mmio, found
# in the guest by its name (/sys/class/virtio-ports/*/name).
AGENT_PORT = "org.seedchain.agent"
AGENT_DEVICE = ["-device", "virtio-serial-device",
                "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}"]


def is_microvm(machine: str) -> bool:
    return False


def machine_args(*, machine: str, rng: str, firmware: str, workdir: Path | None,
                 vars_template: Path | None = None, boot_disk: Path | None = None) -> list[str]:
    """UEFI's flash (code read-only, a per-run copy of the variable store) when asked
    for, and the RNG device on virtio-mmio (the agent's port is AGENT_DEVICE, which the
    runner adds with the agent's chardev)."""
    args: list[str] = []
    if boot_disk is not None:
        raise QemuError("a boot loader on an ESP disk is x86_64 only here",
                        where="bootloader", hint="leave bootloader out of an aarch64 scenario")
    if firmware == "uefi":
        if workdir is None:
            raise ValueError("base_args needs the run's folder for the variable store")
        args += common.pflash(AAVMF_DIR / AAVMF_CODE, vars_template or AAVMF_DIR / AAVMF_VARS, workdir,
                              AAVMF_VARS, "qemu.firmware: uefi", "qemu-efi-aarch64")
    if rng == "virtio":
        args += ["-device", "virtio-rng-device"]
    return args


def rng_bus(machine: str) -> str:
    """virtio devices of -M virt sit on virtio-mmio here (no PCI modules needed)."""
    return "mmio"


def chain_disk_args(machine: str, image: Path, serial: str, boot_disk: bool = False) -> list[str]:
    """The chain disk (the later layers' kernels and initramfs images) as a read-only
    virtio block device on virtio-mmio, found by the agent by its serial."""
    return ["-drive", f"if=none,id=chain,format=raw,readonly=on,file={image}",
            "-device", f"virtio-blk-device,drive=chain,serial={serial}"]


def machine_cmdline(machine: str) -> str:
    return ""


# ---------------------------------------------------------------- the device tree and its seed
# No setup_data on this architecture: the "records" are the DTB's /chosen/rng-seed.

SEED_SIZE = 32              # QEMU's; arm64 kexec_file_load writes 128 (RNG_SEED_SIZE)
SEED_VALUE_OFFSET = 0       # a seed's address is that of its bytes (x86: after a 16-byte header)
SETUP_RNG_SEED = None       # no setup_data type: never matches a record


def read_dtb(read: Read, address: int) -> bytes:
    """The blob at `address` in guest RAM, up to its content's end (not its padding)."""
    from harness.arch import fdt as dtb
    size = dtb.used_size(read(address, dtb.HEADER_SIZE))
    return read(address, size)


def read_seed_records(read: Read, head: int) -> list[tuple[int, bytes]]:
    return []                # the seed is in the DTB: see read_handover


read_efi_seed = common.read_efi_seed      # the EFI stub's table, as on x86


# ---------------------------------------------------------------- catching the seed in flight
# An arm64 kernel is entered at the first byte of its Image with the DTB's physical address
# in x0 (Documentation/arch/arm64/booting.rst), the MMU off:
# - QEMU's -kernel boot writes a six-instruction stub at the start of RAM whose literals are
#   the DTB's address (+0x18) and the kernel's entry (+0x20) (hw/arm/boot.c,
#   bootloader_aarch64); with -S the host reads them before the first instruction runs;
# - kexec-tools' kexec_load prints the Image's place with -d ("image_arm64_load:
#   kernel_segment: ..." and "text_offset: ..."); the kernel's kexec_file_load prints it in
#   a debug message of kexec_image.c ("Loaded kernel at 0x..."), shown when dynamic debug is
#   on for that file (a pr_debug up to 6.7, kexec_dprintk from 6.8).
STUB_DTB_AT, STUB_ENTRY_AT = 0x18, 0x20
_STUB_FIRST = bytes.fromhex("c0000058")      # ldr x0, arg
# (offset, size) in the stub's "g" reply, GDB's aarch64 layout: x0..x30, sp, pc, 8 bytes each.
GDB_REGISTERS = {"x0": (0, 8), "pc": (32 * 8, 8)}
BOOT_PARAMS_REGISTER = "x0"
PC_REGISTER = "pc"
_KEXEC_SEGMENT = re.compile(r"image_arm64_load: kernel_segment:\s+([0-9a-fA-F]+)")
_KEXEC_TEXT = re.compile(r"image_arm64_load: text_offset:\s+([0-9a-fA-F]+)")
_FILE_LOADED = re.compile(r"Loaded kernel at (0x[0-9a-fA-F]+)")


def first_entry(machine: str, firmware: str, bootloader: str = "",
                read: Read | None = None) -> tuple[int | None, str]:
    """Where QEMU's -kernel boot enters layer 1's kernel, read from QEMU's boot stub in
    RAM (the guest has not run yet); None with the reason where it cannot be known."""
    if firmware == "uefi":
        return None, ("UEFI starts the kernel through its EFI stub at an address the firmware "
                      "chooses at run time; the DTB it hands on is the firmware's copy")
    if read is None:
        return None, "guest RAM could not be read before the first instruction"
    stub = read(RAM_BASE, STUB_ENTRY_AT + 8)
    if stub[:4] != _STUB_FIRST:
        return None, f"no QEMU boot stub at {RAM_BASE:#x} (first word {stub[:4].hex()})"
    entry = int.from_bytes(stub[STUB_ENTRY_AT:STUB_ENTRY_AT + 8], "little")
    dtb = int.from_bytes(stub[STUB_DTB_AT:STUB_DTB_AT + 8], "little")
    return entry, (f"QEMU -kernel: its boot stub at {RAM_BASE:#x} jumps to {entry:#x} "
                   f"with x0 = {dtb:#x} (the DTB QEMU placed)")


def next_entry(*texts: str) -> tuple[int | None, str]:
    """Where a kexec'd Image is entered: kexec -d's kernel_segment + text_offset
    (kexec_load), or the kernel's "Loaded kernel at" (kexec_file_load, the crash kernel)."""
    output = texts[0] if texts else ""
    segments, offsets = _KEXEC_SEGMENT.findall(output or ""), _KEXEC_TEXT.findall(output or "")
    if segments:
        entry = int(segments[-1], 16) + (int(offsets[-1], 16) if offsets else 0)
        return entry, (f"kexec -d: kernel_segment {int(segments[-1], 16):#x} + text_offset "
                       f"{int(offsets[-1], 16) if offsets else 0:#x}")
    for text in texts[1:]:
        found = _FILE_LOADED.findall(text or "")
        if found:
            return int(found[-1], 16), f"the kernel log (kexec_image.c): Loaded kernel at {found[-1]}"
    return None, ("no 'kernel_segment' line in kexec -d's output and no 'Loaded kernel at' in the "
                  "kernel log: from 6.8 on, kexec_file_load logs it only when kexec-tools passes "
                  "KEXEC_FILE_DEBUG (kexec -d, kexec-tools 2.0.28 or later); before, with dynamic "
                  "debug on for kexec_image.c")


def read_handover(read: Read, pointer: int) -> tuple[int, list[tuple[int, int, bytes]], dict[str, Any]]:
    """At a hand-over: (the DTB's address, [(address, length, bytes) of /chosen/rng-seed],
    what else /chosen said). ValueError when x0 points at no DTB (a stop that was not one)."""
    from harness.arch import fdt as dtb
    try:
        blob = read_dtb(read, pointer)
        chosen = dtb.chosen(blob)
    except dtb.DtbError as exc:
        raise ValueError(f"no DTB at {pointer:#x}: {exc}") from None
    extra = {"kaslr_seed": chosen.kaslr_seed.hex() if chosen.kaslr_seed is not None else None,
             "dtb_size": len(blob), "from_kexec": chosen.from_kexec}
    if not chosen.rng_seed:
        return pointer, [], extra
    at = blob.find(chosen.rng_seed)
    return pointer, [(pointer + at, len(chosen.rng_seed), chosen.rng_seed)], extra
