# SPDX-License-Identifier: GPL-2.0-only
"""The chain disk: each layer carries only its own payload; the next layer's kernel and
initramfs are extents of one read-only disk per chain, named in layer.conf."""

import hashlib
import shlex
from pathlib import Path

import pytest

from bench.test_bench import read_newc
from harness.arch import x86_64
from harness.boot import chain as runner
from harness.images import chaindisk, debian, kmod
from harness.images import initramfs as images
from harness.images.cache import Cache
from harness.scenario.model import Expect, Layer, QemuConfig, Scenario


def test_extents_are_aligned_and_a_file_added_twice_is_stored_once(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"A" * 5000)
    b.write_bytes(b"B" * 10)
    layout = chaindisk.Layout()
    first = layout.add(a, "da")
    second = layout.add(b, "db")
    assert layout.add(a, "da") == first
    assert (first.offset, first.size, second.offset, second.size) == (0, 5000, 8192, 10)
    image = chaindisk.build(layout, Cache(tmp_path / "cache"))
    data = image.read_bytes()
    assert len(data) == 8192 + 4096
    assert data[:5000] == b"A" * 5000 and data[5000:8192] == bytes(3192) and data[8192:8202] == b"B" * 10
    assert first.conf() == "0 5000 da"
    other = chaindisk.Layout()
    other.add(b, "db")
    other.add(a, "da")
    assert other.key() != layout.key()          # the order is part of the key
    assert chaindisk.build(chaindisk.Layout(), Cache(tmp_path / "cache")) is None


def _chain(tmp_path: Path, monkeypatch, depth: int, kernels: int = 1, machine: str = "q35") -> list:
    """build_chain over stand-in kernels, userland and disk driver (no network, no busybox)."""
    root = tmp_path / "userland"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "busybox").write_bytes(b"busybox" * 1000)
    userland = debian.Userland(root, "bookworm", "1.0", "2.0.25")
    files = {}
    for n in range(kernels):
        path = tmp_path / f"vmlinuz-{n}"
        path.write_bytes(f"kernel {n} ".encode() * 3000)
        files[f"debian:bookworm/6.{n}"] = debian.KernelImage(path, f"debian:bookworm/6.{n}", "pkg", "1", "6.1.0")
    driver = kmod.Module("virtio_blk", tmp_path / "virtio_blk.ko", b"\x7fELF virtio_blk", ())
    monkeypatch.setattr(images.debian, "resolve_kernel", lambda spec, cache, arch="x86_64": files[spec])
    monkeypatch.setattr(images.debian, "userland", lambda suite, cache, arch="x86_64": userland)
    monkeypatch.setattr(images, "_applet_links", lambda root, present: [])
    monkeypatch.setattr(images, "rng_modules", lambda scenario, layer, cache: [])
    monkeypatch.setattr(images, "disk_modules", lambda scenario, layer, cache, loaded: [driver])
    layers = tuple(Layer(index=i, kernel=f"debian:bookworm/6.{(i - 1) % kernels}",
                         loader="qemu" if i == 1 else "kexec_file_load",
                         cmdline="" if i == 1 else "random.trust_cpu=off", expect=Expect())
                   for i in range(1, depth + 1))
    scenario = Scenario(name=f"d{depth}", description="", path=str(tmp_path / "s.yaml"),
                        qemu=QemuConfig(machine=machine), layers=layers)
    return images.build_chain(scenario, Cache(tmp_path / "cache"))


def _conf(initrd: Path) -> dict[str, str]:
    text = read_newc(initrd.read_bytes())["seedchain/layer.conf"][1].decode()
    return {k: " ".join(shlex.split(v)) for k, _, v in (line.partition("=") for line in text.splitlines())}


