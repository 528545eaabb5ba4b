# SPDX-License-Identifier: GPL-2.0-only
"""aarch64's kernels (harness/arch/aarch64.py): the arm64 Image header, its version banner,
what keeps kexec from an Image, and qemu-system-aarch64 on PATH. Synthetic headers here; the
real Debian bookworm 6.1 arm64 kernel in the network-marked test."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest

from harness import arch
from harness.arch import aarch64, x86_64
from harness.errors import ImageError, QemuError
from harness.images import kconfig
from harness.scenario.model import ARCHES

BANNER = (b"Linux version 6.1.0-99-arm64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
          b"12.2.0) #1 SMP Debian 6.1.999-1 (2030-01-01)\n")


@pytest.fixture(autouse=True)
def aarch64_known(monkeypatch):
    """The stages ask harness.arch.get(NAME); aarch64 joins ARCHES once its machine, device-tree
    and capture sections are there (the interface test wants all of it), so the tests put it
    in by hand meanwhile."""
    monkeypatch.setitem(arch.ARCHES, aarch64.NAME, aarch64)


def fake_image(path: Path, banner: bytes = BANNER, *, image_size: int = 0x2000000, flags: int = 0x0A,
               size: int = 0x8000, tail: bytes = b"") -> Path:
    """An arm64 Image header (an EFI stub's "MZ" code0, the magic at 0x38) and a banner
    behind a format string that must be passed over."""
    data = bytearray(size)
    data[0:2] = b"MZ"
    data[0x10:0x18] = image_size.to_bytes(8, "little")
    data[0x18:0x20] = flags.to_bytes(8, "little")
    data[0x38:0x3C] = b"ARM\x64"
    data[0x1000:0x1000 + 18] = b"Linux version %s\n\0"
    data[0x5000:0x5000 + len(banner) + 1] = banner + b"\0"
    path.write_bytes(bytes(data) + tail)
    return path


def test_the_image_header_and_its_banner(tmp_path):
    assert aarch64.read_kernel(fake_image(tmp_path / "Image")) == ("6.1.0-99-arm64", "6.1.999-1")
    own = fake_image(tmp_path / "own", b"Linux version 6.9.0-rc1-00042-gabc (me@host) #3 SMP PREEMPT")
    assert aarch64.read_kernel(own) == ("6.9.0-rc1-00042-gabc", "6.9.0-rc1-00042-gabc")
    assert aarch64.read_kernel(fake_image(tmp_path / "none", b"")) == ("", "")


@pytest.mark.parametrize("content, found", [
    (gzip.compress(bytes(0x2000), mtime=0), "gzip data, "),
    (b"MZ\0\0zimg" + bytes(0x400), "an EFI zboot image"),
    (b"\x7fELF" + bytes(0x400), "an ELF file"),
    (bytes(0x202) + b"HdrS" + bytes(0x400), "an x86 bzImage"),
    (b"tiny", "only 4 bytes"),
    (b"secret words " * 100, "a file of 1300 bytes with no arm64 Image header"),
])
def test_not_an_image_says_what_it_is_never_its_bytes(tmp_path, content, found):
    path = tmp_path / "vmlinuz"
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        aarch64.read_kernel(path)
    assert found in info.value.what and str(path) in info.value.what
    assert "Image" in info.value.hint and "secret" not in str(info.value)


def test_a_gzipped_image_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "Image.gz"
    path.write_bytes(gzip.compress(fake_image(tmp_path / "Image").read_bytes()))
    with pytest.raises(ImageError, match="an Image.gz\\? gunzip it"):
        aarch64.read_kernel(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        aarch64.read_kernel(tmp_path / "nope")
    with pytest.raises(ImageError, match="is a directory, not an arm64 Image"):
        aarch64.read_kernel(tmp_path)


def test_kexec_problems_follow_the_kernels_image_load(tmp_path):
    good = fake_image(tmp_path / "good")
    assert aarch64.kexec_problems(good, "kexec_file_load") == []
    old = fake_image(tmp_path / "old", image_size=0)
    (problem,) = aarch64.kexec_problems(old, "kexec_file_load")
    assert "image_size (offset 0x10) is 0" in problem
    assert aarch64.kexec_problems(old, "kexec_crash") == [problem]
    assert aarch64.kexec_problems(old, "kexec_load") == []          # kexec-tools guesses 3.16's layout
    assert aarch64.kexec_problems(old, "qemu") == []
    big = fake_image(tmp_path / "be", flags=0x0B)
    assert ["big-endian" in p for p in aarch64.kexec_problems(big, "kexec_file_load")] == [True]


def test_the_payload_is_the_image_and_its_config_is_read_uncompressed(tmp_path):
    config = b"CONFIG_KEXEC=y\n# CONFIG_KEXEC_FILE is not set\nCONFIG_SERIAL_8250=y\n"
    tail = b"IKCFG_ST" + gzip.compress(config) + b"IKCFG_ED"
    path = fake_image(tmp_path / "Image", tail=tail)
    payload, why = aarch64.kernel_payload(path)
    assert payload == path.read_bytes() and why == ""
    found, why = kconfig.embedded_config(path, "aarch64")
    assert why == "" and found.enabled("KEXEC") and not found.enabled("KEXEC_FILE")
    bare, why = kconfig.embedded_config(fake_image(tmp_path / "bare"), "aarch64")
    assert bare is None and "no embedded configuration" in why


def test_find_qemu_looks_for_qemu_system_aarch64(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QemuError) as info:
        aarch64.find_qemu("system")
    assert "qemu-system-aarch64 is not installed" in info.value.what
    assert "apt-get install qemu-system-arm" in info.value.hint
    binary = tmp_path / "qemu-system-aarch64"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert aarch64.find_qemu("system") == str(binary)
    assert x86_64.find_qemu(str(binary)) == str(binary)              # a path is a path, either arch


def test_the_scenario_model_knows_each_arch_as_its_module_does():
    for module in (x86_64, aarch64):
        assert ARCHES[module.NAME].firmwares == module.FIRMWARES


@pytest.mark.network
def test_debian_bookworm_arm64_kernel():
    from harness.images.cache import Cache
    from harness.images.debian import resolve_kernel
    kernel = resolve_kernel("debian:bookworm/6.1", Cache(), arch="aarch64")
    assert kernel.package.startswith("linux-image-6.1.") and kernel.package.endswith("-arm64-unsigned")
    assert kernel.release.endswith("-arm64") and kernel.path.stat().st_size > 20 << 20
    release, version = aarch64.read_kernel(kernel.path)
    assert (release, version) == (kernel.release, kernel.version.split("+b")[0])   # a binNMU: the same source
    assert aarch64.kexec_problems(kernel.path, "kexec_file_load") == []
    config, why = kconfig.embedded_config(kernel.path, "aarch64")
    # Debian builds IKCONFIG as a module (configs.ko), so the Image carries none; its KEXEC_FILE
    # is off, as linux-config-6.1 shows (docs/facts.md#debian-arm64-kernels).
    assert config is None and "no embedded configuration" in why
