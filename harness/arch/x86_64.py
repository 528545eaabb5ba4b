# SPDX-License-Identifier: GPL-2.0-only
"""x86_64: bzImage kernels, boot_params and its setup_data list, qemu-system-x86_64
with SeaBIOS or OVMF, Debian's amd64 packages.

What the stages need to know about this architecture, and nothing else: see the
INTERFACE in harness/arch/__init__.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from harness.arch import common, setup_data
from harness.arch.setup_data import SEED_SIZE, SETUP_HEADER_SIZE, SETUP_RNG_SEED   # the seed's format
from harness.arch.common import Read
from harness.errors import ImageError, QemuError

NAME = "x86_64"
DEBIAN_ARCH = "amd64"
SEED_CARRIER = "setup_data"     # boot_params' setup_data list, type 9 (SETUP_RNG_SEED)
QEMU_BINARY = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
FIRMWARES = ("seabios", "ovmf")



# ---------------------------------------------------------------- Debian packages

# Generic amd64 kernels only: linux-image-ABI-amd64-unsigned up to trixie,
# linux-binary-ABI-amd64 in sid (and newer backports). An ABI is "6.1.0-41",
# "6.1.0-0.deb11.52" or "6.12.48+deb13"; flavours (cloud, rt) and -dbg never match.
_ABI = r"(?P<abi>(?P<series>\d+\.\d+)\.\d+(?:-[0-9][^-]*|\+deb[^-]*)?)"
KERNEL_PACKAGES = (re.compile(rf"linux-image-{_ABI}-amd64-unsigned"),
                   re.compile(rf"linux-binary-{_ABI}-amd64"))
LOADER = "ld-linux-x86-64.so.2"
LIBDIR = "lib/x86_64-linux-gnu"  # searched by Debian's loader without any ld.so.cache


# ---------------------------------------------------------------- kernels

def read_kernel(path: Path) -> tuple[str, str]:
    """Check that path is an x86 bzImage; (release, version) from its version string
    ('' when it has none). The string's offset-0x200 is in the header at 0x20E."""
    with common.open_kernel(path, "a bzImage", "e.g. /boot/vmlinuz-*, arch/x86/boot/bzImage") as f:
        try:
            size = os.fstat(f.fileno()).st_size
            head = f.read(0x4000)
            f.seek(0x200 + int.from_bytes(head[0x20E:0x210], "little"))
            text = f.read(256).split(b"\0")[0].decode(errors="replace")
        except OSError as err:
            raise ImageError(f"cannot read kernel file {path}: {err.strerror}", where=str(path),
                             hint="check the path and its permissions") from None
    if head[0x202:0x206] != b"HdrS":
        raise ImageError(f"{path} is not an x86 bzImage: {_describe(head, size)}", where=str(path),
                         hint="give a bzImage (e.g. /boot/vmlinuz-*, arch/x86/boot/bzImage), "
                              "not a vmlinux, an initramfs or a compressed file")
    # e.g. "6.1.0-41-amd64 (debian-kernel@lists.debian.org) #1 SMP ... Debian 6.1.158-1 (...)"
    words = text.split()
    if not words or not re.match(r"\d+\.\d+", words[0]):
        return "", ""
    debian = re.search(r"Debian (\S+)", text)
    return words[0], debian[1] if debian else words[0]


# The setup header (Documentation/arch/x86/boot.rst): the fields a loader decides by.
SETUP_SECTS_AT, PROTOCOL_AT, LOADFLAGS_AT, XLOADFLAGS_AT = 0x1F1, 0x206, 0x211, 0x236
PAYLOAD_AT = 0x248                  # u32 payload_offset, u32 payload_length (protocol 2.08+)
LOADED_HIGH = 1 << 0                # loadflags: the protected-mode part loads at 0x100000
XLF_KERNEL_64, XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 0, 1 << 1
KEXEC_FILE_PROTOCOL = 0x020C        # 2.12: xloadflags, which kexec_file_load's 64-bit entry needs
FILE_LOADERS = ("kexec_file_load", "kexec_crash")   # both load through kexec_file_load (kexec -s)


def _header(path: Path) -> bytes:
    with common.open_kernel(path, "a bzImage", "") as f:
        return f.read(0x400)


def _protocol(head: bytes) -> tuple[int, str]:
    version = int.from_bytes(head[PROTOCOL_AT:PROTOCOL_AT + 2], "little")
    return version, f"{version >> 8}.{version & 0xFF:02d}"


