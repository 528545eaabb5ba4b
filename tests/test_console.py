# SPDX-License-Identifier: GPL-2.0-only
"""The console QEMU writes is read a bounded way: only what is new, a bounded tail kept, and
a guest that floods it is stopped and named (a fault of its own), not called silent."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

import pytest

from harness.boot import channel, qemu
from harness.facts import ledger
from harness.pipeline import run
from harness.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parent.parent


class _Machine:
    """Just what wait_block asks of a QEMU that runs and whose agent says nothing."""

    def __init__(self, console: Path):
        self.console_path = console
        self.exit_code = None

    def running(self) -> bool:
        return True

    def read_agent(self, wait: float) -> bytes:
        time.sleep(wait)
        return b""


class _Counted:
    """open() for the channel module, counting the bytes read from the console."""

    def __init__(self):
        self.read = 0

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "r" in mode and str(path).endswith("console.log"):
            counter, real = self, f.read

            def read(*a):
                data = real(*a)
                counter.read += len(data)
                return data
            f.read = read
        return f


def _wait(tmp_path: Path, console: Path, timeout: float):
    machine = cast(qemu.Machine, _Machine(console))      # the channel reads only what _Machine has
    stream = channel.AgentStream(machine, tmp_path / "agent.log")
    try:
        return channel.wait_block(machine, stream, channel.Console(console), b"@begin ",
                                  b"@end 1", timeout, "report from layer 1")
    finally:
        stream.close()


def test_the_console_is_read_once_not_again_at_every_poll(tmp_path, monkeypatch):
    """3 MiB of console and a second of waiting (five polls): each byte is read once."""
    console = tmp_path / "console.log"
    console.write_bytes(b"[    1.000000] a busy guest says something\n" * (3 << 20 >> 6))
    counted = _Counted()
    monkeypatch.setattr(channel, "open", counted, raising=False)
    with pytest.raises(channel.Fault) as info:
        _wait(tmp_path, console, 1.0)
    assert info.value.kind == "hang"
    assert counted.read <= console.stat().st_size, f"{counted.read} bytes read of {console.stat().st_size}"
    assert "wrote" in info.value.detail and "silent" not in info.value.detail


def test_what_is_kept_of_the_console_is_bounded_and_the_panic_still_found(tmp_path):
    console = tmp_path / "console.log"
    watcher = channel.Console(console)
    with open(console, "wb") as f:
        f.write(b"early boot\n[    2.5] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
        for _ in range(40):
            f.write(b"x" * 100_000 + b"\n")
            f.flush()
            watcher.refresh()
            assert len(watcher.kept) <= channel.CONSOLE_KEEP
    assert watcher.panicked()
    assert watcher.panic_line() == "[    2.5] Kernel panic - not syncing: VFS: Unable to mount root fs"
    assert len(watcher.tail()) <= channel.CONSOLE_TAIL


def test_a_console_past_the_limit_is_a_flood(tmp_path):
    console = tmp_path / "console.log"
    with open(console, "wb") as f:
        f.truncate(17 << 20)          # over the limit; a sparse file: no disk needed
    started = time.monotonic()
    with pytest.raises(channel.Fault) as info:
        _wait(tmp_path, console, 10.0)
    assert info.value.kind == "console-flood"
    assert str(17 << 20) in info.value.detail
    assert time.monotonic() - started < 5


def test_the_agents_channel_is_bounded_too(tmp_path, monkeypatch):
    """Complete blocks sent on and on (each taken, so the buffer's bound never trips) fill
    agent.log without end: past the channel's limit the run stops with agent-flood."""
    monkeypatch.setattr(channel, "AGENT_LIMIT", 10_000, raising=False)
    block = b"@begin 1\n@end 1\n" + b"x" * 1000 + b"\n"

    class Chatty(_Machine):
        def read_agent(self, wait: float) -> bytes:
            return block
    stream = channel.AgentStream(Chatty(tmp_path / "console.log"), tmp_path / "agent.log")
    try:
        with pytest.raises(channel.Fault) as info:
            for _ in range(100):
                stream.poll(0)
                stream.take(b"@begin ", b"@end 1")
    finally:
        stream.close()
    assert info.value.kind == "agent-flood"
    assert (tmp_path / "agent.log").stat().st_size <= 10_000


@pytest.mark.vm
def test_a_flooding_guest_is_stopped_and_named(seedchain, tmp_path):
    """Layer 1's init is busybox's `yes`: "y" lines on the console as fast as the serial port
    takes them. The run is stopped at the console's limit, well before the layer's timeout,
    and the fault says what happened (not "silent or stuck")."""
    text = (ROOT / "scenarios" / "qemu-only.yaml").read_text().replace("name: qemu-only", "name: flood")
    text = text.replace("    expect: {seed: absent}", "    cmdline: rdinit=/usr/bin/yes\n    timeout: 90")
    path = tmp_path / "flood.yaml"
    path.write_text(text)
    started = time.monotonic()
    try:
        result = run(load_scenario(path), cache=seedchain.cache, artifacts=tmp_path / "out")
    finally:
        ledger.clear(seedchain.cache.root, "flood")
    elapsed = time.monotonic() - started
    layer = result.layers[0].facts
    assert layer.fault == "console-flood", (layer.fault, layer.fault_detail, elapsed)
    assert elapsed < 90
    size = os.path.getsize(Path(result.artifacts) / "console.log")
    assert channel.CONSOLE_LIMIT < size < channel.CONSOLE_LIMIT + (1 << 20)
    assert layer.console_tail and layer.console_tail[-1].strip("y") == ""
