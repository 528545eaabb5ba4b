# SPDX-License-Identifier: GPL-2.0-only
"""A user's kernel file checked before it boots: its boot header for the layer's loader,
and the options the harness needs from the configuration it carries (CONFIG_IKCONFIG).

The bzImages here are made by the tests: a setup header, and a payload compressed the
way the kernel's build does it, holding IKCFG_ST + gzip(.config) + IKCFG_ED amid other bytes.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import sys
from pathlib import Path

import pytest

from harness.arch import x86_64
from harness.errors import ImageError
from harness.images import kconfig
from harness.scenario.load import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"
NEEDED = {"SERIAL_8250": "y", "SERIAL_8250_CONSOLE": "y", "DEVTMPFS": "y", "BLK_DEV_INITRD": "y",
          "KEXEC": "y", "KEXEC_FILE": "y", "RELOCATABLE": "y", "IKCONFIG": "y", "DYNAMIC_DEBUG": "y",
          "VIRTIO_BLK": "y", "VIRTIO_PCI": "y", "VIRTIO_MMIO": "y"}


def config_text(**changes: str | None) -> str:
    """A .config: the options the harness needs, changed by `changes` (None: not set)."""
    options = {**NEEDED, "LOCALVERSION": '"-test"', **changes}
    return "#\n# Automatically generated file; DO NOT EDIT.\n#\n" + "".join(
        f"# CONFIG_{name} is not set\n" if value is None else f"CONFIG_{name}={value}\n"
        for name, value in options.items())


def vmlinux(config: str | None, filler: int = 4096) -> bytes:
    """An uncompressed kernel image: ELF magic, other bytes, the embedded config, more bytes."""
    noise = random.Random(filler).randbytes(filler)
    embedded = b"" if config is None else kconfig.START + gzip.compress(config.encode()) + kconfig.END
    return b"\x7fELF" + noise + embedded + noise[::-1]


def compress(data: bytes, how: str) -> bytes:
    size = len(data).to_bytes(4, "little")          # the build appends the uncompressed size
    if how == "xz":                                  # xz --check=crc32 --x86 --lzma2
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                             filters=[{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}]) + size
    if how == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE) + size
    if how == "gzip":
        return gzip.compress(data) + size
    if how == "bzip2":
        return bz2.compress(data) + size
    if how == "zstd":
        zstandard = pytest.importorskip("zstandard")
        return zstandard.ZstdCompressor(level=3).compress(data) + size
    if how == "lz4":
        return b"\x02\x21\x4c\x18" + data
    assert how == "none"
    return data


def bzimage(path: Path, payload: bytes, *, protocol: int = 0x020F, xloadflags: int = 0x7F,
            loadflags: int = 0x01, setup_sects: int = 3, release: bytes = b"6.9.0-test") -> Path:
    """A bzImage: the real-mode part with its setup header, then the protected-mode part
    whose payload_offset/payload_length (0x248, 0x24c) locate the compressed kernel."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = protocol.to_bytes(2, "little")
    setup[0x20E:0x210] = (0x600 - 0x200).to_bytes(2, "little")     # the version string's offset - 0x200
    setup[0x211] = loadflags
    setup[0x236:0x238] = xloadflags.to_bytes(2, "little")
    text = release + b" (me@host) #1 SMP PREEMPT_DYNAMIC\0"
    setup[0x600:0x600 + len(text)] = text
    stub = bytes(0x340)                                             # the decompressor's code
    setup[0x248:0x24C] = len(stub).to_bytes(4, "little")
    setup[0x24C:0x250] = len(payload).to_bytes(4, "little")
    path.write_bytes(bytes(setup) + stub + payload + bytes(64))
    return path


def kernel(tmp_path: Path, name: str = "bzImage", how: str = "xz", filler: int = 4096, **changes) -> Path:
    return bzimage(tmp_path / name, compress(vmlinux(config_text(**changes), filler), how))


# ---------------------------------------------------------------- reading the config

