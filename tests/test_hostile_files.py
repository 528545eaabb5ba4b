# SPDX-License-Identifier: GPL-2.0-only
"""Files a user, a scenario or a result folder names that are not what they claim: a FIFO,
a device or a folder is refused at once (never waited on), a kernel file larger than any
kernel is refused by its size before it is read, and a compressed payload that inflates to
gigabytes is read no further than a kernel could be."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.arch import x86_64
from harness.errors import ImageError, ScenarioError
from harness.images import kconfig
from harness.reports.matrix import merge
from harness.scenario.load import load_scenario
from test_kconfig import bzimage, compress, kernel

ROOT = Path(__file__).parent.parent


@pytest.fixture
def fifo(tmp_path):
    """A FIFO maker: fifo(path) makes one there; a writer opens and closes each every 5 s,
    so that code which waits on one (the defect) returns and the test fails on time
    instead of hanging."""
    made: list[Path] = []
    done = threading.Event()

    def make(path: Path = tmp_path / "fifo") -> Path:
        os.mkfifo(path)
        made.append(path)
        return path

    def unblock():
        while not done.wait(5):
            for path in made:
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
    threading.Thread(target=unblock, daemon=True).start()
    yield make
    done.set()


def quickly(call, *args):
    """(the exception call raised, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        call(*args)
    return info.value, time.monotonic() - started


def test_a_fifo_as_scenario_file_is_refused_at_once(fifo, tmp_path):
    scenario = fifo(tmp_path / "s.yaml")
    error, seconds = quickly(load_scenario, scenario)
    assert isinstance(error, ScenarioError) and "FIFO" in str(error)
    assert seconds < 2


def test_a_fifo_as_kernel_file_is_refused_at_once(fifo):
    error, seconds = quickly(x86_64.read_kernel, fifo())
    assert isinstance(error, ImageError) and "FIFO" in error.what
    assert seconds < 2


def test_a_device_as_kernel_file_is_refused():
    with pytest.raises(ImageError, match="character device"):
        x86_64.read_kernel(Path("/dev/zero"))


def test_a_fifo_as_result_json_is_an_error_cell_at_once(fifo, tmp_path):
    folder = tmp_path / "results" / "cell"
    folder.mkdir(parents=True)
    fifo(folder / "result.json")
    started = time.monotonic()
    results = merge([tmp_path / "results"])
    assert time.monotonic() - started < 2
    assert len(results) == 1 and "FIFO" in results[0]["error"]


def test_a_huge_sparse_kernel_file_is_refused_by_its_size(tmp_path):
    # A real bzImage header, then 40 GiB of holes: read whole, it took the memory of the host.
    path = kernel(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(40 << 30)
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from pathlib import Path
        from harness.arch import x86_64
        from harness.errors import ImageError
        from harness.images import kconfig
        try:
            x86_64.read_kernel(Path({str(path)!r}))
        except ImageError as e:
            print("refused:", e.what)
        print("config:", kconfig.embedded_config(Path({str(path)!r}))[1])
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: kernel file" in proc.stdout and "larger than any such file" in proc.stdout
    assert "config: kernel file" in proc.stdout


def _zeros_zstd(size: int) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    out = zstandard.ZstdCompressor(level=1).compressobj()
    block = bytes(1 << 20)
    data = b"".join(out.compress(block) for _ in range(size >> 20)) + out.flush()
    return data + (size & 0xFFFFFFFF).to_bytes(4, "little")


def test_a_zstd_bomb_is_read_no_further_than_a_kernel_could_be(tmp_path):
    # 2 GiB of zeros in a few dozen KiB of zstd: decompressed in one go under a 1.5 GiB
    # address-space limit it ran out of memory; streamed, it stops at MAX_DECOMPRESSED.
    payload = _zeros_zstd(2 << 30)
    assert len(payload) < 1 << 20
    path = bzimage(tmp_path / "bzImage", payload)
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
        from pathlib import Path
        from harness.images import kconfig
        print(kconfig.embedded_config(Path({str(path)!r}))[1])
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "more than 256 MiB" in proc.stdout


@pytest.mark.parametrize("how", ["xz", "lzma", "gzip", "bzip2", "zstd"])
def test_every_decompression_is_bounded(tmp_path, how, monkeypatch):
    monkeypatch.setattr(kconfig, "MAX_DECOMPRESSED", 1 << 20)
    path = bzimage(tmp_path / "bzImage", compress(bytes(8 << 20), how))
    config, why = kconfig.embedded_config(path)
    assert config is None and "more than 1 MiB" in why


def test_a_gzip_bomb_as_embedded_config_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(kconfig, "MAX_CONFIG_TEXT", 1 << 20)
    import gzip
    embedded = kconfig.START + gzip.compress(b"CONFIG_KEXEC=y\n" + bytes(32 << 20)) + kconfig.END
    path = bzimage(tmp_path / "bzImage", compress(b"\x7fELF" + embedded, "none"))
    seen = []
    parse = kconfig.parse_config
    monkeypatch.setattr(kconfig, "parse_config", lambda text: seen.append(len(text)) or parse(text))
    config, why = kconfig.embedded_config(path)
    assert why == "" and config.enabled("KEXEC")
    assert seen == [1 << 20]
