# SPDX-License-Identifier: GPL-2.0-only
"""The bare baseline: the harness's kernels and userland, no agent, no QMP, plain QEMU.

Each layer's initramfs holds the same busybox and kexec-tools tree as the
harness's (from the same cache entries), the same directories and kernel modules,
and the next layer's kernel and initramfs come from a chain disk laid out the same
way (harness.images.chaindisk, last layer first). Only /init differs: a short
script that mounts proc, sys and dev, prints one marker line, then copies the next
layer's images off the disk and checks them as the agent does, `kexec -l` +
`kexec -e` into the next layer, or powers off after the last. QEMU runs with
harness.qemu.base_args, the chain disk and the console to a file; a boot is timed
from launch until QEMU exits.

Variants for the options benchmark: the initramfs compression (each layer's,
with the host tools), text added to every kernel command line, and the -machine
type.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from harness.arch import DEFAULT, get as get_arch
from harness.images import chaindisk, cpio
from harness.images import qemu_builds
from harness.images.cache import Cache, sha256_file
from harness.images.initramfs import CHAIN_DISK_SERIAL, MODULES_DIR, LayerImage
from harness.scenario.model import QemuConfig
from harness.boot.qemu import base_args
from harness.proc import die_with_parent

LAYOUT = "bench-baseline/v2"       # bump when the image recipe below changes
INITRD = "initrd"
INFO = "build.json"
MARKER = "bench-init: layer"
MARKER_RE = re.compile(rb"bench-init: layer (\d+)\b")

# How each codec is produced on the host (stdin -> stdout). The kernel unpacks
# all of them when built with the matching CONFIG_RD_* (Debian's kernels are):
# xz needs CRC32 (or no) integrity checks, lz4 the legacy frame format.
CODECS: dict[str, list[str] | None] = {
    "none": None,
    "gzip": ["gzip", "-n", "-c"],
    "xz": ["xz", "--check=crc32", "-c"],
    "zstd": ["zstd", "-q", "-c"],
    "lz4": ["lz4", "-l", "-c"],
}
KEXEC_MODE = {"kexec_file_load": "-s", "kexec_load": "-c"}

_INIT = """#!/bin/sh
# seedchain bench baseline, layer {layer}: no agent, no report, no handshake.
export PATH=/bin:/sbin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "{marker} {layer}" >/dev/console
if [ -n {has_next} ]; then
	for module in {modules}; do busybox insmod "$module"; done
	disk="" tries=50
	while [ $tries -gt 0 ]; do
		for dev in /sys/block/*; do
			[ -e "$dev/serial" ] || continue
			read -r serial <"$dev/serial"   # no newline at its end: read says 1, serial is set
			[ "$serial" = {serial} ] && disk=/dev/${{dev##*/}}
		done
		[ -n "$disk" ] && [ -b "$disk" ] && break
		disk="" tries=$((tries - 1))
		busybox sleep 0.1
	done
	busybox mkdir -p /tmp/next
	take() {{
		busybox dd if="$disk" of="$4" bs=1M iflag=skip_bytes,fullblock skip="$1" \\
			count=$((($2 + 1048575) / 1048576)) 2>/dev/null && busybox truncate -s "$2" "$4" &&
			echo "$3  $4" | busybox sha256sum -c -s
	}}
	take {kernel} /tmp/next/bzImage && take {initrd} /tmp/next/initrd &&
		kexec {mode} -l /tmp/next/bzImage --initrd=/tmp/next/initrd --command-line={cmdline} \\
		|| echo "bench-init: loading layer {next_layer} failed" >/dev/console
	busybox rm -rf /tmp/next
	kexec -e
	echo "bench-init: kexec -e returned" >/dev/console
fi
busybox poweroff -f
"""


def init_script(layer: int, loader: str | None, next_cmdline: str,
                next_images: tuple[chaindisk.Extent, chaindisk.Extent] | None = None,
                modules: tuple[str, ...] = ()) -> bytes:
    """The /init of one baseline layer; loader None for the last layer. next_images: the
    next layer's kernel and initramfs on the chain disk; modules: what drives the disk."""
    if loader is not None and loader not in KEXEC_MODE:
        raise ValueError(f"the baseline cannot start a layer with {loader}")
    kernel, initrd = next_images or (chaindisk.Extent(0, 0, ""), chaindisk.Extent(0, 0, ""))
    return _INIT.format(layer=layer, marker=MARKER, next_layer=layer + 1,
                        has_next=shlex.quote("yes" if loader else ""),
                        mode=KEXEC_MODE.get(loader or "", ""), serial=shlex.quote(CHAIN_DISK_SERIAL),
                        modules=" ".join(shlex.quote(m) for m in modules),
                        kernel=f"{kernel.offset} {kernel.size} {kernel.sha256}",
                        initrd=f"{initrd.offset} {initrd.size} {initrd.sha256}",
                        cmdline=shlex.quote(next_cmdline)).encode()