@pytest.mark.parametrize("how", ["xz", "lzma", "gzip", "bzip2", "zstd", "none"])
def test_the_embedded_config_is_read_from_every_payload_format(tmp_path, how):
    config, why = kconfig.embedded_config(kernel(tmp_path, how=how, KEXEC=None))
    assert why == ""
    assert config.enabled("KEXEC_FILE") and config.enabled("SERIAL_8250_CONSOLE")
    assert not config.enabled("KEXEC") and config.options["KEXEC"] == "n"
    assert config.options["LOCALVERSION"] == "-test"


def test_a_config_across_chunk_boundaries_far_into_the_image(tmp_path):
    # 3 MiB of incompressible bytes before the markers: chunks in, wherever they split.
    path = kernel(tmp_path, how="gzip", filler=3 << 20, DEVTMPFS=None)
    assert len(path.read_bytes()) > 2 * kconfig.CHUNK
    config, why = kconfig.embedded_config(path)
    assert why == "" and config.options["DEVTMPFS"] == "n" and config.enabled("RELOCATABLE")


def test_a_stray_start_marker_is_passed_over():
    real = kconfig.START + gzip.compress(b"CONFIG_KEXEC=y\n") + kconfig.END
    image = b"\x7fELF" + kconfig.START + b"not gzip" + kconfig.END + b"x" * 100 + real
    assert gzip.decompress(kconfig.find_config(image)) == b"CONFIG_KEXEC=y\n"
    assert kconfig.find_config(b"\x7fELF" + kconfig.START + b"no end") is None


@pytest.mark.parametrize("make,why", [
    (lambda p: bzimage(p, compress(vmlinux(None), "xz")),
     "it has no embedded configuration (CONFIG_IKCONFIG is off or a module)"),
    (lambda p: bzimage(p, compress(vmlinux(config_text()), "lz4")),
     "its payload is compressed with LZ4, which is not read here"),
    (lambda p: bzimage(p, b"\xfd7zXZ\x00" + bytes(100)), "its xz payload could not be decompressed"),
    (lambda p: bzimage(p, b"\x01\x02\x03\x04\x05\x06"), "its payload's format is unknown (starts 010203040506)"),
    (lambda p: bzimage(p, b"x", protocol=0x0206), "its boot protocol 2.06 predates the payload fields"),
])
def test_why_a_config_cannot_be_read(tmp_path, make, why):
    config, said = kconfig.embedded_config(make(tmp_path / "bzImage"))
    assert config is None and said.startswith(why), said


def test_a_payload_pointing_outside_the_file(tmp_path):
    path = kernel(tmp_path)
    data = bytearray(path.read_bytes())
    data[0x24C:0x250] = (len(data) * 2).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    config, why = kconfig.embedded_config(path)
    assert config is None and "is not inside the" in why


def test_zstd_without_the_zstandard_package(tmp_path, monkeypatch):
    pytest.importorskip("zstandard")
    path = kernel(tmp_path, how="zstd")
    monkeypatch.setitem(sys.modules, "zstandard", None)         # import zstandard now fails
    config, why = kconfig.embedded_config(path)
    assert config is None and why == ("its payload is compressed with zstd (the zstandard package is "
                                      "not installed), which is not read here")


# ---------------------------------------------------------------- the boot header

def test_kexec_file_load_needs_boot_protocol_2_12(tmp_path):
    old = bzimage(tmp_path / "old", compress(vmlinux(None), "gzip"), protocol=0x020A)
    assert x86_64.kexec_problems(old, "qemu") == []
    assert x86_64.kexec_problems(old, "kexec_load") == []
    (problem,) = x86_64.kexec_problems(old, "kexec_file_load")
    assert problem.startswith("its boot protocol is 2.10 (header offset 0x206); kexec_file_load needs 2.12")
    assert x86_64.kexec_problems(old, "kexec_crash") == [problem]
    assert x86_64.kexec_problems(kernel(tmp_path), "kexec_file_load") == []


