# SPDX-License-Identifier: GPL-2.0-only
"""What a kernel file of the user's must have for the harness, checked before it boots.

A kernel given as a path (in the scenario, or `--kernel [N=]PATH`) is checked per
layer for what that layer does with it: its boot header for the loader that starts it
(arch.kexec_problems: kexec_file_load needs boot protocol 2.12 and a 64-bit entry),
and, where the kernel carries its own configuration (CONFIG_IKCONFIG=y), the options
the harness cannot do without. The configuration is gzip data between the markers
IKCFG_ST and IKCFG_ED in the kernel image; in a bzImage that image is the compressed
payload, which is decompressed here only as far as the markers. Whatever is missing
is one error naming each option and the layer that needs it; options that only change
what a check can see become notes; a kernel without an embedded configuration is
checked by its header alone, and a note says why the rest was skipped. The
architecture (the scenario's `arch`) says what a kernel file is: a bzImage on x86_64, an
Image on aarch64 (harness.arch).

Debian's kernels (`debian:SUITE/SERIES`) are not checked: they have all of it; nor are the
kernels built from Debian's source (`debian-source:SUITE/SERIES`), whose build checks its
.config against the recipe's fragment.
"""

from __future__ import annotations

import bz2
import lzma
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.errors import ImageError
from harness.scenario.model import Layer, Scenario, named_kernel

START, END = b"IKCFG_ST", b"IKCFG_ED"
CHUNK = 1 << 20                 # compressed bytes fed at a time
OUT_CHUNK = 1 << 20             # decompressed bytes taken at a time
# What a kernel's payload may decompress to before the search gives up. The payload is
# the kernel (vmlinux) itself: Debian's amd64 6.1 and 7.2 payloads come to 62 and 59 MiB,
# and the boot header's init_size (the memory the kernel's own decompressor may fill,
# arch/x86/boot/header.S) says 63 and 60 MiB; 256 MiB leaves room for any configuration
# while a compressed bomb (515 KiB of zstd that inflates to gigabytes) stops here.
MAX_DECOMPRESSED = 256 << 20
MAX_CONFIG_TEXT = 16 << 20      # the embedded .config's text (Debian's: about 260 KiB)
MAX_CONFIG = 1 << 20            # a config.gz is tens of KiB; farther than this, START was a stray match

# What every layer needs, and what a layer needs for the layer after it or for being kexec'd.
EVERY_LAYER = (("SERIAL_8250", "the console on ttyS0 and the agent's reports on ttyS1"),
               ("SERIAL_8250_CONSOLE", "the console on ttyS0"),
               ("DEVTMPFS", "the agent mounts devtmpfs on /dev"),
               ("BLK_DEV_INITRD", "each layer's userland is an initramfs"))
KEXECD = (("RELOCATABLE", "it is started by kexec at an address its parent's loader chooses"),)
LOADS_NEXT = {"kexec_file_load": "KEXEC_FILE", "kexec_crash": "KEXEC_FILE", "kexec_load": "KEXEC"}
# A layer that starts another reads its images off the chain disk; a kernel file brings
# no modules, so the disk's driver must be built in.
DISK_DRIVER = {"pci": ("VIRTIO_BLK", "VIRTIO_PCI"), "mmio": ("VIRTIO_BLK", "VIRTIO_MMIO")}

# Magic numbers of the payload compressions Linux/x86 offers (scripts/Makefile.lib).
_ZSTD, _LZO, _LZ4 = b"(\xb5/\xfd", b"\x89LZO", b"\x02\x21\x4c\x18"
_ERRORS = (EOFError, OSError, ValueError, lzma.LZMAError, zlib.error)   # bz2 raises OSError


@dataclass(frozen=True)
class KernelConfig:
    options: dict[str, str]     # "KEXEC_FILE" -> "y"; "# CONFIG_X is not set" -> "n"

    def enabled(self, name: str) -> bool:
        return self.options.get(name) == "y"


def parse_config(text: str) -> KernelConfig:
    """A .config's text: CONFIG_NAME=VALUE lines and '# CONFIG_NAME is not set' lines."""
    options = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"CONFIG_(\w+)=(.*)", line.strip()):
            options[m[1]] = m[2].strip('"')
        elif m := re.fullmatch(r"# CONFIG_(\w+) is not set", line.strip()):
            options[m[1]] = "n"
    return KernelConfig(options)


