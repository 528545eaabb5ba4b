# SPDX-License-Identifier: GPL-2.0-only
"""The runner's two ears on a guest: the console file QEMU writes, and the agent's stream.

`wait_block` waits for one block from the agent (its report, its loader record) while it
watches the console for a panic and QEMU for its exit; what goes wrong is a `Fault`,
named for what was seen (panic, out-of-memory, reset, qemu-exit, hang, bad-report,
console-flood, agent-flood), or for what ended QEMU from outside (qemu-killed: a signal,
not the guest's doing). Both ears are bounded: the console is read from where the last
read stopped, and only a tail of it is kept in memory; a layer that writes more than
CONSOLE_LIMIT to its console (or a chain AGENT_LIMIT to the agent's channel) is stopped.
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
KILLED_GRACE = 1.0              # after QEMU died of a signal: time for our own interrupt to arrive
CONSOLE_TAIL = 25
CONSOLE_KEEP = 64 << 10         # bytes since the mark kept in memory: the tail, the panic's line
CONSOLE_LIMIT = 4 << 20         # a layer's console is ~25 KiB; past this (since the mark) a flood
AGENT_LIMIT = 64 << 20          # the agent's channel: ~35 KiB a layer
READ_CHUNK = 1 << 20
OOM = re.compile(r"Out of memory|oom-kill:|Initramfs unpacking failed")
PANIC = b"Kernel panic"
_OVERLAP = 64                   # a marker split over two reads is still found
INFRASTRUCTURE = ("qemu-killed",)   # fault kinds that are no guest's doing: the run is not judged
_STARTS = (b"@begin ", b"@loader ")     # blocks whose first bytes' arrival is a step


class Fault(Exception):
    """A layer did not get as far as it should: the kind and what was seen."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Console:
    """Reads the console file QEMU writes, from a mark set when a layer starts. Each read
    takes only what is new; of what came since the mark the last CONSOLE_KEEP bytes are
    kept, and the first panic and any out-of-memory message are noted as they pass."""

    def __init__(self, path: Path, limit: int = CONSOLE_LIMIT):
        self.path = path
        self.limit = limit
        self.read_at = 0            # bytes of the file read so far
        self.mark_at = 0
        self.kept = bytearray()     # the last CONSOLE_KEEP bytes since the mark
        self.kept_at = 0            # the file offset of kept[0]
        self.panic_at: int | None = None    # the file offset of the first panic since the mark
        self.out_of_memory = False

    def refresh(self) -> None:
        """Take what QEMU wrote since the last read; a console past the limit is a flood."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size - self.mark_at > self.limit:
            raise Fault("console-flood", f"the guest wrote {size - self.mark_at} bytes to its console, "
                                         f"over the {self.limit >> 20} MiB limit of a layer: the run "
                                         "was stopped there")
        self._read(size)

    def _read(self, size: int | None = None) -> None:
        if size is None:
            try:
                size = self.path.stat().st_size
            except OSError:
                return
        if size <= self.read_at:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self.read_at)
                while self.read_at < size:
                    data = f.read(min(READ_CHUNK, size - self.read_at))
                    if not data:
                        break
                    self._take(data)
        except OSError:
            return

    def _take(self, data: bytes) -> None:
        old = len(self.kept)
        self.kept += data
        self.read_at += len(data)
        self._scan(max(0, old - _OVERLAP))
        excess = len(self.kept) - CONSOLE_KEEP
        if excess > 0:
            del self.kept[:excess]
            self.kept_at += excess

    def _scan(self, since: int) -> None:
        """Note a panic or an out-of-memory message in kept[since:]."""
        if self.panic_at is None:
            at = self.kept.find(PANIC, since)
            if at >= 0:         # the start of its line
                self.panic_at = self.kept_at + max(self.kept.rfind(b"\n", 0, at) + 1, at - 256)
        if not self.out_of_memory:
            self.out_of_memory = bool(OOM.search(self.kept[since:].decode("utf-8", errors="replace")))

    def mark(self) -> None:
        """What the console holds now is before the mark (it is not read)."""
        try:
            self.read_at = self.path.stat().st_size
        except OSError:
            self.read_at = 0
        self._cut(self.read_at)

    def _cut(self, at: int) -> None:
        self.mark_at = at
        del self.kept[:max(0, at - self.kept_at)]
        self.kept_at = at
        self.panic_at, self.out_of_memory = None, False
        self._scan(0)

    def since_mark(self) -> str:
        """What came since the mark (its last CONSOLE_KEEP bytes)."""
        self._read()
        return self.kept.decode("utf-8", errors="replace")

    def panicked(self) -> bool:
        self.refresh()
        return self.panic_at is not None

    def panic_line(self) -> str:
        """The first "Kernel panic" line since the mark, read again if it left the kept tail."""
        if self.panic_at is None:
            return ""
        at = self.panic_at - self.kept_at
        if at >= 0:
            line = bytes(self.kept[at:at + 512])
        else:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.panic_at)
                    line = f.read(512)
            except OSError:
                line = PANIC
        return line.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()

    def skip_past(self, needle: str) -> bool:
        """Move the mark past the first complete line since the mark that holds
        `needle` (a message that was expected, such as an intended panic)."""
        self.refresh()
        at = self.kept.find(needle.encode())
        end = self.kept.find(b"\n", at) if at >= 0 else -1
        if end < 0:
            return False
        self._cut(self.kept_at + end + 1)
        return True

    def bytes_since_mark(self) -> int:
        return self.read_at - self.mark_at

    def tail(self, lines: int = CONSOLE_TAIL) -> list[str]:
        return [line.rstrip("\r") for line in self.since_mark().splitlines()[-lines:]]


class AgentStream:
    """Splits the agent's byte stream into blocks ("@begin".."@end N" and so on)."""

    def __init__(self, machine: qemu_control.Machine, log_path: Path):
        self.machine = machine
        self.buffer = b""
        self.log = os.fdopen(open_file(log_path, append=True), "ab")
        self._arrived: dict[bytes, float] = {}   # a block's start marker: when it first came
        self.started_at: float | None = None     # the last block taken: when its start came
        self.received = 0

    def poll(self, wait: float) -> None:
        data = self.machine.read_agent(wait)
        if data:
            self.received += len(data)
            if self.received > AGENT_LIMIT:
                raise Fault("agent-flood", f"the agent's channel carried over {AGENT_LIMIT >> 20} MiB: "
                                           "the run was stopped there")
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
        console.refresh()
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
        if console.panicked():
            panic_seen = panic_seen or now
            if now - panic_seen > PANIC_GRACE:
                raise Fault("panic", f"kernel panic before {what}; QEMU did not exit")
        else:
            panic_seen = None
        if now > deadline:
            written = console.bytes_since_mark()
            raise Fault("hang", f"no {what} within {timeout:.0f} s; the guest is "
                                + (f"stuck (it wrote {written} bytes to its console meanwhile)" if written
                                   else "silent or stuck"))
        stream.poll(0.2)


def qemu_gone(machine: qemu_control.Machine, console: Console, what: str) -> Fault | None:
    """The fault of QEMU's exit if it has exited (or does within a second): a command to
    the stub or the monitor that failed because QEMU went away is read as that exit."""
    if machine.wait_exit(1.0) is None:
        return None
    return _exit_fault(machine, console, what)


def _exit_fault(machine: qemu_control.Machine, console: Console, what: str) -> Fault:
    killed = machine.killed_by()
    if killed:
        # A Ctrl-C reaches QEMU and this process alike; ours may come a moment later (the
        # parent of a worker passes it on): then the run ends as interrupted, right here.
        time.sleep(KILLED_GRACE)
        return Fault("qemu-killed", f"QEMU was ended by {killed} before {what}: not the guest's "
                                    "doing, so the run could not be finished")
    console.refresh()
    if console.panicked():
        reason = console.panic_line()
        return Fault("out-of-memory" if console.out_of_memory else "panic", f"{reason} (before {what})")
    if machine.exit_code not in (0, None):
        return Fault("qemu-exit", f"QEMU exited with status {machine.exit_code} before {what}: "
                                  f"{machine.qemu_output()[-500:]}")
    return Fault("reset", f"the guest reset or powered off before {what}, with no panic message")