def test_kexec_file_load_needs_a_64_bit_relocatable_kernel(tmp_path):
    path = bzimage(tmp_path / "k", b"", xloadflags=0, loadflags=0)
    problems = x86_64.kexec_problems(path, "kexec_file_load")
    assert [p.split(":")[0] for p in problems] == [
        "loadflags lacks LOADED_HIGH", "xloadflags (0x0) lacks XLF_KERNEL_64",
        "xloadflags (0x0) lacks XLF_CAN_BE_LOADED_ABOVE_4G (built without CONFIG_RELOCATABLE?)"]


# ---------------------------------------------------------------- a scenario's layers

def scenario(name: str = "kexec-file-2.yaml", **layer_kernels: Path):
    layers = {int(k.removeprefix("layer")): str(v) for k, v in layer_kernels.items()}
    return load_scenario(SCENARIOS / name).with_overrides(layer_kernels=layers)


def test_debian_kernels_are_not_checked():
    assert kconfig.check_kernels(load_scenario(SCENARIOS / "kexec-file-4.yaml")) == []


def test_a_kernel_with_everything_passes_silently(tmp_path):
    assert kconfig.check_kernels(scenario(layer2=kernel(tmp_path))) == []


def test_every_missing_option_is_named_with_its_layer(tmp_path):
    path = kernel(tmp_path, RELOCATABLE=None, SERIAL_8250_CONSOLE=None, BLK_DEV_INITRD="m")
    with pytest.raises(ImageError) as info:
        kconfig.check_kernels(scenario(layer2=path))
    error = info.value
    assert error.where == f"{SCENARIOS / 'kexec-file-2.yaml'}:11: layer 2"
    assert error.what.splitlines() == [
        "the kernel file cannot be used in this chain:",
        f"    layer 2 ({path}): CONFIG_SERIAL_8250_CONSOLE is not set (the console on ttyS0)",
        f"    layer 2 ({path}): CONFIG_BLK_DEV_INITRD is not set (each layer's userland is an initramfs)",
        f"    layer 2 ({path}): CONFIG_RELOCATABLE is not set (it is started by kexec at an address "
        "its parent's loader chooses)"]
    assert error.hint == ("rebuild with CONFIG_BLK_DEV_INITRD=y, CONFIG_RELOCATABLE=y, CONFIG_SERIAL_8250_CONSOLE=y "
                          "(e.g. scripts/config -e BLK_DEV_INITRD -e RELOCATABLE -e SERIAL_8250_CONSOLE; "
                          "make olddefconfig)")


def test_what_a_layer_needs_follows_from_the_next_layers_loader(tmp_path):
    no_file = kernel(tmp_path, "no-file", KEXEC_FILE=None)
    no_kexec = kernel(tmp_path, "no-kexec", KEXEC=None)
    # kexec-file-2: layer 1 starts layer 2 with kexec_file_load, so it needs KEXEC_FILE, not KEXEC.
    assert kconfig.check_kernels(scenario(layer1=no_kexec)) == []
    with pytest.raises(ImageError, match=r"layer 1 \(.*no-file\): CONFIG_KEXEC_FILE is not set \(it loads "
                                         r"layer 2 with kexec_file_load\)"):
        kconfig.check_kernels(scenario(layer1=no_file))
    # kexec-load: the other way round; the last layer loads nothing.
    assert kconfig.check_kernels(scenario("kexec-load.yaml", layer1=no_file, layer2=no_kexec)) == []
    with pytest.raises(ImageError, match=r"CONFIG_KEXEC is not set \(it loads layer 2 with kexec_load\)"):
        kconfig.check_kernels(scenario("kexec-load.yaml", layer1=no_kexec))


