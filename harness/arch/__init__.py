# SPDX-License-Identifier: GPL-2.0-only
"""The architecture seam: everything that differs between guest architectures.

Each architecture is one module here that defines the names in INTERFACE; the
stages ask `get(name)` for it and never spell out an architecture themselves.
x86_64 (setup_data seeds) and aarch64 (the device tree's rng-seed) sit side by side.

INTERFACE, per module:
  NAME, DEBIAN_ARCH         'x86_64', 'amd64'
  SEED_CARRIER              how a loader hands the kernel its seed: "setup_data" or "device_tree"
                            (the checks dispatch on it, never on a name; an EFI seed table can
                            come beside either)
  QEMU_BINARY, QEMU_PACKAGE qemu-system-x86_64 and the Debian package that has it
  KERNEL_PACKAGES           regexes of Debian's generic kernel package names (groups abi, series)
  LOADER, LIBDIR            the dynamic loader and library folder of the guest userland
  FIRMWARES                 firmware names a scenario may ask for
  find_qemu(build)          the QEMU binary for 'system' or a path
  read_kernel(path)         check a kernel file; (release, version)
  kexec_problems(path, loader)  what in a kernel file's header keeps that loader from starting it
  kernel_payload(path)      the compressed kernel inside the file (or None and why)
  machine_args(...)         the machine's firmware (a variable store template), console, RNG device
                            and boot disk (an ESP image) options
  machine_cmdline(machine)  kernel options a machine type needs
  chain_disk_args(machine, image, serial, boot_disk)  QEMU options for the read-only chain disk
  read_seed_records(read, head)   raw seed records walked from guest RAM
  read_efi_seed(read, address)    (size, bytes) of the EFI random seed table
  first_entry(machine, firmware, bootloader)  where QEMU enters layer 1's kernel (None and why
                            when unknown, as behind a boot loader)
  next_entry(*texts)              where a kexec'd kernel is entered, from the loader's words
  read_handover(read, boot_params)  the seed records handed over at that entry
  GDB_REGISTERS, BOOT_PARAMS_REGISTER, PC_REGISTER   the debugger's register layout; which
                            register holds boot_params (x86) or the DTB's address (arm64); the PC
  SEED_VALUE_OFFSET         where a caught seed's bytes start, from its recorded address
  AGENT_DEVICE              QEMU options that wire the agent's chardev ("agent") into the guest
  rng_bus(machine)          the bus a virtio-rng device sits on (its modules come along)
"""

from __future__ import annotations

from types import ModuleType

from harness.arch import aarch64, x86_64

INTERFACE = ("NAME", "DEBIAN_ARCH", "SEED_CARRIER", "QEMU_BINARY", "QEMU_PACKAGE", "KERNEL_PACKAGES",
             "LOADER", "LIBDIR", "FIRMWARES", "find_qemu", "read_kernel", "kexec_problems",
             "kernel_payload", "machine_args", "machine_cmdline", "read_seed_records",
             "read_efi_seed", "first_entry", "next_entry", "read_handover", "GDB_REGISTERS",
             "BOOT_PARAMS_REGISTER", "PC_REGISTER", "SEED_VALUE_OFFSET", "AGENT_DEVICE", "rng_bus",
             "chain_disk_args")
ARCHES: dict[str, ModuleType] = {x86_64.NAME: x86_64, aarch64.NAME: aarch64}
DEFAULT = x86_64.NAME
CARRIERS = ("setup_data", "device_tree")


def carrier(name: str) -> str:
    """The seed carrier of an architecture: "setup_data" or "device_tree"."""
    found: str = get(name).SEED_CARRIER
    return found


def get(name: str = DEFAULT) -> ModuleType:
    """The module of an architecture; KeyError names the known ones."""
    try:
        return ARCHES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHES)}") from None
