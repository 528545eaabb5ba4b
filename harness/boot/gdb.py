"""QEMU's gdbstub, driven over the GDB remote protocol (PyGdbRemoteClient frames it).

QEMU listens on 127.0.0.1 at a port it picks itself (`port=0`); the runner learns the
port from QMP's query-chardev, so parallel runs never race for one. Only what catching
a seed needs is here: stop, set and clear a breakpoint, continue, wait for a stop,
read a register. Under TCG a breakpoint matches the guest's program counter in
whatever address space is live, so one set in a parent fires in its kexec'd child.

The stub stops the guest when a client connects; any byte sent while the guest runs
stops it too (an interrupt), and the stub answers with a stop reply.
"""

from __future__ import annotations

import re
import time

from gdb_remote_client import GdbRemoteClient, GdbRemoteClientError

from harness.errors import QemuError

CHARDEV_ID = "gdbstub"
# query-chardev's filename of a listening socket, e.g. "disconnected:tcp:127.0.0.1:35747,server=on"
_PORT = re.compile(r"tcp:127\.0\.0\.1:([0-9]+),server")
POLL = 0.5        # the client rounds a shorter wait up to a second


def qemu_args() -> list[str]:
    """Options for a stub on a loopback port QEMU chooses, started stopped (-S)."""
    return ["-S", "-chardev", f"socket,id={CHARDEV_ID},host=127.0.0.1,port=0,server=on,wait=off",
            "-gdb", f"chardev:{CHARDEV_ID}"]


def port_from(chardevs: list[dict]) -> int:
    """The port QEMU bound for the stub, from QMP query-chardev's answer."""
    for dev in chardevs:
        if dev.get("label") == CHARDEV_ID:
            found = _PORT.search(dev.get("filename", ""))
            if found:
                return int(found.group(1))
    raise QemuError("QEMU's gdbstub has no listening port in query-chardev",
                    hint=f"QEMU said: {chardevs!r:.300}")


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

    def __init__(self, port: int, timeout: float = 10.0):
        self.client = GdbRemoteClient("127.0.0.1", port)
        self.client.set_recv_timeout(timeout)
        self.running = False
        self.breakpoints: set[int] = set()
        try:
            self.client.connect()
            # Connecting stopped the guest (it was stopped already with -S).
            self.client.cmd("?")
        except (OSError, GdbRemoteClientError) as exc:
            raise QemuError(f"cannot talk to QEMU's gdbstub on 127.0.0.1:{port}: {exc}") from None

    # -- commands (the guest must be stopped) -------------------------------------------------
    def _expect_ok(self, packet: str) -> None:
        reply = self.client.cmd(packet)
        if reply != "OK":   # "" is "not supported", "E.." an error
            raise QemuError(f"QEMU's gdbstub refused {packet!r}: {reply or 'not supported'!r}")

    def stop(self) -> None:
        """Interrupt a running guest and wait for the stub's stop reply."""
        if not self.running:
            return
        self.client.ctrl_c()
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
        reply = self.client.cmd("g")
        if not reply or reply.startswith("E") or len(reply) % 2:
            raise QemuError(f"QEMU's gdbstub could not read the registers: {reply[:40]!r}")
        return bytes.fromhex(reply.replace("x", "0"))   # "xx": a register the stub does not know

    def step(self) -> StopReply:
        self.client.cmd_no_reply("s")
        self.running = True
        reply = self.wait(10.0)
        if reply is None:
            raise QemuError("a single step did not come back from QEMU's gdbstub")
        return reply

    def cont(self) -> None:
        self.client.cmd_no_reply("c")
        self.running = True

    # -- waiting -----------------------------------------------------------------------------
    def wait(self, seconds: float) -> StopReply | None:
        """The stop reply if the guest stopped within about `seconds`, else None."""
        self.client.set_recv_timeout(max(seconds, POLL))
        try:
            text, _ = self.client.get_stop_reply()
        except GdbRemoteClientError as exc:
            if "Timeout" in str(exc):
                return None
            raise QemuError(f"QEMU's gdbstub sent a broken reply: {exc}") from None
        finally:
            self.client.set_recv_timeout(10.0)
        self.running = False
        return StopReply(text)

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:  # a stub that went away with QEMU: nothing left to close
            pass
