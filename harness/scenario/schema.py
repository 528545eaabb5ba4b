# SPDX-License-Identifier: GPL-2.0-only
"""The JSON Schema (draft 2020-12) of scenario files.

harness.scenario validates every file against SCHEMA, and editors read the
same schema from scenarios/schema.json for completion and hover help, which is
why every property has a description. Regenerate that file after a change:

    python -m harness.scenario.schema > scenarios/schema.json
"""

from __future__ import annotations

import json
import sys

from harness.scenario import qemu_options
from harness.scenario.model import (ARCHES, BOOTLOADERS, CHECKS, DEFAULT_ARCH, FIRMWARES, LOADERS,
                                    RNG_DEVICES, SEED_PRESETS, BootLoader, Layer, QemuConfig)

MAX_LAYERS = 16

# Regexes are ECMA 262 (what JSON Schema and editors use); harness.scenario reads
# a final `$` the ECMA way, as the very end of the string.
NAME = r"^[a-z0-9][a-z0-9-]*$"
TAG = r"^[a-z0-9-]+$"
MACHINE = r"^[a-z0-9][a-z0-9.,=_-]*$"
CPU = r"^[A-Za-z0-9][A-Za-z0-9,=_.+-]*$"
DEBIAN_KERNEL = r"^debian(-source)?:[a-z]+(-backports)?/[0-9]+\.[0-9]+$"
KERNEL_PATH = r"^[^\n\r\u0000]+$"
USERLAND = r"^debian:[a-z]+(-backports)?$"
ONE_LINE = r"^[^\n\r\u0000]*$"

# What each pattern means in words, for error messages.
PATTERN_WORDS = {
    NAME: "lowercase letters, digits and '-', starting with a letter or digit",
    TAG: "lowercase letters, digits and '-'",
    MACHINE: "a QEMU machine type such as pc, q35, pc-i440fx-7.2 or microvm,rtc=on",
    CPU: "a QEMU CPU model such as max, qemu64 or qemu64,+rdrand",
    DEBIAN_KERNEL: "'debian:SUITE/SERIES' such as debian:bookworm/6.1 or debian:sid/7.2, or "
                   "'debian-source:SUITE/SERIES' such as debian-source:bookworm/6.1",
    KERNEL_PATH: "'debian:SUITE/SERIES', 'debian-source:SUITE/SERIES' or a path to a kernel image, on one line",
    USERLAND: "'debian:SUITE' such as debian:bookworm or debian:bookworm-backports",
    ONE_LINE: "text on one line",
    qemu_options.ITEM: qemu_options.ITEM_WORDS,
}

_QEMU = QemuConfig()
_BOOTLOADER = BootLoader()
_LAYER = Layer(index=1, kernel="", loader="qemu")

CHECK_WORDS = {
    "booted": "The layer's kernel booted and reported back.",
    "received": "A SETUP_RNG_SEED entry reached this layer's kernel.",
    "fresh": "The seed caught at the hand-over is not all zero, differs from every other seed "
             "of the run and from this scenario's seeds in earlier runs, and is the entry the "
             "kernel later left zeroed.",
    "zeroed_sysfs": "The seed reads as zeroes in the setup_data copy under /sys/kernel/boot_params.",
    "zeroed_ram": "The seed bytes in the setup_data in RAM were zeroed after use.",
    "credited": "The kernel credited the seed as entropy.",
    "exposed": "The seed stays readable by users after boot.",
    "lingering": "A copy of a seed caught so far in the chain (16 or more of its bytes) is in "
                 "this layer's RAM after it reported, besides the seed's own entry.",
    "passed_on": "This layer handed a fresh seed to the next kernel it kexec'd.",
    "seed_file_refreshed": "The boot loader's seed file on the ESP (bootloader.seed_file) holds other "
                           "bytes after the boot than before, and neither its old nor its new bytes "
                           "were seen in this scenario's earlier runs (layer 1 only).",
}
assert set(CHECK_WORDS) == set(CHECKS)

_EXPECT = {
    "type": "object",
    "description": "Expected outcome of this layer's checks. Checks not named are not checked "
                   "(except booted, expected true).",
    "additionalProperties": False,
    "properties": {
        "seed": {
            "enum": list(SEED_PRESETS),
            "description": "Shorthand for several checks: " + "; ".join(
                f"{preset} = " + ", ".join(f"{k}: {str(v).lower()}" for k, v in checks.items())
                for preset, checks in SEED_PRESETS.items()
            ) + ". Explicit check keys override it.",
        },
        **{
            check: {
                "type": ["boolean", "null"],
                "description": f"{CHECK_WORDS[check]} true or false: expected outcome; null: not checked.",
            }
            for check in CHECKS
        },
    },
}


