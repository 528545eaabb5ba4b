# SPDX-License-Identifier: GPL-2.0-only
"""Killing the controller of `pytest -n 2` (SIGTERM or SIGKILL) mid-boot leaves no worker and
no QEMU 2 s later, and no warning or traceback from the workers' end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.proc import signals_as_at_a_terminal

ROOT = Path(__file__).resolve().parent.parent
MARKER = "SEEDCHAIN_TEST_WORKERS"
LIMIT = 2.0


def _marked(tag: str) -> dict[int, str]:
    """pid -> program of every live process whose environment carries the marker."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"{MARKER}={tag}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[int(proc.name)] = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except (OSError, IndexError):
            continue
    return found



@pytest.mark.vm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killing_the_controller_leaves_no_worker_and_no_qemu(sig, seedchain, tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    base = (ROOT / "scenarios" / "qemu-only.yaml").read_text()
    for name in ("wa", "wb"):
        (folder / f"{name}.yaml").write_text(base.replace("name: qemu-only", f"name: {name}"))
    tag = f"{os.getpid()}-{sig.name}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_session", "-n", "2", str(folder),
         "--artifacts", str(tmp_path / "out"), "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=signals_as_at_a_terminal,
        env={**os.environ, MARKER: tag, "SEEDCHAIN_CACHE": str(seedchain.cache.root)})
    try:
        deadline = time.monotonic() + 300
        while sum("qemu-system" in p for p in _marked(tag).values()) < 2:      # both mid-boot
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(sig)
        killed = time.monotonic()
        while _marked(tag) and time.monotonic() - killed < LIMIT:
            time.sleep(0.05)
        left = _marked(tag)
        gone_after = time.monotonic() - killed
        _, stderr = proc.communicate(timeout=60)
    finally:
        for pid in _marked(tag):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert left == {}, f"{len(left)} processes left {gone_after:.1f} s after the controller's {sig.name}: {left}"
    assert "Warning" not in stderr and "Traceback" not in stderr, stderr
