# SPDX-License-Identifier: GPL-2.0-only
"""The validated scenario model: what the loader produces and every later stage reads.

Plain frozen dataclasses, so a scenario can be hashed into cache keys and passed
to pytest-xdist workers unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from harness.errors import SeedchainError

# The checks, in the order they are shown. Each is answered per layer with
# True, False or None (None: not applicable, e.g. "zeroed" when nothing came).
CHECKS = ("booted", "received", "fresh", "zeroed_sysfs", "zeroed_ram", "credited", "exposed",
          "lingering", "passed_on", "seed_file_refreshed")

# Shorthands for `expect: {seed: ...}`; explicit check keys override them.
SEED_PRESETS: dict[str, dict[str, bool]] = {
    # received, fresh (when caught in flight), zeroed in sysfs and RAM, credited, not readable by users
    "consumed": {"received": True, "fresh": True, "zeroed_sysfs": True, "zeroed_ram": True,
                 "credited": True, "exposed": False},
    # no SETUP_RNG_SEED entry reached this layer
    "absent": {"received": False, "exposed": False},
    # received by a kernel that ignores it (< 6.0): kept, uncredited, readable
    "exposed": {"received": True, "zeroed_sysfs": False, "zeroed_ram": False,
                "credited": False, "exposed": True},
}

# kexec_crash: `kexec -s -p` loads a crash kernel, then the parent is crashed on
# purpose (sysrq c); its seed is made at load time, not at the crash.
LOADERS = ("kexec_file_load", "kexec_load", "kexec_crash")
RNG_DEVICES = ("none", "virtio")
BOOTLOADERS = ("systemd-boot",)      # each has a recipe in images/bootloader/NAME.yaml


@dataclass(frozen=True)
class ArchDefaults:
    """What a scenario's `arch` decides before anything is built: the firmwares it may ask
    for (harness/arch/NAME.py's FIRMWARES; a test keeps the two equal), the machine, CPU and
    firmware a scenario gets when it names none, and the machine types of its QEMU."""

    firmwares: tuple[str, ...]
    machine: str
    cpu: str
    firmware: str
    machines: str                # regex of the machine types (before any ',options')
    machine_words: str           # those in words, for messages


ARCHES: dict[str, ArchDefaults] = {
    "x86_64": ArchDefaults(firmwares=("seabios", "ovmf"), machine="q35", cpu="max", firmware="seabios",
                           machines=r"pc|q35|isapc|microvm|xenfv|xenpv|pc-(i440fx|q35)-[0-9.]+",
                           machine_words="q35, pc, pc-i440fx-7.2, pc-q35-7.1 or microvm"),
    # -cpu max,pauth-impdef=on: pointer authentication's QARMA5 makes plain max four times
    # slower under TCG (docs/facts.md#debian-arm64-kernels); virt is the one machine whose
    # device tree QEMU writes the rng-seed into.
    "aarch64": ArchDefaults(firmwares=("none", "uefi"), machine="virt", cpu="max,pauth-impdef=on",
                            firmware="none", machines=r"virt|virt-[0-9.]+", machine_words="virt or virt-7.2"),
}
DEFAULT_ARCH = "x86_64"
FIRMWARES = tuple(dict.fromkeys(f for a in ARCHES.values() for f in a.firmwares))  # every arch's


@dataclass(frozen=True)
class Expect:
    """Expected outcome per check; None means "not checked"."""

    booted: bool | None = True
    received: bool | None = None
    fresh: bool | None = None
    zeroed_sysfs: bool | None = None
    zeroed_ram: bool | None = None
    credited: bool | None = None
    exposed: bool | None = None
    lingering: bool | None = None
    passed_on: bool | None = None
    seed_file_refreshed: bool | None = None

    def as_dict(self) -> dict[str, bool | None]:
        return {name: getattr(self, name) for name in CHECKS}

    @classmethod
    def from_mapping(cls, data: dict, caught: bool = True) -> Expect:
        """Build from a scenario's `expect:` mapping (already schema-checked). With the
        seed not caught in flight (`capture: {seed_in_flight: false}`) a preset says
        nothing about `fresh`, which then cannot be judged."""
        values: dict[str, bool | None] = {}
        preset = data.get("seed")
        if preset is not None:
            values.update(SEED_PRESETS[preset])
            if not caught:
                values.pop("fresh", None)
        for name in CHECKS:
            if name in data:
                values[name] = data[name]
        return replace(cls(), **values)


@dataclass(frozen=True)
class QemuConfig:
    build: str = "system"        # "system" (on PATH), "debian:SUITE" (that suite's QEMU), or a binary's path
    machine: str = "q35"         # the defaults of x86_64; another arch's come from ARCHES
    cpu: str = "max"             # "max" has RDRAND; "qemu64" has none
    memory: int = 2048           # MiB
    rng: str = "none"            # "virtio" adds -device virtio-rng-pci
    firmware: str = "seabios"    # "ovmf": UEFI, the kernel's EFI stub installs an EFI RNG seed;
                                 # aarch64: "none" (direct kernel boot) or "uefi"
    accel: str = "auto"          # auto: KVM only when a probe boot proves it works
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Capture:
    """What the runner looks at besides the agent's report."""

    seed_in_flight: bool = True  # stop at each hand-over and read the seed (QEMU's gdbstub)
    ram_search: bool = False     # after each report, search guest RAM for the chain's seeds
                                 # (5 to 15% of a layer's wall time: on in the matrix, else asked for)


@dataclass(frozen=True)
class BootLoader:
    """The boot loader that starts layer 1 from an ESP disk (UEFI only) instead of -kernel."""

    name: str = "systemd-boot"
    suite: str = "debian:trixie"     # the Debian suite its EFI binary comes from
    seed_file: bool = True           # the host writes a fresh seed file on the ESP before each boot
    system_token: bool = True        # LoaderSystemToken is set in the run's OVMF variable store
    line: int = 0                    # line in the scenario file, for messages


# Kernel specs a layer may name instead of a file: Debian's package, or a kernel built from
# Debian's linux-source package (images/kernel/debian-source.yaml).
KERNEL_SPECS = ("debian:", "debian-source:")


def named_kernel(kernel: str) -> bool:
    """Is this a kernel spec (fetched or built by seedchain), not a file of the user's?"""
    return kernel.startswith(KERNEL_SPECS)


@dataclass(frozen=True)
class Layer:
    index: int                   # 1-based; layer 1 is started by QEMU
    kernel: str                  # "debian:SUITE/SERIES", "debian-source:SUITE/SERIES" or a path
                                 # to a bzImage (an Image on aarch64)
    loader: str                  # "qemu" for layer 1, else one of LOADERS
    userland: str = "debian:bookworm"   # where busybox and kexec-tools come from
    cmdline: str = ""            # appended to the harness's own console options
    timeout: float = 120.0       # seconds from the parent's hand-over to this layer's report
    pad_kernel: int = 0          # MiB: the kernel file padded with zeros to this size (0: as it is)
    expect: Expect = field(default_factory=Expect)
    line: int = 0                # line in the scenario file, for messages


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: str                    # the file it came from
    qemu: QemuConfig
    layers: tuple[Layer, ...]
    tags: tuple[str, ...] = ()
    arch: str = DEFAULT_ARCH     # the guest architecture, a key of ARCHES (harness/arch/NAME.py)
    capture: Capture = field(default_factory=Capture)
    repeat: int = 1              # boots in a row; the last is judged, the earlier ones' seeds are in the ledger
    bootloader: BootLoader | None = None    # None: QEMU starts layer 1 itself (-kernel)
    # In a matrix: (axis, label) pairs naming this cell, e.g. (("qemu", "10.0"),).
    cell: tuple[tuple[str, str], ...] = ()
    cell_values: tuple[tuple[str, str], ...] = ()   # (axis, value as in the matrix file)
    qemu_line: int = field(default=0, compare=False)  # line of qemu.build (else qemu:) in the file, for messages

    @property
    def id(self) -> str:
        """kexec-file-2[qemu=10.0,kernel=6.12] in a matrix, the bare name otherwise."""
        if not self.cell:
            return self.name
        return f"{self.name}[{','.join(f'{axis}={label}' for axis, label in self.cell)}]"

    @property
    def slug(self) -> str:
        """The id as a folder name."""
        return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in self.id.replace("[", "@").rstrip("]"))

    def with_overrides(self, *, qemu_build: str | None = None, kernel: str | None = None,
                       layer_kernels: dict[int, str] | None = None,
                       qemu_args: tuple[str, ...] = ()) -> Scenario:
        """The same scenario on a user's QEMU binary and/or kernels (--qemu, --kernel [N=]PATH):
        `kernel` in every layer, `layer_kernels` {layer number: path} in those (over `kernel`);
        `qemu_args` (--qemu-arg, the user's own, unchecked) after the scenario's extra_args."""
        qemu = replace(self.qemu, build=qemu_build) if qemu_build else self.qemu
        if qemu_args:
            qemu = replace(qemu, extra_args=(*qemu.extra_args, *qemu_args))
        layer_kernels = layer_kernels or {}
        absent = sorted(set(layer_kernels) - {layer.index for layer in self.layers})
        if absent:
            n, count = absent[0], len(self.layers)
            raise SeedchainError(f"scenario {self.name} has {count} layer{'s' * (count > 1)}; --kernel "
                                 f"{n}={layer_kernels[n]} names none", where=self.path,
                                 hint=f"number its layers 1 to {count} (1 is the one QEMU boots)")
        layers = tuple(replace(layer, kernel=layer_kernels.get(layer.index, kernel or layer.kernel))
                       for layer in self.layers)
        return replace(self, qemu=qemu, layers=layers)
