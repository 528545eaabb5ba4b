"""Images for a scenario: each layer's kernel and an initramfs that nests the rest.

Layer N's initramfs holds busybox, kexec-tools, the agent as /init, a small config,
and layer N+1's kernel and initramfs, so one QEMU boot carries the whole chain. It
is built last layer first; every initramfs is a cache entry keyed by the hash of
everything in it, so a warm run builds nothing.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import cpio, debian
from .cache import Cache
from .errors import ImageError
from .model import Layer, Scenario

AGENT = Path(__file__).with_name("agent.sh")
# The harness's own options for every kernel: console on ttyS0, and a panic
# reboots at once (QEMU runs with -no-reboot, so it exits and the runner sees it).
BASE_CMDLINE = "console=ttyS0 panic=-1 oops=panic"
INITRD_NAME = "initrd.cpio"   # uncompressed: cheaper under TCG than any decompressor


@dataclass(frozen=True)
class LayerImage:
    layer: Layer
    kernel: debian.KernelImage
    userland: debian.Userland
    initrd: Path
    cmdline: str               # the full kernel command line this layer boots with


def cmdline_for(layer: Layer) -> str:
    return f"{BASE_CMDLINE} {layer.cmdline}".strip()


def _suite(userland_spec: str, where: str) -> str:
    if not userland_spec.startswith("debian:"):
        raise ImageError(f"userland {userland_spec!r} is not of the form debian:SUITE", where=where)
    return userland_spec.split(":", 1)[1]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def layer_conf(layer: Layer, nxt: Layer | None) -> bytes:
    """The agent's config: shell assignments, every value quoted."""
    lines = [f"LAYER={layer.index}",
             f"NEXT_LOADER={shlex.quote(nxt.loader) if nxt else ''}",
             f"NEXT_CMDLINE={shlex.quote(cmdline_for(nxt)) if nxt else ''}"]
    return ("\n".join(lines) + "\n").encode()


def _write_initrd(out_dir: Path, userland: debian.Userland, conf: bytes,
                  nxt: "LayerImage | None") -> None:
    entries = cpio.tree(userland.root)
    names = {e.path for e in entries}
    for d in ("bin", "dev", "proc", "sys", "tmp", "seedchain"):
        if d not in names:
            entries.append(cpio.directory(d))
    if "bin/sh" not in names:
        entries.append(cpio.symlink("bin/sh", "busybox"))
    entries += [
        cpio.chardev("dev/console", 5, 1),     # the kernel opens it for init's stdio
        cpio.file("init", source=AGENT, perm=0o755),
        cpio.file("seedchain/layer.conf", data=conf),
    ]
    if nxt is not None:
        entries += [cpio.directory("seedchain/next"),
                    cpio.file("seedchain/next/bzImage", source=nxt.kernel.path),
                    cpio.file("seedchain/next/initrd", source=nxt.initrd)]
    with open(out_dir / INITRD_NAME, "wb") as out:
        cpio.write(out, entries)


def build_chain(scenario: Scenario, cache: Cache) -> list[LayerImage]:
    """Kernels, userlands and nested initramfs images for every layer, layer 1 first."""
    kernels = {}
    userlands = {}
    for layer in scenario.layers:
        where = f"{scenario.path}:{layer.line}: layer {layer.index}"
        if layer.kernel not in kernels:
            try:
                kernels[layer.kernel] = debian.resolve_kernel(layer.kernel, cache)
            except ImageError as exc:
                exc.where = where       # the message names the file or package itself
                raise
        suite = _suite(layer.userland, where)
        if suite not in userlands:
            userlands[suite] = debian.userland(suite, cache)

    agent_digest = _file_digest(AGENT)
    images: list[LayerImage] = []
    nxt: LayerImage | None = None
    for i in range(len(scenario.layers) - 1, -1, -1):
        layer = scenario.layers[i]
        next_layer = scenario.layers[i + 1] if i + 1 < len(scenario.layers) else None
        kernel = kernels[layer.kernel]
        userland = userlands[_suite(layer.userland, "")]
        conf = layer_conf(layer, next_layer)
        key = ["initrd/v1", agent_digest, str(userland.root), conf]
        if nxt is not None:
            key += [_file_digest(nxt.kernel.path), str(nxt.initrd)]
        entry = cache.build("initrd", key,
                            lambda out, u=userland, c=conf, n=nxt: _write_initrd(out, u, c, n))
        image = LayerImage(layer=layer, kernel=kernel, userland=userland,
                           initrd=entry / INITRD_NAME, cmdline=cmdline_for(layer))
        images.insert(0, image)
        nxt = image
    return images
