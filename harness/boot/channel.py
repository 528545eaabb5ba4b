"""The runner's two ears on a guest: the console file QEMU writes, and the agent's stream.

`wait_block` waits for one block from the agent (its report, its loader record) while it
watches the console for a panic and QEMU for its exit; what goes wrong is a `Fault`,
named for what was seen (panic, out-of-memory, reset, qemu-exit, hang, bad-report).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from harness.boot import qemu as qemu_control
from harness.facts.report import MAX_REPORT_BYTES, take_block
from harness.private import open_file

PANIC_GRACE = 5.0               # after "Kernel panic" on the console, QEMU should exit by then
CONSOLE_TAIL = 25
OOM = re.compile(r"Out of memory|oom-kill:|Initramfs unpacking failed")
_STARTS = (b"@begin ", b"@loader ")     # blocks whose first bytes' arrival is a step


class Fault(Exception):
    """A layer did not get as far as it should: the kind and what was seen."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Console:
    """Reads the console file QEMU writes, from a mark set when a layer starts."""

    def __init__(self, path: Path):
        self.path = path
        self.mark_at = 0

    def _read(self) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.mark_at)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def mark(self) -> None:
        self.mark_at = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> str:
        return self._read()

    def skip_past(self, needle: str) -> bool:
        """Move the mark past the first complete line since the mark that holds
        `needle` (a message that was expected, such as an intended panic)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.mark_at)
                data = f.read()
        except OSError:
            return False
        at = data.find(needle.encode())
        end = data.find(b"\n", at) if at >= 0 else -1
        if end < 0:
            return False
        self.mark_at += end + 1
        return True

    def tail(self, lines: int = CONSOLE_TAIL) -> list[str]:
        return [line.rstrip("\r") for line in self._read().splitlines()[-lines:]]


class AgentStream:
    """Splits the agent's byte stream into blocks ("@begin".."@end N" and so on)."""

    def __init__(self, machine: qemu_control.Machine, log_path: Path):
        self.machine = machine
        self.buffer = b""
        self.log = os.fdopen(open_file(log_path, append=True), "ab")
        self._arrived: dict[bytes, float] = {}   # a block's start marker: when it first came
        self.started_at: float | None = None     # the last block taken: when its start came

    def poll(self, wait: float) -> None:
        data = self.machine.read_agent(wait)
        if data:
            self.log.write(data)
            self.log.flush()
            self.buffer += data
            now, fresh = time.monotonic(), self.buffer[-(len(data) + 16):]   # what came, and a bit before
            for marker in _STARTS:
                if marker not in self._arrived and marker in fresh:
                    self._arrived[marker] = now
            if len(self.buffer) > MAX_REPORT_BYTES:
                raise Fault("bad-report", f"the agent sent over {MAX_REPORT_BYTES} bytes without a complete block")

    def take(self, start: bytes, end: bytes) -> bytes | None:
        block, self.buffer = take_block(self.buffer, start, end)
        if block is not None:
            self.started_at = self._arrived.pop(start, None)
            self._arrived = {m: t for m, t in self._arrived.items() if m in self.buffer}
        return block

    def close(self) -> None:
        self.log.close()


def wait_block(machine: qemu_control.Machine, stream: AgentStream, console: Console,
               start: bytes, end: bytes, timeout: float, what: str,
               intended_panic: bool = False, deadline: float | None = None) -> bytes:
    """Wait for a block from the agent, `timeout` seconds or until `deadline` (a layer's
    timeout runs from its hand-over). With intended_panic (a crash kernel's hand-over)
    the first "Kernel panic" on the console is the parent's, on purpose: it is skipped."""
    deadline = deadline if deadline is not None else time.monotonic() + timeout
    panic_seen: float | None = None
    while True:
        if intended_panic and console.skip_past("Kernel panic"):
            intended_panic = False
        block = stream.take(start, end)
        if block is not None:
            return block
        if not machine.running():
            stream.poll(0)           # the last words may be in flight
            block = stream.take(start, end)
            if block is not None:
                return block
            raise _exit_fault(machine, console, what)
        now = time.monotonic()
        if "Kernel panic" in console.since_mark():
            panic_seen = panic_seen or now
            if now - panic_seen > PANIC_GRACE:
                raise Fault("panic", f"kernel panic before {what}; QEMU did not exit")
        else:
            panic_seen = None
        if now > deadline:
            raise Fault("hang", f"no {what} within {timeout:.0f} s; the guest is silent or stuck")
        stream.poll(0.2)


def _exit_fault(machine: qemu_control.Machine, console: Console, what: str) -> Fault:
    text = console.since_mark()
    if "Kernel panic" in text:
        reason = next((line.strip() for line in text.splitlines() if "Kernel panic" in line), "")
        return Fault("out-of-memory" if OOM.search(text) else "panic", f"{reason} (before {what})")
    if machine.exit_code not in (0, None):
        return Fault("qemu-exit", f"QEMU exited with status {machine.exit_code} before {what}: "
                                  f"{machine.qemu_output()[-500:]}")
    return Fault("reset", f"the guest reset or powered off before {what}, with no panic message")