def _decompressor(head: bytes):
    """(name, a function from the payload to its decompressed pieces, the errors it raises)
    for the payload's format; the function is None when the format cannot be read here
    (name "": unknown)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip", _zlib_pieces, _ERRORS
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz", lambda p: _pieces(lzma.LZMADecompressor(lzma.FORMAT_XZ), p), _ERRORS
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma", lambda p: _pieces(lzma.LZMADecompressor(lzma.FORMAT_ALONE), p), _ERRORS
    if head.startswith(b"BZh"):
        return "bzip2", lambda p: _pieces(bz2.BZ2Decompressor(), p), _ERRORS
    if head.startswith(_ZSTD):
        try:
            import zstandard
        except ImportError:
            return "zstd (the zstandard package is not installed)", None, ()
        return "zstd", _zstd_pieces, (*_ERRORS, zstandard.ZstdError)
    names = {_LZO: "LZO", _LZ4: "LZ4"}
    return next((n for magic, n in names.items() if head.startswith(magic)), ""), None, ()


# Every decompressor below hands out at most OUT_CHUNK bytes at a time, so a payload
# that inflates a thousandfold (a few hundred KiB of zeros compressed) costs no memory.
def _zlib_pieces(payload: bytes):
    d = zlib.decompressobj(31)
    data = payload
    while not d.eof:
        piece = d.decompress(data, OUT_CHUNK)
        data = d.unconsumed_tail
        if not piece and not data:
            return
        yield piece


def _pieces(d, payload: bytes):
    """lzma and bz2: fed CHUNK bytes when they need input, asked for OUT_CHUNK at a time."""
    offset = 0
    while not d.eof:
        if d.needs_input:
            if offset >= len(payload):
                return
            data, offset = payload[offset:offset + CHUNK], offset + CHUNK
        else:
            data = b""
        yield d.decompress(data, OUT_CHUNK)


def _zstd_pieces(payload: bytes):
    import zstandard
    reader = zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=False)
    produced = False
    while True:
        try:
            piece = reader.read(OUT_CHUNK)
        except zstandard.ZstdError:
            if produced:    # the bzImage payload ends with its size (4 bytes), which is no frame
                return
            raise
        if not piece:
            return
        produced = True
        yield piece


def find_config(image: bytes) -> bytes | None:
    """The gzip data between IKCFG_ST and IKCFG_ED in a (decompressed) kernel image."""
    at = image.find(START)
    while at >= 0:
        end = image.find(END, at + len(START), at + len(START) + MAX_CONFIG)
        data = image[at + len(START):end]
        if end >= 0 and data.startswith(b"\x1f\x8b"):
            return data
        at = image.find(START, at + 1)
    return None


def _search(payload: bytes, pieces) -> bytes | None:
    """Decompress piece by piece until the embedded config is found, the payload ends, or
    MAX_DECOMPRESSED bytes came out (then ValueError: no kernel is that large)."""
    window = b""
    total = 0
    for piece in pieces(payload):
        total += len(piece)
        if total > MAX_DECOMPRESSED:
            raise ValueError(f"it decompresses to more than {MAX_DECOMPRESSED >> 20} MiB, more than any "
                             "kernel's; not read further")
        window += piece
        found = find_config(window)
        if found is not None:
            return found
        at = window.rfind(START)
        keep = len(window) - at if at >= 0 and len(window) - at <= MAX_CONFIG else len(START) - 1
        window = window[-keep:]
    return None


def embedded_config(path: Path, arch: str = DEFAULT) -> tuple[KernelConfig | None, str]:
    """The configuration a kernel file carries, or (None, why it cannot be read). The
    architecture says where the kernel image is in the file: a bzImage's compressed
    payload, or an arm64 Image, which is the file itself, uncompressed."""
    payload, why = get_arch(arch).kernel_payload(path)
    if payload is None:
        return None, why
    # Stored uncompressed (an ELF payload, or an arm64 Image: the file itself), or compressed.
    if payload.startswith(b"\x7fELF") or len(payload) == Path(path).stat().st_size:
        data = find_config(payload)
    else:
        name, pieces, errors = _decompressor(payload[:8])
        if pieces is None:
            return None, (f"its payload is compressed with {name}, which is not read here" if name
                          else f"its payload's format is unknown (starts {payload[:6].hex()})")
        try:
            data = _search(payload, pieces)
        except errors as exc:
            return None, f"its {name} payload could not be decompressed ({exc})"
    if data is None:
        return None, "it has no embedded configuration (CONFIG_IKCONFIG is off or a module)"
    try:
        # A .config is a few hundred KiB; a 1 MiB gzip bomb in its place stops at MAX_CONFIG_TEXT.
        text = zlib.decompressobj(31).decompress(data, MAX_CONFIG_TEXT)
        return parse_config(text.decode(errors="replace")), ""
    except (OSError, EOFError, zlib.error) as exc:
        return None, f"its embedded configuration is not readable gzip data ({exc})"


def needs(layer: Layer, nxt: Layer | None, machine: str = "q35", arch: str = DEFAULT) -> list[tuple[str, str]]:
    """(option, why) that `layer`'s kernel must have, from what the layer does."""
    wanted = list(EVERY_LAYER)
    if layer.loader != "qemu":
        wanted += KEXECD
    if nxt is not None:
        wanted.append((LOADS_NEXT[nxt.loader], f"it loads layer {nxt.index} with {nxt.loader}"))
        wanted += [(name, f"it reads layer {nxt.index}'s kernel and initramfs off the chain disk, "
                          "a virtio block device")
                   for name in DISK_DRIVER[get_arch(arch).rng_bus(machine)]]
    return wanted


