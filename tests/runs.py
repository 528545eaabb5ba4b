# SPDX-License-Identifier: GPL-2.0-only
"""Helpers for tests that start a real `seedchain run` in a process of its own: wait until
its QEMU has started, and end it (and forget its seeds) whatever the test did."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.facts import ledger


def until_qemu_started(proc: subprocess.Popen) -> None:
    """Read the run's progress lines until it says QEMU started; fail the test if the run
    ends first."""
    assert proc.stdout is not None                  # stdout=PIPE, text
    for line in proc.stdout:
        if "QEMU" in line and " started" in line:
            return
    said = f": {proc.stderr.read()}" if proc.stderr is not None else ""
    pytest.fail(f"the run ended before QEMU started (exit status {proc.wait()}){said}")


@contextmanager
def reaped(proc: subprocess.Popen, cache: Path, scenario: str) -> Iterator[None]:
    """The run is killed if it is still going when the block ends, and the ledger forgets
    the scenario's seeds."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ledger.clear(cache, scenario)
