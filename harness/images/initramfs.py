# SPDX-License-Identifier: GPL-2.0-only
"""Images for a scenario: each layer's kernel and initramfs, and the chain disk.

Layer N's initramfs holds busybox, kexec-tools, the agent as /init, the kernel
modules it needs and a small config that says where on the chain disk layer N+1's
kernel and initramfs are (harness/images/chaindisk.py), so one QEMU boot carries the
whole chain and each layer carries only its own payload. Images are made last layer
first (a layer's config names its next layer's extents, which the disk lays out in
that order); every initramfs and the disk are cache entries keyed by the hash of
everything in them, so a warm run builds nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import shutil
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.images import chaindisk
from harness.images import cpio
from harness.images import debian
from harness.images import kmod
from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.images.cache import Cache, sha256_file
from harness.errors import ImageError
from harness.images import recipes
from harness.paths import IMAGES
from harness.scenario.model import Layer, Scenario

_RECIPE = recipes.initramfs()          # images/initramfs.yaml says what a layer carries

def base_cmdline(arch: str = DEFAULT) -> str:
    """Every kernel's first options: the architecture's console, then the recipe's base."""
    return f"{_RECIPE.data['cmdline']['console'][arch]} {_RECIPE.data['cmdline']['base']}"


BASE_CMDLINE = base_cmdline()
CHANNEL_MODULES = {arch: tuple(names) for arch, names in _RECIPE.data["channel_modules"].items()}
INITRD_NAME = "initrd.cpio"   # uncompressed: cheaper under TCG than any decompressor
CRASH_CMDLINE = _RECIPE.data["cmdline"]["crash_child"]
CRASHKERNEL = _RECIPE.data["cmdline"]["crashkernel"]
RNG_MODULES = {bus: tuple(names) for bus, names in _RECIPE.data["kernel_modules"].items()}
CHAIN_DISK_SERIAL = _RECIPE.data["chain_disk"]["serial"]
DISK_MODULES = {bus: tuple(names) for bus, names in _RECIPE.data["chain_disk"]["kernel_modules"].items()}
MODULES_DIR = "seedchain/modules"
DIGEST_SUFFIX = ".sha256"     # beside each initramfs in its cache entry: its digest, for the chain disk


@dataclass(frozen=True)
class LayerImage:
    layer: Layer
    kernel: debian.KernelImage
    userland: debian.Userland
    initrd: Path
    cmdline: str               # the full kernel command line this layer boots with
    chain_disk: Path | None = None   # the chain's disk (the same for every layer; None for one layer)
    modules: tuple[kmod.Module, ...] = ()   # the kernel modules its initramfs carries
    disk_modules: tuple[str, ...] = ()        # their paths there that drive the chain disk, in insmod order


def cmdline_for(layer: Layer, nxt: Layer | None = None, machine_options: str = "",
                arch: str = DEFAULT) -> str:
    """The layer's full kernel command line: the harness's options, what the machine
    type needs, a crash kernel's options when it is one, crashkernel= when the next
    layer is a crash kernel (unless the scenario gives its own), then the scenario's."""
    words = layer.cmdline.split()
    parts = [base_cmdline(arch), machine_options]
    if layer.loader == "kexec_crash":
        parts += [opt for opt in CRASH_CMDLINE.split() if opt not in words]
    if nxt is not None and nxt.loader == "kexec_crash" \
            and not any(w.startswith("crashkernel=") for w in words):
        parts.append(CRASHKERNEL)
    parts.append(layer.cmdline)
    return " ".join(p for p in parts if p).strip()


def _suite(userland_spec: str, where: str) -> str:
    if not userland_spec.startswith("debian:"):
        raise ImageError(f"userland {userland_spec!r} is not of the form debian:SUITE", where=where)
    return userland_spec.split(":", 1)[1]


def layer_conf(layer: Layer, nxt: Layer | None, next_cmdline: str | None,
               modules: tuple[str, ...] = (), disk_modules: tuple[str, ...] = (),
               next_images: tuple[chaindisk.Extent, chaindisk.Extent] | None = None) -> bytes:
    """The agent's config: shell assignments, every value quoted. next_cmdline is the
    one build_chain computed for the next layer (it depends on the layer after that
    and on the machine, so it is not derived again here). MODULES lists the initramfs
    paths of kernel modules to insmod, in order, before the report; DISK_MODULES those
    that drive the chain disk, loaded after it. NEXT_KERNEL and NEXT_INITRD are the next
    layer's extents on the disk whose serial is CHAIN_DISK: 'OFFSET SIZE SHA256'."""
    lines = [f"LAYER={layer.index}",
             f"NEXT_LOADER={shlex.quote(nxt.loader) if nxt else ''}",
             f"NEXT_CMDLINE={shlex.quote(next_cmdline) if nxt and next_cmdline is not None else ''}"]
    if modules:
        lines.append(f"MODULES={shlex.quote(' '.join(modules))}")
    if nxt is not None and next_images is not None:
        kernel, initrd = next_images
        lines += [f"CHAIN_DISK={shlex.quote(CHAIN_DISK_SERIAL)}",
                  f"NEXT_KERNEL={shlex.quote(kernel.conf())}", f"NEXT_INITRD={shlex.quote(initrd.conf())}"]
        if disk_modules:
            lines.append(f"DISK_MODULES={shlex.quote(' '.join(disk_modules))}")
    return ("\n".join(lines) + "\n").encode()