def test_each_layer_names_where_its_next_layer_is_on_the_disk(tmp_path, monkeypatch):
    chain = _chain(tmp_path, monkeypatch, 4, kernels=2)
    disk = chain[0].chain_disk.read_bytes()
    assert {image.chain_disk for image in chain} == {chain[0].chain_disk}
    for image, nxt in zip(chain, chain[1:], strict=False):
        archive = read_newc(image.initrd.read_bytes())
        assert not any(path.startswith("seedchain/next") for path in archive)
        assert "seedchain/modules/virtio_blk.ko" in archive
        conf = _conf(image.initrd)
        assert conf["CHAIN_DISK"] == images.CHAIN_DISK_SERIAL
        assert conf["DISK_MODULES"] == "/seedchain/modules/virtio_blk.ko"
        assert "MODULES" not in conf         # the disk's driver waits until after the report
        for key, path in (("NEXT_KERNEL", nxt.kernel.path), ("NEXT_INITRD", nxt.initrd)):
            offset, size, digest = conf[key].split()
            part = disk[int(offset):int(offset) + int(size)]
            assert part == path.read_bytes() and hashlib.sha256(part).hexdigest() == digest
    last = _conf(chain[-1].initrd)
    assert "CHAIN_DISK" not in last and "NEXT_KERNEL" not in last and last["NEXT_LOADER"] == ""
    assert "seedchain/modules/virtio_blk.ko" not in read_newc(chain[-1].initrd.read_bytes())


def test_bytes_grow_linearly_with_depth(tmp_path, monkeypatch):
    def chain_bytes(depth):
        chain = _chain(tmp_path / str(depth), monkeypatch, depth)
        return sum(image.initrd.stat().st_size for image in chain) + chain[0].chain_disk.stat().st_size
    two, four, eight = chain_bytes(2), chain_bytes(4), chain_bytes(8)
    # Each further layer adds its own initramfs (twice: its entry and its copy on the disk)
    # and nothing of the layers after it; the one kernel is on the disk once.
    assert four - two == pytest.approx((eight - four) / 2, rel=0.02)


def test_one_layer_has_no_disk(tmp_path, monkeypatch):
    chain = _chain(tmp_path, monkeypatch, 1)
    assert chain[0].chain_disk is None
    assert "-drive" not in runner.qemu_args(
        Scenario(name="one", description="", path="s.yaml", qemu=QemuConfig(), layers=(chain[0].layer,)),
        chain, _Build(), "tcg", tmp_path)


class _Build:
    extra_args: list = []


def test_the_disk_is_read_only_with_the_serial_the_agent_looks_for(tmp_path, monkeypatch):
    chain = _chain(tmp_path, monkeypatch, 2)
    scenario = Scenario(name="two", description="", path="s.yaml", qemu=QemuConfig(),
                        layers=tuple(image.layer for image in chain))
    args = runner.qemu_args(scenario, chain, _Build(), "tcg", tmp_path)
    assert args[args.index("-drive") + 1] == f"if=none,id=chain,format=raw,readonly=on,file={chain[0].chain_disk}"
    assert args[args.index("-drive") + 3] == "virtio-blk-pci,drive=chain,serial=seedchain-chain"


def test_disk_options_per_machine():
    image = Path("/c.img")
    assert x86_64.chain_disk_args("microvm,rtc=on", image, "s")[3] == "virtio-blk-device,drive=chain,serial=s"
    assert x86_64.chain_disk_args("q35", image, "s", boot_disk=True)[3] == \
        f"virtio-blk-pci,drive=chain,serial=s,addr={x86_64.CHAIN_DISK_SLOT}"
    assert x86_64.rng_bus("microvm") == "mmio" and x86_64.rng_bus("pc") == "pci"
    assert images.DISK_MODULES["pci"][-1] == images.DISK_MODULES["mmio"][-1] == "virtio_blk"


def test_the_agent_checks_what_it_copies_and_says_when_there_is_no_disk():
    for arch in ("x86_64", "aarch64"):
        agent = images.agent(arch).init.read_text() + images.agent(arch).arch.read_text()
        assert 'sha256sum -c -s' in agent and "iflag=skip_bytes,fullblock" in agent
        assert "no disk with serial $CHAIN_DISK" in agent and "CONFIG_VIRTIO_BLK=y" in agent
        assert "kexec -d $mode /tmp/next/bzImage --initrd=/tmp/next/initrd" in agent