def kexec_problems(path: Path, loader: str) -> list[str]:
    """What in a bzImage's header keeps `loader` from starting it (the kernel's own
    kexec-bzimage64.c probe asks the same); [] when nothing does. Call after read_kernel."""
    if loader not in FILE_LOADERS:
        return []
    head = _header(path)
    version, text = _protocol(head)
    if version < KEXEC_FILE_PROTOCOL:
        return [f"its boot protocol is {text} (header offset {PROTOCOL_AT:#x}); kexec_file_load "
                f"needs 2.12 or later, which has the 64-bit entry point it jumps to"]
    xloadflags = int.from_bytes(head[XLOADFLAGS_AT:XLOADFLAGS_AT + 2], "little")
    problems = []
    if not head[LOADFLAGS_AT] & LOADED_HIGH:
        problems.append("loadflags lacks LOADED_HIGH: a zImage, not a bzImage")
    if not xloadflags & XLF_KERNEL_64:
        problems.append(f"xloadflags ({xloadflags:#x}) lacks XLF_KERNEL_64: no 64-bit entry point "
                        "(a 32-bit kernel?)")
    if not xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G:
        problems.append(f"xloadflags ({xloadflags:#x}) lacks XLF_CAN_BE_LOADED_ABOVE_4G "
                        "(built without CONFIG_RELOCATABLE?)")
    return problems


def kernel_payload(path: Path) -> tuple[bytes | None, str]:
    """The compressed kernel inside a bzImage: payload_offset and payload_length count
    from the protected-mode part, which starts at (setup_sects + 1) * 512 (setup_sects
    0 means 4). (None, why) when the header has no payload fields or they point outside."""
    try:
        data = common.read_kernel_bytes(path)
    except ImageError as exc:
        return None, exc.what
    version, text = _protocol(data)
    if version < 0x0208:
        return None, f"its boot protocol {text} predates the payload fields (2.08)"
    start = ((data[SETUP_SECTS_AT] or 4) + 1) * 512
    offset = int.from_bytes(data[PAYLOAD_AT:PAYLOAD_AT + 4], "little")
    length = int.from_bytes(data[PAYLOAD_AT + 4:PAYLOAD_AT + 8], "little")
    if not length or start + offset + length > len(data):
        return None, (f"its payload ({length} bytes at {start:#x} + {offset:#x}) is not inside "
                      f"the {len(data)}-byte file")
    return data[start + offset:start + offset + length], ""


def _describe(head: bytes, size: int) -> str:
    """What a file that is not a bzImage seems to be, for the error message: its kind and
    size, never any of its bytes (the path may name any file the user can read)."""
    kinds = [(b"\x7fELF", "an ELF file", ": a vmlinux? QEMU -kernel and kexec want the bzImage"),
             (b"\x1f\x8b", "gzip data", ""), (b"\xfd7zXZ", "xz data", ""), (b"(\xb5/\xfd", "zstd data", ""),
             (b"070701", "a cpio archive", ": an initramfs?"), (b"!<arch>", "a Debian package or ar archive", ""),
             (b"MZ", "a PE/EFI file", " without a Linux boot header")]
    for magic, kind, note in kinds:
        if head.startswith(magic):
            return f"found {kind}, {size} bytes{note}"
    if len(head) < 0x206:
        return f"found only {len(head)} bytes"
    kind = "a text file" if _is_text(head) else "a file"
    return f"found {kind} of {size} bytes with no Linux boot header (no 'HdrS' at offset 0x202)"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode()
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:       # not merely a character cut where the read ended
            return False
        text = head[:err.start].decode()
    return all(c.isprintable() or c in "\t\n\r" for c in text)


# ---------------------------------------------------------------- QEMU and firmware

def find_qemu(build: str) -> str:
    """The qemu-system-x86_64 to run: "system" means the one on PATH."""
    return common.find_qemu(build, QEMU_BINARY, QEMU_PACKAGE)


OVMF_DIR = Path("/usr/share/OVMF")       # Debian's ovmf package
OVMF_CODE = "OVMF_CODE_4M.fd"             # read-only firmware, shared by every run
OVMF_VARS = "OVMF_VARS_4M.fd"             # the variable store template: each run writes its own copy


def is_microvm(machine: str) -> bool:
    return machine.split(",", 1)[0] == "microvm"


def ovmf_pflash(workdir: Path, vars_template: Path | None = None) -> list[str]:
    """-drive options for OVMF: the code read-only, and a fresh copy of the variable
    store in the run's folder (the firmware writes to it; the package's stays clean).
    `vars_template`: a store to copy instead of the package's (one with variables set)."""
    return common.pflash(OVMF_DIR / OVMF_CODE, vars_template or OVMF_DIR / OVMF_VARS, workdir, "OVMF_VARS.fd",
                         "qemu.firmware: ovmf", "ovmf")