def rng_modules(scenario: Scenario, layer: Layer, cache: Cache) -> list[kmod.Module]:
    """The kernel modules the layer needs: the agent's channel where the architecture
    needs them (CHANNEL_MODULES), then the scenario's RNG device (none unless qemu.rng is
    virtio). A kernel given as a file has no module tree: it must have them built in."""
    names = list(CHANNEL_MODULES.get(scenario.arch, ()))
    if scenario.qemu.rng == "virtio":
        bus = get_arch(scenario.arch).rng_bus(scenario.qemu.machine)
        names += [n for n in RNG_MODULES[bus] if n not in names]
    if not names:
        return []
    tree = debian.kernel_modules(layer.kernel, cache, scenario.arch)
    if tree is None:
        return []
    return kmod.closure(tree, names)


def disk_modules(scenario: Scenario, layer: Layer, cache: Cache, loaded: Sequence[kmod.Module]) -> list[kmod.Module]:
    """The kernel modules that drive the chain disk, less those `loaded` already (none
    for a kernel given as a file: it must have them built in)."""
    tree = debian.kernel_modules(layer.kernel, cache, scenario.arch)
    if tree is None:
        return []
    names = {m.name for m in loaded}
    bus = get_arch(scenario.arch).rng_bus(scenario.qemu.machine)
    return [m for m in kmod.closure(tree, list(DISK_MODULES[bus])) if m.name not in names]


@dataclasses.dataclass(frozen=True)
class Agent:
    """The guest agent: /init, the same for every architecture, and the architecture's
    part, which /init sources as /seedchain/arch.sh."""
    init: Path
    arch: Path

    def digest(self) -> str:
        return hashlib.sha256(f"{sha256_file(self.init)} {sha256_file(self.arch)}".encode()).hexdigest()


def agent(arch: str = DEFAULT) -> Agent:
    """The guest agent of an architecture (images/initramfs.yaml's `agent:` map)."""
    parts = _RECIPE.data["agent"]
    if arch not in parts["arch"]:
        raise ImageError(f"{_RECIPE.path} names no guest agent for arch {arch}", where=str(_RECIPE.path),
                         hint=f"add `{arch}: agent/{arch}.sh` under agent.arch") from None
    found = Agent(init=IMAGES / parts["init"], arch=IMAGES / parts["arch"][arch])
    for path in (found.init, found.arch):
        if not path.is_file():
            raise ImageError(f"the guest agent of arch {arch}, {path}, is missing", where=str(_RECIPE.path),
                             hint="restore it with git") from None
    return found



def _applet_links(listing: Sequence[str], present: set[str]) -> list[cpio.Entry]:
    """busybox's applets (`busybox --list-full`, harness.images.debian.userland) as symlinks
    made here: `busybox --install` at boot costs the agent ~0.3 s per layer under TCG
    (measured), a third of its own time."""
    entries, dirs = [], set()
    for path in sorted(set(listing)):
        path = path.strip("/")
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if path in present or not parent:
            continue
        if parent not in present and parent not in dirs:
            dirs.add(parent)
            entries.append(cpio.directory(parent))
        entries.append(cpio.symlink(path, "/bin/busybox"))
    # Parents before children: the kernel's unpacker makes no missing directories.
    return sorted(entries, key=lambda e: not stat.S_ISDIR(e.mode))


def _write_initrd(out_dir: Path, userland: debian.Userland, conf: bytes,
                  modules: Sequence[kmod.Module] = (), agent_files: Agent | None = None) -> None:
    parts = agent_files or agent(userland.arch)
    entries = cpio.tree(userland.root)
    names = {e.path for e in entries}
    for d in ("bin", "dev", "proc", "sys", "tmp", "seedchain", "usr"):
        if d not in names:
            entries.append(cpio.directory(d))
            names.add(d)
    entries += _applet_links(userland.applets, names)
    entries += [
        cpio.chardev("dev/console", 5, 1),     # the kernel opens it for init's stdio
        cpio.file("init", source=parts.init, perm=0o755),
        cpio.file("seedchain/arch.sh", source=parts.arch, perm=0o644),
        cpio.file("seedchain/layer.conf", data=conf),
    ]
    if modules:
        entries.append(cpio.directory(MODULES_DIR))
        entries += [cpio.file(f"{MODULES_DIR}/{m.name}.ko", data=m.data) for m in modules]
    with open(out_dir / INITRD_NAME, "wb") as out:
        cpio.write(out, entries)
    (out_dir / (INITRD_NAME + DIGEST_SUFFIX)).write_text(sha256_file(out_dir / INITRD_NAME) + "\n")