@dataclass(frozen=True)
class PlainLayer:
    index: int
    kernel: Path
    initrd: Path
    cmdline: str
    raw_bytes: int          # the initramfs as cpio
    bytes: int              # as QEMU or kexec loads it (compressed or not)
    compress_seconds: float  # host time to compress it (0 for "none"), when it was built
    chain_disk: Path | None = None   # the later layers' images (the same for every layer)


def _entries(image: LayerImage, script: bytes) -> list[cpio.Entry]:
    # The same tree as harness.images._write_initrd, with our /init and no layer.conf.
    entries = cpio.tree(image.userland.root)
    names = {e.path for e in entries}
    for d in ("bin", "dev", "proc", "sys", "tmp", "seedchain"):
        if d not in names:
            entries.append(cpio.directory(d))
    if "bin/sh" not in names:
        entries.append(cpio.symlink("bin/sh", "busybox"))
    entries += [cpio.chardev("dev/console", 5, 1), cpio.file("init", data=script, perm=0o755)]
    if image.modules:
        entries.append(cpio.directory(MODULES_DIR))
        entries += [cpio.file(f"{MODULES_DIR}/{m.name}.ko", data=m.data) for m in image.modules]
    return entries


def _write(out_dir: Path, entries: list[cpio.Entry], codec: str) -> None:
    command = CODECS[codec]
    raw = out_dir / (INITRD if command is None else "initrd.cpio.tmp")
    with open(raw, "wb") as out:
        cpio.write(out, entries)
    raw_bytes = raw.stat().st_size
    seconds = 0.0
    if command is not None:
        started = time.monotonic()
        with open(raw, "rb") as src, open(out_dir / INITRD, "wb") as dst:
            subprocess.run(command, stdin=src, stdout=dst, stderr=subprocess.PIPE, check=True)
        seconds = time.monotonic() - started
        raw.unlink()
    info = {"codec": codec, "raw_bytes": raw_bytes, "bytes": (out_dir / INITRD).stat().st_size,
            "compress_seconds": round(seconds, 3), "sha256": sha256_file(out_dir / INITRD)}
    (out_dir / INFO).write_text(json.dumps(info) + "\n")