# With a boot disk, fixed PCI slots: OVMF's boot entries name the disk's device path, and a
# device added before it must not move it (else OVMF drops into its shell).
BOOT_DISK_SLOT, RNG_SLOT, CHAIN_DISK_SLOT = "0x4", "0x5", "0x6"
AGENT_DEVICE = ["-serial", "chardev:agent"]    # the agent's channel: the second serial port, ttyS1


def machine_args(*, machine: str, rng: str, firmware: str, workdir: Path | None,
                 vars_template: Path | None = None, boot_disk: Path | None = None) -> list[str]:
    """The firmware, the agent's serial port where the machine lacks one, the RNG device,
    and a boot disk (an ESP image, UEFI only) that the firmware boots first."""
    args: list[str] = []
    microvm = is_microvm(machine)
    if firmware == "ovmf":
        if microvm:
            raise QemuError("OVMF cannot boot a microvm machine (it has no flash; Debian's ovmf "
                            "has no microvm build)", where="qemu.firmware: ovmf",
                            hint="use machine q35 or pc with firmware ovmf")
        if workdir is None:
            raise ValueError("base_args needs the run's folder for OVMF's variable store")
        args += ovmf_pflash(workdir, vars_template)
    if boot_disk is not None:
        if firmware != "ovmf" or microvm:
            raise QemuError("a boot loader on an ESP disk needs UEFI on q35 or pc",
                            where=f"qemu.firmware: {firmware}", hint="use firmware: ovmf and machine q35")
        args += ["-drive", f"if=none,id=esp,format=raw,file={boot_disk}",
                 "-device", f"virtio-blk-pci,drive=esp,bootindex=0,addr={BOOT_DISK_SLOT}"]
    if microvm:
        # microvm has one ISA serial port; the agent's channel (Machine's second
        # -serial, chardev "agent") becomes ttyS1 through a second one at COM2's address.
        args += ["-device", "isa-serial,chardev=agent,iobase=0x2f8,irq=3"]
    if rng == "virtio":
        # microvm has no PCI bus by default: its virtio devices sit on virtio-mmio.
        slot = f",addr={RNG_SLOT}" if boot_disk is not None else ""
        args += ["-device", "virtio-rng-device" if microvm else f"virtio-rng-pci{slot}"]
    return args


def rng_bus(machine: str) -> str:
    """Where the machine's virtio devices (RNG, chain disk) sit, so the initramfs carries
    that bus's modules: virtio-mmio on microvm, PCI elsewhere."""
    return "mmio" if is_microvm(machine) else "pci"


def chain_disk_args(machine: str, image: Path, serial: str, boot_disk: bool = False) -> list[str]:
    """The chain disk (the later layers' kernels and initramfs images) as a read-only
    virtio block device the agent finds by its serial. Beside a boot disk it takes a
    fixed PCI slot after the RNG's, and is never booted from."""
    drive = f"if=none,id=chain,format=raw,readonly=on,file={image}"
    if is_microvm(machine):
        device = f"virtio-blk-device,drive=chain,serial={serial}"
    else:
        device = f"virtio-blk-pci,drive=chain,serial={serial}" + (f",addr={CHAIN_DISK_SLOT}" if boot_disk else "")
    return ["-drive", drive, "-device", device]


def host_tsc_khz() -> int | None:
    """The host's TSC rate in kHz, best effort (TCG guests see the host's TSC rate)."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/tsc_freq_khz").read_text())
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":")[1])) * 1000
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_cmdline(machine: str) -> str:
    """Kernel options a machine type needs. microvm has no HPET and no ACPI PM timer:
    when the PIT calibration fails (it does under TCG on a busy host) the kernel hangs
    with an unknown TSC rate, so it is given the host's rate up front."""
    if is_microvm(machine):
        khz = host_tsc_khz()
        return f"tsc_early_khz={khz}" if khz else ""
    return ""


# ---------------------------------------------------------------- seeds in guest RAM

read_seed_records = setup_data.read_seed_records


read_efi_seed = common.read_efi_seed