def padded(kernel: debian.KernelImage, mib: int, cache: Cache, where: str) -> debian.KernelImage:
    """The kernel file with zero bytes appended up to `mib` MiB (boot loaders load the
    whole file; the kernel never reads past its own image)."""
    size = mib << 20
    have = kernel.path.stat().st_size
    if have > size:
        raise ImageError(f"the kernel is {have / 2**20:.1f} MiB, more than pad_kernel: {mib}",
                         where=where, hint="give a pad_kernel larger than the kernel file, or 0")

    def write(out: Path) -> None:
        with open(kernel.path, "rb") as src, open(out / kernel.path.name, "wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.truncate(size)

    entry = cache.build("kernel-padded", ["padded/v1", sha256_file(kernel.path), str(size)], write)
    return dataclasses.replace(kernel, path=entry / kernel.path.name, spec=f"{kernel.spec} padded to {mib} MiB")


def build_chain(scenario: Scenario, cache: Cache) -> list[LayerImage]:
    """Kernels, userlands and nested initramfs images for every layer, layer 1 first."""
    kernels: dict[str | tuple[str, int], debian.KernelImage] = {}    # by spec, or (spec, padding)
    userlands: dict[str, debian.Userland] = {}
    for layer in scenario.layers:
        where = f"{scenario.path}:{layer.line}: layer {layer.index}"
        if layer.kernel not in kernels:
            try:
                kernels[layer.kernel] = debian.resolve_kernel(layer.kernel, cache, scenario.arch)
            except ImageError as exc:
                exc.where = where       # the message names the file or package itself
                raise
        if layer.pad_kernel and (layer.kernel, layer.pad_kernel) not in kernels:
            kernels[layer.kernel, layer.pad_kernel] = padded(kernels[layer.kernel], layer.pad_kernel, cache, where)
        suite = _suite(layer.userland, where)
        if suite not in userlands:
            userlands[suite] = debian.userland(suite, cache, scenario.arch)

    agent_files = agent(scenario.arch)
    agent_digest = agent_files.digest()
    layers = scenario.layers
    machine_options = get_arch(scenario.arch).machine_cmdline(scenario.qemu.machine)
    cmdlines = [cmdline_for(layer, layers[i + 1] if i + 1 < len(layers) else None, machine_options,
                            scenario.arch)
                for i, layer in enumerate(layers)]
    modules: dict[str, tuple[list[kmod.Module], list[kmod.Module]]] = {}
    digests: dict[Path, str] = {}      # a kernel file is hashed once per build, however many layers boot it
    layout = chaindisk.Layout()
    images: list[LayerImage] = []
    next_images: tuple[chaindisk.Extent, chaindisk.Extent] | None = None
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        next_layer = layers[i + 1] if i + 1 < len(layers) else None
        kernel = kernels[(layer.kernel, layer.pad_kernel) if layer.pad_kernel else layer.kernel]
        userland = userlands[_suite(layer.userland, "")]
        if layer.kernel not in modules:
            rng = rng_modules(scenario, layer, cache)
            modules[layer.kernel] = rng, disk_modules(scenario, layer, cache, rng)
        rng, disk = modules[layer.kernel]
        mods = rng + disk if next_layer else rng
        paths = tuple(f"/{MODULES_DIR}/{m.name}.ko" for m in rng)
        disk_paths = tuple(f"/{MODULES_DIR}/{m.name}.ko" for m in disk)
        conf = layer_conf(layer, next_layer, cmdlines[i + 1] if next_layer else None, paths,
                          disk_paths, next_images)
        key: list[str | bytes] = ["initrd/v2", agent_digest, str(userland.root), conf]
        if scenario.arch != DEFAULT:
            key.append(scenario.arch)
        key += [hashlib.sha256(m.data).hexdigest() for m in mods]
        entry = cache.build("initrd", key,
                            functools.partial(_write_initrd, userland=userland, conf=conf, modules=mods,
                                              agent_files=agent_files))
        image = LayerImage(layer=layer, kernel=kernel, userland=userland,
                           initrd=entry / INITRD_NAME, cmdline=cmdlines[i], modules=tuple(mods),
                           disk_modules=disk_paths if next_layer else ())
        images.insert(0, image)
        if i > 0:      # layer 1 comes from QEMU itself; every other layer from the disk
            if kernel.path not in digests:
                digests[kernel.path] = sha256_file(kernel.path)
            next_images = (layout.add(kernel.path, digests[kernel.path]),
                           layout.add(image.initrd, (entry / (INITRD_NAME + DIGEST_SUFFIX)).read_text().strip()))
    chain_disk = chaindisk.build(layout, cache)
    return [dataclasses.replace(image, chain_disk=chain_disk) for image in images]