def build_plain_chain(images: list[LayerImage], cache: Cache, *, codec: str = "none",
                      extra_cmdline: str = "") -> list[PlainLayer]:
    """Baseline images for a chain the harness built (images from harness.images.build_chain),
    layer 1 first. Entries live in `cache` (the bench's own, not the harness's)."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")

    def cmdline(image: LayerImage) -> str:
        return f"{image.cmdline} {extra_cmdline}".strip()

    chain: list[PlainLayer] = []
    layout = chaindisk.Layout()
    next_images = None
    digests: dict[Path, str] = {}
    for i in range(len(images) - 1, -1, -1):
        image = images[i]
        following = images[i + 1] if i + 1 < len(images) else None
        script = init_script(image.layer.index, following.layer.loader if following else None,
                             cmdline(following) if following else "", next_images, image.disk_modules)
        key: list[str | bytes] = [LAYOUT, codec, script, str(image.userland.root)]
        key += [sha256_file(m.source) for m in image.modules]
        entry = cache.build(f"baseline-{codec}", key,
                            functools.partial(_write, entries=_entries(image, script), codec=codec))
        info = json.loads((entry / INFO).read_text())
        layer = PlainLayer(index=image.layer.index, kernel=image.kernel.path, initrd=entry / INITRD,
                           cmdline=cmdline(image), raw_bytes=info["raw_bytes"], bytes=info["bytes"],
                           compress_seconds=info["compress_seconds"])
        chain.insert(0, layer)
        if i > 0:
            if layer.kernel not in digests:
                digests[layer.kernel] = sha256_file(layer.kernel)
            next_images = (layout.add(layer.kernel, digests[layer.kernel]), layout.add(layer.initrd, info["sha256"]))
    disk = chaindisk.build(layout, cache)
    return [PlainLayer(**{**layer.__dict__, "chain_disk": disk}) for layer in chain]



@dataclass
class PlainRun:
    seconds: float                   # QEMU launch to QEMU exit
    exit_code: int | None
    markers: dict[int, float] = field(default_factory=dict)  # layer -> seconds after launch
    layers: int = 0
    console: str = ""
    problem: str = ""                # why the run does not count ("" when it does)

    @property
    def ok(self) -> bool:
        return not self.problem

    def to_json(self) -> dict:
        return {"seconds": round(self.seconds, 3), "exit_code": self.exit_code, "ok": self.ok,
                "problem": self.problem, "console": self.console,
                "markers": {str(k): round(v, 3) for k, v in self.markers.items()}}


class _MachineExtras(TypedDict, total=False):
    """The arguments of base_args that older versions of it lack."""
    firmware: str
    workdir: Path


def machine_args(q: QemuConfig, *, machine: str, accel: str, workdir: Path) -> list[str]:
    """harness.boot.qemu.base_args as the pipeline calls it (firmware and the run's folder are
    passed when this version of base_args takes them)."""
    params = inspect.signature(base_args).parameters
    extra: _MachineExtras = {}
    if "firmware" in params:
        extra["firmware"] = getattr(q, "firmware", "seabios")
    if "workdir" in params:
        extra["workdir"] = workdir
    return base_args(machine=machine, cpu=q.cpu, memory=q.memory, accel=accel, rng=q.rng, **extra)


def boot_plain(chain: list[PlainLayer], q: QemuConfig, *, accel: str, build: qemu_builds.QemuBuild,
               cache_root: Path, workdir: Path, machine: str | None = None,
               timeout: float = 600.0) -> PlainRun:
    """Boot layer 1 with a plain QEMU command line; time it until QEMU exits."""
    workdir.mkdir(parents=True, exist_ok=True)
    console = workdir / "console.log"
    console.unlink(missing_ok=True)
    first = chain[0]
    args = machine_args(q, machine=machine or q.machine, accel=accel, workdir=workdir)
    if first.chain_disk is not None:
        args += get_arch(DEFAULT).chain_disk_args(machine or q.machine, first.chain_disk, CHAIN_DISK_SERIAL)
    args += [*build.extra_args, "-kernel", str(first.kernel), "-initrd", str(first.initrd),
             "-append", first.cmdline, *q.extra_args, "-serial", f"file:{console}"]
    if any("chardev=agent" in a for a in args):     # a machine wiring the agent's port itself
        args += ["-chardev", "null,id=agent"]
    ro_paths = [first.kernel, first.initrd, *([first.chain_disk] if first.chain_disk else [])]
    command = [*build.command(workdir, cache_root, ro_paths), *args]
    (workdir / "qemu-cmdline.txt").write_text(shlex.join(command) + "\n")
    markers: dict[int, float] = {}
    seen = 0
    with open(workdir / "qemu.log", "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        try:
            while True:
                code = proc.poll()
                now = time.monotonic()
                seen = _scan_markers(console, seen, markers, now - started)
                if code is not None:
                    break
                if now - started > timeout:
                    proc.kill()
                    proc.wait()
                    return PlainRun(now - started, None, markers, len(chain), str(console),
                                    f"no exit within {timeout:.0f} s")
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.monotonic() - started
    _scan_markers(console, seen, markers, seconds)
    run = PlainRun(seconds, code, markers, len(chain), str(console))
    text = console.read_bytes().decode(errors="replace") if console.exists() else ""
    missing = [n for n in range(1, len(chain) + 1) if n not in markers]
    if "Kernel panic" in text:
        run.problem = "kernel panic"
    elif missing:
        run.problem = f"layer(s) {', '.join(map(str, missing))} never ran /init"
    elif "bench-init: loading" in text or "kexec -e returned" in text:
        run.problem = "a kexec failed"
    elif code != 0:
        run.problem = f"QEMU exited with status {code}"
    return run


def _scan_markers(console: Path, offset: int, markers: dict[int, float], at: float) -> int:
    """Note when each layer's marker first shows in the console file; the new offset."""
    try:
        with open(console, "rb") as f:
            f.seek(max(0, offset - 64))          # a marker may straddle two reads
            data = f.read()
    except OSError:
        return offset
    for m in MARKER_RE.finditer(data):
        markers.setdefault(int(m[1]), at)
    return max(0, offset - 64) + len(data)
