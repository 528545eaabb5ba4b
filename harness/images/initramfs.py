"""Images for a scenario: each layer's kernel and an initramfs that nests the rest.

Layer N's initramfs holds busybox, kexec-tools, the agent as /init, a small config,
and layer N+1's kernel and initramfs, so one QEMU boot carries the whole chain. It
is built last layer first; every initramfs is a cache entry keyed by the hash of
everything in it, so a warm run builds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
MODULES_DIR = "seedchain/modules"


@dataclass(frozen=True)
class LayerImage:
    layer: Layer
    kernel: debian.KernelImage
    userland: debian.Userland
    initrd: Path
    cmdline: str               # the full kernel command line this layer boots with


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
               modules: tuple[str, ...] = ()) -> bytes:
    """The agent's config: shell assignments, every value quoted. next_cmdline is the
    one build_chain computed for the next layer (it depends on the layer after that
    and on the machine, so it is not derived again here). MODULES lists the initramfs
    paths of kernel modules to insmod, in order, before the report."""
    lines = [f"LAYER={layer.index}",
             f"NEXT_LOADER={shlex.quote(nxt.loader) if nxt else ''}",
             f"NEXT_CMDLINE={shlex.quote(next_cmdline) if nxt else ''}"]
    if modules:
        lines.append(f"MODULES={shlex.quote(' '.join(modules))}")
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


def agent(arch: str = DEFAULT) -> Path:
    """The guest agent of an architecture (images/initramfs.yaml's `agent:` map)."""
    try:
        path = IMAGES / _RECIPE.data["agent"][arch]
    except KeyError:
        raise ImageError(f"{_RECIPE.path} names no guest agent for arch {arch}", where=str(_RECIPE.path),
                         hint=f"add `{arch}: agent/{arch}.sh` under agent:") from None
    if not path.is_file():
        raise ImageError(f"the guest agent of arch {arch}, {path}, is missing", where=str(_RECIPE.path),
                         hint="restore it with git") from None
    return path



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
                  nxt: "LayerImage | None", modules: "Sequence[kmod.Module]" = (),
                  agent_file: Path | None = None) -> None:
    entries = cpio.tree(userland.root)
    names = {e.path for e in entries}
    for d in ("bin", "dev", "proc", "sys", "tmp", "seedchain", "usr"):
        if d not in names:
            entries.append(cpio.directory(d))
            names.add(d)
    entries += _applet_links(userland.applets, names)
    entries += [
        cpio.chardev("dev/console", 5, 1),     # the kernel opens it for init's stdio
        cpio.file("init", source=agent_file or agent(userland.arch), perm=0o755),
        cpio.file("seedchain/layer.conf", data=conf),
    ]
    if modules:
        entries.append(cpio.directory(MODULES_DIR))
        entries += [cpio.file(f"{MODULES_DIR}/{m.name}.ko", data=m.data) for m in modules]
    if nxt is not None:
        entries += [cpio.directory("seedchain/next"),
                    cpio.file("seedchain/next/bzImage", source=nxt.kernel.path),
                    cpio.file("seedchain/next/initrd", source=nxt.initrd)]
    with open(out_dir / INITRD_NAME, "wb") as out:
        cpio.write(out, entries)


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
    kernels = {}
    userlands = {}
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

    agent_file = agent(scenario.arch)
    agent_digest = sha256_file(agent_file)
    layers = scenario.layers
    machine_options = get_arch(scenario.arch).machine_cmdline(scenario.qemu.machine)
    cmdlines = [cmdline_for(layer, layers[i + 1] if i + 1 < len(layers) else None, machine_options,
                            scenario.arch)
                for i, layer in enumerate(layers)]
    modules: dict[str, list[kmod.Module]] = {}
    images: list[LayerImage] = []
    nxt: LayerImage | None = None
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        next_layer = layers[i + 1] if i + 1 < len(layers) else None
        kernel = kernels[(layer.kernel, layer.pad_kernel) if layer.pad_kernel else layer.kernel]
        userland = userlands[_suite(layer.userland, "")]
        if layer.kernel not in modules:
            modules[layer.kernel] = rng_modules(scenario, layer, cache)
        mods = modules[layer.kernel]
        conf = layer_conf(layer, next_layer, cmdlines[i + 1] if next_layer else None,
                          tuple(f"/{MODULES_DIR}/{m.name}.ko" for m in mods))
        key = ["initrd/v1", agent_digest, str(userland.root), conf]
        if scenario.arch != DEFAULT:
            key.append(scenario.arch)       # x86_64's images keep the keys they had
        key += [hashlib.sha256(m.data).hexdigest() for m in mods]
        if nxt is not None:
            key += [sha256_file(nxt.kernel.path), str(nxt.initrd)]
        entry = cache.build("initrd", key,
                            lambda out, u=userland, c=conf, n=nxt, m=mods: _write_initrd(out, u, c, n, m, agent_file))
        image = LayerImage(layer=layer, kernel=kernel, userland=userland,
                           initrd=entry / INITRD_NAME, cmdline=cmdlines[i])
        images.insert(0, image)
        nxt = image
    return images