def advice(layer: Layer, nxt: Layer | None, config: KernelConfig, release: str,
           seed_in_flight: bool, arch: str = DEFAULT) -> list[str]:
    """Options whose absence does not stop the harness but changes what a check sees."""
    notes = []
    if (config.options.get("RANDOM_TRUST_BOOTLOADER") == "n" and layer.expect.credited
            and "random.trust_bootloader=on" not in layer.cmdline.split()):
        notes.append("CONFIG_RANDOM_TRUST_BOOTLOADER is not set: this kernel credits a boot loader's "
                     "seed only with random.trust_bootloader=on, so expect credited: no")
    version = re.match(r"(\d+)\.(\d+)", release)
    old = version is None or (int(version[1]), int(version[2])) < (6, 8)
    if (nxt is not None and nxt.loader in get_arch(arch).FILE_LOADERS and seed_in_flight and old
            and not config.enabled("DYNAMIC_DEBUG")):
        notes.append(f"CONFIG_DYNAMIC_DEBUG is not set: before 6.8 the kernel logs where it loaded "
                     f"layer {nxt.index} only through dynamic debug, so that seed is not caught in "
                     "flight and fresh cannot be judged")
    return notes


def check_kernels(scenario: Scenario) -> list[str]:
    """Check every layer whose kernel is a file; notes for the user, or an ImageError
    naming every missing piece per layer."""
    notes: list[str] = []
    problems: list[tuple[Layer, str]] = []
    configs: dict[str, tuple[KernelConfig | None, str]] = {}
    layers = scenario.layers
    arch = get_arch(scenario.arch)
    for i, layer in enumerate(layers):
        if named_kernel(layer.kernel):
            continue
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        path = Path(layer.kernel)
        try:
            release, _ = arch.read_kernel(path)
        except ImageError as exc:
            exc.where = f"{scenario.path}:{layer.line}: layer {layer.index}"
            raise
        problems += [(layer, p) for p in arch.kexec_problems(path, layer.loader)]
        if layer.kernel not in configs:
            configs[layer.kernel] = embedded_config(path, scenario.arch)
        config, why = configs[layer.kernel]
        if config is None:
            notes.append(f"layer {layer.index}: {path}: boot header checked; option check skipped: {why}")
            continue
        problems += [(layer, f"CONFIG_{name} is not set ({reason})")
                     for name, reason in needs(layer, nxt, scenario.qemu.machine, scenario.arch)
                     if not config.enabled(name)]
        notes += [f"layer {layer.index}: {note}"
                  for note in advice(layer, nxt, config, release, scenario.capture.seed_in_flight,
                                           scenario.arch)]
    if problems:
        raise _refusal(scenario, problems)
    return notes


def _refusal(scenario: Scenario, problems: list[tuple[Layer, str]]) -> ImageError:
    first = problems[0][0]
    lines = "\n".join(f"    layer {layer.index} ({layer.kernel}): {text}" for layer, text in problems)
    options = sorted({m[1] for _, text in problems if (m := re.match(r"CONFIG_(\w+) is not set", text))})
    hints = []
    if options:
        hints.append("rebuild with " + ", ".join(f"CONFIG_{o}=y" for o in options) + " (e.g. "
                     + "scripts/config " + " ".join(f"-e {o}" for o in options) + "; make olddefconfig)")
    if any(not text.startswith("CONFIG_") for _, text in problems):
        hints.append("kexec_file_load starts only 64-bit bzImages of boot protocol 2.12 or later: "
                     "build a 64-bit kernel, or load this layer with kexec_load")
    return ImageError(f"the kernel file cannot be used in this chain:\n{lines}",
                      where=f"{scenario.path}:{first.line}: layer {first.index}", hint="; ".join(hints))
