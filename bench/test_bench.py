# SPDX-License-Identifier: GPL-2.0-only
"""Unit tests of the benchmark's own logic: no QEMU, no network, no timings asserted.

    .venv/bin/pytest bench/ -p no:cacheprovider
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import shutil
import stat
from pathlib import Path

import pytest

from bench import baseline
from bench.flake_rate import summarize
from bench.run import dmesg_times
from harness.images import chaindisk
from harness.images.cache import Cache
from harness.images.debian import KernelImage, Userland
from harness.images.initramfs import LayerImage, cmdline_for
from harness.scenario.model import Layer


def read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """{path: (mode, contents)} of a newc archive (enough to check what we wrote)."""
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        head = data[pos:pos + 110]
        assert head[:6] == b"070701"
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos += namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def fake_images(tmp_path: Path, layers: int) -> list[LayerImage]:
    userland = tmp_path / "userland"
    (userland / "bin").mkdir(parents=True)
    (userland / "sbin").mkdir()
    (userland / "bin" / "busybox").write_bytes(b"busybox" * 100)
    (userland / "sbin" / "kexec").write_bytes(b"kexec" * 100)
    u = Userland(userland, "bookworm", "1.0", "2.0.25")
    images = []
    for i in range(1, layers + 1):
        kernel = tmp_path / f"vmlinuz-{i}"
        kernel.write_bytes(f"kernel {i}".encode() * 1000)
        layer = Layer(index=i, kernel=str(kernel), loader="qemu" if i == 1 else "kexec_file_load",
                      cmdline="" if i == 1 else "random.trust_cpu=off")
        images.append(LayerImage(layer, KernelImage(kernel, str(kernel), "(file)", "", ""), u,
                                 tmp_path / "unused", cmdline_for(layer)))
    return images


def test_init_script_hands_over_with_the_scenarios_loader_and_quoted_cmdline():
    kernel, initrd = chaindisk.Extent(0, 10, "a" * 64), chaindisk.Extent(4096, 20, "b" * 64)
    script = baseline.init_script(1, "kexec_file_load", "console=ttyS0 panic=-1 a='b c'", (kernel, initrd),
                                  ("/seedchain/modules/virtio_blk.ko",)).decode()
    assert script.startswith("#!/bin/sh\n")
    assert "kexec -s -l /tmp/next/bzImage --initrd=/tmp/next/initrd" in script
    assert f"take 0 10 {'a' * 64} /tmp/next/bzImage && take 4096 20 {'b' * 64} /tmp/next/initrd" in script
    assert "for module in /seedchain/modules/virtio_blk.ko; do" in script
    assert "--command-line='console=ttyS0 panic=-1 a='\"'\"'b c'\"'\"''" in script
    assert "kexec -e" in script and "poweroff -f" in script
    assert "kexec -c -l" in baseline.init_script(2, "kexec_load", "").decode()
    last = baseline.init_script(3, None, "").decode()
    assert "if [ -n '' ]; then" in last and f"{baseline.MARKER} 3" in last
    with pytest.raises(ValueError):
        baseline.init_script(1, "kexec_crash", "")


def test_plain_chain_reads_its_next_layer_from_a_disk_like_the_harness(tmp_path):
    images = fake_images(tmp_path, 3)
    chain = baseline.build_plain_chain(images, Cache(tmp_path / "cache"), extra_cmdline="quiet")
    disk = chain[0].chain_disk.read_bytes()
    assert {layer.chain_disk for layer in chain} == {chain[0].chain_disk}
    assert [layer.index for layer in chain] == [1, 2, 3]
    assert [layer.cmdline for layer in chain] == [
        "console=ttyS0 panic=-1 oops=panic quiet",
        "console=ttyS0 panic=-1 oops=panic random.trust_cpu=off quiet",
        "console=ttyS0 panic=-1 oops=panic random.trust_cpu=off quiet"]
    outer = read_newc(chain[0].initrd.read_bytes())
    assert stat.S_ISREG(outer["init"][0]) and outer["init"][0] & 0o111
    assert outer["bin/busybox"][1] == (tmp_path / "userland/bin/busybox").read_bytes()
    assert "seedchain/next/bzImage" not in outer
    for layer in chain[1:]:      # every later layer's images are on the disk, where /init looks
        for part in (layer.kernel.read_bytes(), layer.initrd.read_bytes()):
            at = disk.index(part)
            assert at % chaindisk.ALIGN == 0
            assert f"take {at} {len(part)} {hashlib.sha256(part).hexdigest()} ".encode() in \
                read_newc(chain[layer.index - 2].initrd.read_bytes())["init"][1]
    assert stat.S_ISCHR(outer["dev/console"][0]) and outer["bin/sh"][1] == b"busybox"
    assert "random.trust_cpu=off quiet" in outer["init"][1].decode()
    innermost = read_newc(chain[2].initrd.read_bytes())
    assert b"if [ -n '' ]" in innermost["init"][1] and b"poweroff" in innermost["init"][1]
    # Built again: the same entries (cache hits), so the chain is the same.
    assert baseline.build_plain_chain(images, Cache(tmp_path / "cache"), extra_cmdline="quiet") == chain


@pytest.mark.parametrize("codec", ["gzip", "xz"])
def test_compressed_chain_compresses_every_layer(tmp_path, codec):
    assert shutil.which(codec), f"{codec} is part of every Debian system; install it"
    unpack = {"gzip": gzip.decompress, "xz": lzma.decompress}[codec]
    chain = baseline.build_plain_chain(fake_images(tmp_path, 2), Cache(tmp_path / "cache"), codec=codec)
    inner = read_newc(unpack(chain[1].initrd.read_bytes()))
    assert b"poweroff" in inner["init"][1]
    assert chain[1].initrd.read_bytes() in chain[0].chain_disk.read_bytes()
    assert chain[0].bytes < chain[0].raw_bytes
    if codec == "xz":   # the kernel's xz decoder wants CRC32 (or no) checks, not CRC64
        assert chain[0].initrd.read_bytes()[7] == lzma.CHECK_CRC32


def test_markers_are_found_even_across_reads(tmp_path):
    console = tmp_path / "console.log"
    markers: dict[int, float] = {}
    console.write_bytes(b"[ 1.0] Run /init as init process\nbench-init: la")
    offset = baseline._scan_markers(console, 0, markers, 1.5)
    assert markers == {}
    with open(console, "ab") as f:
        f.write(b"yer 1\nnoise\nbench-init: layer 2\n")
    baseline._scan_markers(console, offset, markers, 2.5)
    assert markers == {1: 2.5, 2: 2.5}


def test_dmesg_times():
    dmesg = ("[    0.000000] Linux version 6.1.0\n"
             "[    1.876547] Trying to unpack rootfs image as initramfs...\n"
             "[    2.369158] Freeing initrd memory: 17052K\n"
             "[    3.527073] Run /init as init process\n")
    times = dmesg_times(dmesg)
    assert times["run_init"] == pytest.approx(3.527073)
    assert times["unpack"] == pytest.approx(2.369158 - 1.876547)
    assert dmesg_times("") == {"run_init": None, "unpack": None}


def test_flake_summary_compares_with_the_first_run():
    def o(verdict, observed=1):
        return {"verdict": verdict, "observed": observed}
    s = summarize({"a": [o("pass"), o("pass"), o("fail"), o("pass", 2)],
                   "b": [o("fail"), o("fail"), o("fail"), o("error")]})
    assert s["scenarios"]["a"]["flaky_runs"] == [3]
    assert s["scenarios"]["a"]["observation_changes"] == [4]
    assert s["scenarios"]["b"]["flaky_runs"] == [4]
    assert (s["scenario_runs_flaky"], s["scenario_runs_compared"]) == (2, 6)
    assert (s["whole_runs_flaky"], s["whole_runs_compared"]) == (2, 3)


def test_phases_split_a_layer_by_its_steps_and_the_guests_clock():
    from bench.context import phases
    steps = {"entered": 1.5, "report-begun": 5.0, "reported": 5.4, "go": 5.5, "loaded": 8.0, "exec": 8.1}
    p = phases(steps, "2.25\n2.65", "2.7\n3.9\n5.0")
    assert p["entry"] == 1.5
    assert p["pre_clock"] == 1.25            # the kernel's clock started at 5.0 - 2.25 = 2.75 s
    assert (p["report"], p["host"], p["load"]) == (0.4, 0.1, 2.5)
    assert (p["fetch"], p["kexec_l"]) == (1.2, 1.1)
    bare = phases({}, "", "")
    assert all(bare[k] is None for k in ("entry", "pre_clock", "report", "host", "load", "fetch", "kexec_l"))


def test_hostile_files_get_nowhere(tmp_path):
    """A few hostile cases through their front doors (the stress section runs them all)."""
    import os

    from bench import stress_hostile
    from bench._env import ROOT
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = stress_hostile.run(tmp_path, env, ["plugin", "qemu-payload", "kernel-canary", "matrix-qemu"])
    summary = stress_hostile.summarize(data)
    assert summary["cases"] == 8
    assert {k: summary[k] for k in stress_hostile.BAD} == dict.fromkeys(stress_hostile.BAD, 0), data
