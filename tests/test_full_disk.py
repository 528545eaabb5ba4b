# SPDX-License-Identifier: GPL-2.0-only
"""A full disk is one message naming the folder and "no space left" (exit 125, QEMU gone),
not an internal error's traceback, and a full disk during a download is not blamed on the
network. Each test mounts a small tmpfs of its own (the tests run as root) and unmounts it."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ImageError
from harness.facts import ledger
from harness.proc import signals_as_at_a_terminal

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _fill(folder: Path) -> None:
    """Take every free byte of the file system under `folder`."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC



@pytest.mark.vm
def test_a_full_artifacts_disk_is_one_message(seedchain, small_disk):
    """The artifacts' disk fills up while the guest boots (QEMU writing its console, the
    agent's stream, the facts and result still to come)."""
    text = (ROOT / "scenarios" / "qemu-only.yaml").read_text().replace("name: qemu-only", "name: full")
    scenario = small_disk.parent / "full.yaml"
    scenario.write_text(text)
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scenario), "--artifacts",
                             str(small_disk)], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=signals_as_at_a_terminal,
                            env={**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root)})
    try:
        for line in proc.stdout:
            if "QEMU" in line and " started" in line:
                _fill(small_disk)
                break
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ledger.clear(seedchain.cache.root, "full")
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert proc.returncode == 125, stdout + stderr
    assert "no space left" in stderr and str(small_disk / "full") in stderr, stderr
    assert stderr.count("seedchain: error:") == 1
    qemus = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    assert str(small_disk) not in qemus


@pytest.mark.network
def test_a_full_disk_during_a_download_is_not_blamed_on_the_network(seedchain, small_disk):
    from harness.images.apt import Apt, _download
    apt = Apt("bookworm", seedchain.cache)
    apt.ensure_lists()
    packages = list(apt.candidates(["busybox-static"]).values())      # some 900 KiB, over the 1 MiB left
    _fill(small_disk)
    filler = small_disk / "filler"
    os.truncate(filler, filler.stat().st_size - (64 << 10))           # 64 KiB left
    with pytest.raises(ImageError) as info:
        _download(apt, packages, small_disk / "debs")
    error = info.value
    assert "no space left" in str(error) and str(small_disk / "debs") in str(error), str(error)
    assert "network" not in str(error)
    assert not error.transient                                          # not tried again