def _layer(first: bool) -> dict:
    """Layer 1 (started by QEMU) and later layers (started by kexec) differ only in `loader`."""
    if first:
        loader = {
            "not": {},
            "description": "Not allowed in layer 1: QEMU always starts layer 1. "
                           "Set loader on layers 2 and later.",
        }
    else:
        loader = {
            "enum": list(LOADERS),
            "description": "How the previous layer starts this one: kexec_file_load (kexec -s), "
                           "kexec_load (kexec -c), or kexec_crash (kexec -s -p, then the previous "
                           "layer is crashed on purpose; it gets crashkernel=384M unless its "
                           "cmdline names a size).",
        }
    return {
        "type": "object",
        "description": ("The first kernel, booted by QEMU." if first
                        else "A kernel booted by the previous layer with kexec."),
        "additionalProperties": False,
        "required": ["kernel"] if first else ["kernel", "loader"],
        "properties": {
            "kernel": {
                "type": "string",
                "description": "Kernel to boot: 'debian:SUITE/SERIES' (e.g. debian:bookworm/6.1, "
                               "debian:sid/7.2; the arch's Debian packages), 'debian-source:SUITE/SERIES' "
                               "(e.g. debian-source:bookworm/6.1: built for the scenario's arch from that "
                               "suite's linux-source-SERIES package with images/kernel/debian-source.yaml, "
                               "where Debian ships no kernel that can do the job), or a path to a bzImage "
                               "(x86_64) or an uncompressed Image (aarch64), absolute or relative "
                               "to this file's folder.",
                "if": {"pattern": "^debian(-source)?:"},
                "then": {"pattern": DEBIAN_KERNEL},
                "else": {"pattern": KERNEL_PATH},
            },
            "loader": loader,
            "userland": {
                "type": "string",
                "pattern": USERLAND,
                "default": _LAYER.userland,
                "description": "'debian:SUITE' that busybox and kexec-tools for this layer come from.",
            },
            "cmdline": {
                "type": "string",
                "pattern": ONE_LINE,
                "maxLength": 1024,
                "default": _LAYER.cmdline,
                "description": "Extra kernel command line, appended to the harness's own options "
                               "(one line, at most 1024 characters).",
            },
            "timeout": {
                "type": "number",
                "minimum": 5,
                "maximum": 3600,
                "default": _LAYER.timeout,
                "description": "Seconds from the hand-over to this layer until it must have "
                               "reported, 5 to 3600.",
            },
            "pad_kernel": {
                "type": "integer",
                "minimum": 0,
                "maximum": 256,
                "default": 0,
                "description": "Pad the kernel file with zero bytes to this many MiB (0: as it is). "
                               "QEMU 7.2.0 puts its setup_data right after the kernel file, so this "
                               "moves the seed (e.g. into the range the kernel decompresses into).",
            },
            "expect": _EXPECT,
        },
    }


SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "seedchain scenario",
    "description": "A chain of kernels: QEMU boots layer 1, each layer kexecs the next, and each "
                   "layer's checks say what must happen to the boot-time RNG seed.",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "layers"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": NAME,
            "maxLength": 64,
            "description": "Unique name of the scenario: lowercase letters, digits and '-', "
                           "at most 64 characters.",
        },
        "description": {
            "type": "string",
            "minLength": 1,
            "description": "What the scenario boots and what it shows, in a sentence or two.",
        },
        "tags": {
            "type": "array",
            "items": {"type": "string", "pattern": TAG},
            "default": [],
            "description": "Labels to select scenarios by (lowercase letters, digits and '-').",
        },
        "arch": {
            "enum": list(ARCHES),
            "default": DEFAULT_ARCH,
            "description": "Guest architecture: x86_64 (qemu-system-x86_64, bzImage kernels, setup_data "
                           "seeds, Debian's amd64 packages) or aarch64 (qemu-system-aarch64 -M virt, Image "
                           "kernels, the device tree's rng-seed, Debian's arm64 packages). It sets the "
                           "defaults of qemu.machine, qemu.cpu and qemu.firmware: " + "; ".join(
                               f"{name}: {a.machine}, {a.cpu}, {a.firmware}" for name, a in ARCHES.items()) + ".",
        },
        "qemu": {
            "type": "object",
            "additionalProperties": False,
            "description": "How QEMU runs layer 1; every key is optional.",
            "properties": {
                "build": {
                    "type": "string",
                    "minLength": 1,
                    "default": _QEMU.build,
                    "description": "'system' for qemu-system-x86_64 (aarch64: qemu-system-aarch64) "
                                   "on PATH, 'debian:SUITE' (e.g. debian:trixie) for that Debian "
                                   "suite's QEMU run in a root file system of its own, 'source:VERSION' "
                                   "(e.g. source:7.2.0, x86_64 only) for a release built from Debian's "
                                   "source package by images/qemu/qemu-VERSION.yaml, or a path to a "
                                   "QEMU binary of the arch (relative to this file's folder).",
                },
                "machine": {
                    "type": "string",
                    "pattern": MACHINE,
                    "default": _QEMU.machine,
                    "description": "QEMU machine type and options (-machine), e.g. q35, pc, "
                                   "pc-i440fx-7.2, microvm,rtc=on (x86_64; default q35); virt, "
                                   "virt,dtb-randomness=off (aarch64; default virt).",
                },
                "cpu": {
                    "type": "string",
                    "pattern": CPU,
                    "default": _QEMU.cpu,
                    "description": "QEMU CPU model (-cpu): max has RDRAND, qemu64 has none (x86_64; "
                                   "default max); aarch64's default is max,pauth-impdef=on (plain max "
                                   "is four times slower under TCG), cortex-a57 has no FEAT_RNG.",
                },
                "memory": {
                    "type": "integer",
                    "minimum": 256,
                    "maximum": 16384,
                    "default": _QEMU.memory,
                    "description": "Guest RAM in MiB, 256 to 16384.",
                },
                "rng": {
                    "enum": list(RNG_DEVICES),
                    "default": _QEMU.rng,
                    "description": "Guest RNG device: none, or virtio (adds virtio-rng-pci).",
                },
                "firmware": {
                    "enum": list(FIRMWARES),
                    "default": _QEMU.firmware,
                    "description": "x86_64: seabios (legacy BIOS, QEMU's default) or ovmf (UEFI, "
                                   "Debian's ovmf package): the kernel's EFI stub then passes an EFI "
                                   "RNG seed. aarch64: none (direct kernel boot, the default) or uefi "
                                   "(Debian's qemu-efi-aarch64).",
                },
                "accel": {
                    "enum": ["auto", "tcg", "kvm"],
                    "default": _QEMU.accel,
                    "description": "Accelerator: kvm, tcg, or auto (KVM only when a probe boot "
                                   "shows it works).",
                },
                "extra_args": {
                    "type": "array",
                    "items": {"type": "string", "pattern": qemu_options.ITEM},
                    "default": [],
                    "description": "More QEMU options, each followed by its value as the next item "
                                   "(quote numbers): only " + qemu_options.ALLOWED_WORDS + ". Options "
                                   "that could name a host file, socket, plugin or program are refused "
                                   "in a file; give them on the command line (seedchain run --qemu-arg).",
                },
            },
        },
        "bootloader": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "description": "Boot layer 1 through a boot loader on an ESP disk instead of QEMU's "
                           "-kernel (needs qemu.firmware: ovmf). The ESP holds the loader's EFI binary "
                           "(images/bootloader/NAME.yaml), a loader entry for layer 1's kernel, "
                           "initramfs and command line, and the loader's own seed file.",
            "properties": {
                "name": {"enum": list(BOOTLOADERS),
                         "description": "The boot loader: systemd-boot (Debian's systemd-boot-efi)."},
                "suite": {"type": "string", "pattern": USERLAND, "default": _BOOTLOADER.suite,
                          "description": "'debian:SUITE' the boot loader's package comes from: "
                                         "debian:trixie has systemd-boot 257 (seeds the kernel from its "
                                         "seed file), debian:bookworm 252 (passes its seed to systemd "
                                         "in an EFI variable, not to the kernel)."},
                "seed_file": {"type": "boolean", "default": _BOOTLOADER.seed_file,
                              "description": "Write a seed file of random bytes from the host on the ESP "
                                             "before each boot (loader/random-seed); false: none."},
                "system_token": {"type": "boolean", "default": _BOOTLOADER.system_token,
                                 "description": "Set LoaderSystemToken (random bytes from the host) in "
                                                "the run's copy of OVMF's variable store; without it and "
                                                "without an EFI RNG, systemd-boot 253+ passes no seed."},
            },
        },
        "repeat": {
            "type": "integer",
            "minimum": 1,
            "maximum": 5,
            "default": 1,
            "description": "Boot the chain this many times in a row (1 to 5). Only the last boot "
                           "is judged; the seeds of the earlier ones enter the ledger first, so "
                           "fresh can see a seed handed over again.",
        },
        "capture": {
            "type": "object",
            "additionalProperties": False,
            "description": "What the runner looks at besides the guest's own report.",
            "properties": {
                "seed_in_flight": {
                    "type": "boolean",
                    "default": True,
                    "description": "Stop the guest where each kernel is entered (QEMU's gdbstub) "
                                   "and read the seed handed over, for the fresh check. Off: "
                                   "fresh is not judged, and seed: consumed does not imply it.",
                },
                "ram_search": {
                    "type": "boolean",
                    "default": False,
                    "description": "After each layer reported, search its RAM for every seed "
                                   "caught so far, for the lingering check (needs seed_in_flight). "
                                   "Off by default (it costs 5 to 15% of a layer's wall time); "
                                   "always on in matrix cells.",
                },
            },
        },
        "layers": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LAYERS,
            "description": f"The chain, 1 to {MAX_LAYERS} kernels: layer 1 is booted by QEMU, "
                           "each later one by kexec from the layer before it.",
            "prefixItems": [{"$ref": "#/$defs/first_layer"}],
            "items": {"$ref": "#/$defs/kexec_layer"},
        },
    },
    "$defs": {
        "first_layer": _layer(first=True),
        "kexec_layer": _layer(first=False),
    },
}


def render() -> str:
    """SCHEMA as the text of scenarios/schema.json."""
    return json.dumps(SCHEMA, indent=2, sort_keys=True) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