def test_a_layer_with_a_next_one_needs_the_chain_disks_driver_built_in(tmp_path):
    as_module = kernel(tmp_path, "blk-m", VIRTIO_BLK="m")
    assert kconfig.check_kernels(scenario(layer2=as_module)) == []      # the last layer reads no disk
    with pytest.raises(ImageError) as info:
        kconfig.check_kernels(scenario(layer1=as_module))
    assert "layer 1 (" in info.value.what and "CONFIG_VIRTIO_BLK is not set (it reads layer 2's kernel" in info.value.what
    assert "CONFIG_VIRTIO_BLK=y" in info.value.hint
    no_mmio = kernel(tmp_path, "no-mmio", VIRTIO_MMIO=None)
    assert kconfig.check_kernels(scenario(layer1=no_mmio)) == []        # q35: the disk is on PCI
    with pytest.raises(ImageError, match="CONFIG_VIRTIO_MMIO is not set"):
        kconfig.check_kernels(scenario("microvm.yaml", layer1=no_mmio))


def test_an_old_boot_protocol_is_refused_only_where_kexec_file_load_starts_it(tmp_path):
    old = bzimage(tmp_path / "old", compress(vmlinux(config_text()), "xz"), protocol=0x020B)
    assert kconfig.check_kernels(scenario(layer1=old)) == []         # QEMU boots it
    with pytest.raises(ImageError) as info:
        kconfig.check_kernels(scenario(layer2=old))
    assert "its boot protocol is 2.11" in info.value.what
    assert "kexec_file_load starts only 64-bit bzImages of boot protocol 2.12 or later" in info.value.hint


def test_without_an_embedded_config_the_option_check_is_skipped_and_said(tmp_path):
    path = bzimage(tmp_path / "bzImage", compress(vmlinux(None), "xz"))
    assert kconfig.check_kernels(scenario(layer2=path)) == [
        f"layer 2: {path}: boot header checked; option check skipped: it has no embedded "
        "configuration (CONFIG_IKCONFIG is off or a module)"]


def test_options_that_change_what_a_check_sees_are_notes(tmp_path):
    # Before 6.2 a boot loader's seed is credited only with CONFIG_RANDOM_TRUST_BOOTLOADER
    # (or random.trust_bootloader=on); before 6.8 the parent logs where it loaded the child
    # only through dynamic debug, which the seed's capture in flight reads.
    old = bzimage(tmp_path / "old", compress(vmlinux(config_text(RANDOM_TRUST_BOOTLOADER=None,
                                                                 DYNAMIC_DEBUG=None)), "xz"),
                  release=b"6.1.0-test")
    notes = kconfig.check_kernels(scenario(layer1=old, layer2=old))
    assert [n.split(":")[:2] for n in notes] == [["layer 1", " CONFIG_DYNAMIC_DEBUG is not set"],
                                                ["layer 2", " CONFIG_RANDOM_TRUST_BOOTLOADER is not set"]]
    new = bzimage(tmp_path / "new", compress(vmlinux(config_text(DYNAMIC_DEBUG=None)), "xz"),
                  release=b"6.9.0-test")
    assert kconfig.check_kernels(scenario(layer1=new)) == []


def test_a_file_that_is_not_a_kernel_names_its_layer(tmp_path):
    path = tmp_path / "vmlinux"
    path.write_bytes(b"\x7fELF" + bytes(2048))
    with pytest.raises(ImageError) as info:
        kconfig.check_kernels(scenario(layer2=path))
    assert info.value.where.endswith("kexec-file-2.yaml:11: layer 2") and "ELF" in info.value.what


@pytest.mark.network
@pytest.mark.parametrize("spec,how", [("debian:bookworm/6.1", b"\xfd7zXZ\x00"), ("debian:sid/7.2", b"(\xb5/\xfd")])
def test_debian_kernels_decompress_whole_and_carry_no_config(spec, how):
    from harness.images.cache import Cache
    from harness.images.debian import resolve_kernel
    path = resolve_kernel(spec, Cache()).path
    payload, _ = x86_64.kernel_payload(path)
    assert payload.startswith(how)                  # xz (with the x86 filter) and zstd: both read to the end
    assert kconfig.embedded_config(path) == (None, "it has no embedded configuration (CONFIG_IKCONFIG "
                                                   "is off or a module)")
    assert x86_64.kexec_problems(path, "kexec_file_load") == []