# ---------------------------------------------------------------- the hand-over, caught in flight
# A kernel is entered with the physical address of its boot_params in %rsi (%esi):
# - QEMU's -kernel (SeaBIOS or qboot) loads a bzImage's protected-mode part at 0x100000,
#   and the kernel's real-mode setup code jumps there (code32_start) in 32-bit mode;
# - kexec's purgatory enters a kexec'd kernel at its load address + 0x200 (startup_64),
#   identity-mapped. The load address is logged as "Loaded 64bit kernel at 0x..." by
#   kexec-tools with -d (kexec_load) and by the kernel's kexec-bzimage64.c (kexec_file_load
#   and the crash kernel: a pr_debug up to 6.7, kexec_dprintk from 6.8; both show when
#   dynamic debug is on for that file).
QEMU_KERNEL_ENTRY = 0x100000
KEXEC_ENTRY_OFFSET = 0x200
# (offset, size) in the stub's "g" reply, GDB's x86_64 layout: rax rbx rcx rdx rsi rdi rbp rsp
# r8..r15 rip, 8 bytes each (QEMU answers "p" only to a client that read its target XML).
GDB_REGISTERS = {"rsi": (4 * 8, 8), "rip": (16 * 8, 8)}
BOOT_PARAMS_REGISTER = "rsi"
PC_REGISTER = "rip"
SEED_VALUE_OFFSET = SETUP_HEADER_SIZE   # a seed's address is its entry's; its bytes follow the header
SETUP_DATA_POINTER = 0x250                # boot_params.hdr.setup_data
HEADER_MAGIC_AT = 0x202                   # boot_params.hdr.header = "HdrS"
_LOADED_KERNEL = re.compile(r"Loaded 64bit kernel at (0x[0-9a-fA-F]+)")


def first_entry(machine: str, firmware: str, bootloader: str = "",
                read: Read | None = None) -> tuple[int | None, str]:
    """Where QEMU's -kernel boot enters layer 1's kernel, and how that is known; None
    with the reason where it cannot be known before the boot (`read` is not needed here:
    the entry is fixed)."""
    if bootloader:
        return None, (f"{bootloader} loads the kernel from the ESP and starts its EFI stub at an address "
                      "chosen at run time, with no stop point the host knows beforehand; its seed "
                      "goes in an EFI table, not in setup_data")
    if firmware == "ovmf":
        return None, ("OVMF starts the kernel through its EFI stub, at an address the firmware "
                      "chooses at run time; QEMU passes no setup_data seed on that path")
    return QEMU_KERNEL_ENTRY, (f"QEMU -kernel: the protected-mode entry at {QEMU_KERNEL_ENTRY:#x} "
                               f"(code32_start), where {('qboot' if is_microvm(machine) else 'SeaBIOS')}'s "
                               "boot hands over")


def next_entry(*texts: str) -> tuple[int | None, str]:
    """Where purgatory enters the kernel a loader just loaded: the last "Loaded 64bit
    kernel at" in the loader's output or the kernel log, + 0x200."""
    for name, text in zip(("kexec -d", "the kernel log (kexec-bzimage64.c)"), texts, strict=False):
        found = _LOADED_KERNEL.findall(text or "")
        if found:
            load = int(found[-1], 16)
            return load + KEXEC_ENTRY_OFFSET, (f"{name}: Loaded 64bit kernel at {found[-1]}; "
                                               f"purgatory enters at +{KEXEC_ENTRY_OFFSET:#x}")
    return None, ("no 'Loaded 64bit kernel at' line in kexec -d's output or the kernel log: from "
                  "6.8 on, kexec_file_load logs it only when kexec-tools passes KEXEC_FILE_DEBUG "
                  "(kexec -d, kexec-tools 2.0.28 or later, e.g. userland debian:trixie); before, "
                  "with dynamic debug on for kexec-bzimage64.c")


def read_handover(read: Read, boot_params: int) -> tuple[int, list[tuple[int, int, bytes]], dict[str, Any]]:
    """At a hand-over: (hdr.setup_data, [(address, len field, 32 seed bytes) of each
    type-9 entry], nothing else). ValueError when the page there is no boot_params (a
    stop that was not one)."""
    if read(boot_params + HEADER_MAGIC_AT, 4) != b"HdrS":
        raise ValueError(f"no boot_params at {boot_params:#x} (no 'HdrS' at +{HEADER_MAGIC_AT:#x})")
    head = int.from_bytes(read(boot_params + SETUP_DATA_POINTER, 8), "little")
    seeds = [(at, int.from_bytes(raw[12:16], "little"), bytes(raw[16:16 + SEED_SIZE]))
             for at, raw in read_seed_records(read, head)
             if int.from_bytes(raw[8:12], "little") == SETUP_RNG_SEED]
    return head, seeds, {}
