# SPDX-License-Identifier: GPL-2.0-only
"""QEMU's gdbstub, driven over the GDB remote protocol (harness/boot/rsp.py frames it).

QEMU listens on a Unix socket in the run's folder, which only the invoking user can
enter (0700): no other local user can connect to the stub, read the guest's registers
and RAM or write them. Only what catching a seed needs is here: stop, set and clear a
breakpoint, continue, wait for a stop, read a register. Under TCG a breakpoint matches
the guest's program counter in whatever address space is live, so one set in a parent
fires in its kexec'd child.

The stub stops the guest when a client connects; an interrupt byte sent while the guest
runs stops it too, and the stub answers with a stop reply.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.boot import rsp
from harness.errors import QemuError

CHARDEV_ID = "gdbstub"
SOCKET = "gdb.sock"
POLL = 0.2


def socket_path(workdir: Path) -> Path:
    return Path(workdir) / SOCKET


def qemu_args(workdir: Path) -> list[str]:
    """Options for a stub on a Unix socket in `workdir`, the guest started stopped (-S)."""
    return ["-S", "-chardev", f"socket,id={CHARDEV_ID},path={socket_path(workdir)},server=on,wait=off",
            "-gdb", f"chardev:{CHARDEV_ID}"]


class StopReply:
    """A stop reply: "T05..." (a trap: breakpoint or step), "T02" (interrupted), "W"/"X" (gone)."""

    def __init__(self, text: str):
        self.text = text

    @property
    def signal(self) -> int | None:
        return int(self.text[1:3], 16) if self.text[:1] in ("T", "S") and len(self.text) >= 3 else None

    @property
    def exited(self) -> bool:
        return self.text[:1] in ("W", "X")


class Stub:
    """One connection to QEMU's gdbstub. All-stop: the guest is either running (a
    continue is outstanding) or stopped."""

    def __init__(self, path: Path, timeout: float = 10.0):
        self.timeout = timeout
        self.running = False
        self.breakpoints: set[int] = set()
        try:
            self.link = rsp.Link.unix(os.fspath(path), timeout)
        except OSError as exc:
            raise QemuError(f"cannot connect to QEMU's gdbstub at {path}: {exc.strerror or exc}") from None
        try:    # connecting stopped the guest (it was stopped already with -S)
            self._command("?")
        except BaseException:
            self.link.close()
            raise

    def _command(self, packet: str) -> str:
        try:
            return self.link.command(packet, self.timeout).decode("latin-1")
        except (rsp.Timeout, rsp.ProtocolError) as exc:
            raise QemuError(f"QEMU's gdbstub did not answer {packet!r}: {exc}") from None

    def _send(self, packet: str) -> None:
        try:
            self.link.send(packet, self.timeout)
        except (rsp.Timeout, rsp.ProtocolError) as exc:
            raise QemuError(f"QEMU's gdbstub did not take {packet!r}: {exc}") from None

    # -- commands (the guest must be stopped) -------------------------------------------------
    def _expect_ok(self, packet: str) -> None:
        reply = self._command(packet)
        if reply != "OK":   # "" is "not supported", "E.." an error
            raise QemuError(f"QEMU's gdbstub refused {packet!r}: {reply or 'not supported'!r}")

    def stop(self) -> None:
        """Interrupt a running guest and wait for the stub's stop reply."""
        if not self.running:
            return
        try:
            self.link.interrupt()
        except rsp.ProtocolError as exc:
            raise QemuError(f"cannot interrupt the guest through QEMU's gdbstub: {exc}") from None
        self.running = False
        deadline = time.monotonic() + 10.0
        while True:
            reply = self.wait(POLL)
            if reply is not None:
                return
            if time.monotonic() > deadline:
                raise QemuError("QEMU's gdbstub did not stop the guest within 10 s")

    def set_breakpoint(self, address: int) -> None:
        self._expect_ok(f"Z1,{address:x},1")
        self.breakpoints.add(address)

    def clear_breakpoint(self, address: int) -> None:
        if address in self.breakpoints:
            self._expect_ok(f"z1,{address:x},1")
            self.breakpoints.discard(address)

    def registers(self) -> bytes:
        """The "g" packet's register block (layout: the architecture's GDB_REGISTERS)."""
        reply = self._command("g")
        if not reply or reply.startswith("E") or len(reply) % 2:
            raise QemuError(f"QEMU's gdbstub could not read the registers: {reply[:40]!r}")
        return bytes.fromhex(reply.replace("x", "0"))   # "xx": a register the stub does not know

    def step(self) -> StopReply:
        self._send("s")
        self.running = True
        reply = self.wait(10.0)
        if reply is None:
            raise QemuError("a single step did not come back from QEMU's gdbstub")
        return reply

    def cont(self) -> None:
        self._send("c")
        self.running = True

    # -- waiting -----------------------------------------------------------------------------
    def wait(self, seconds: float) -> StopReply | None:
        """The stop reply if the guest stopped within about `seconds`, else None."""
        try:
            text = self.link.receive(seconds).decode("latin-1")
        except rsp.Timeout:
            return None
        except rsp.ProtocolError as exc:
            raise QemuError(f"QEMU's gdbstub sent a broken reply: {exc}") from None
        self.running = False
        return StopReply(text)

    def close(self) -> None:
        self.link.close()
