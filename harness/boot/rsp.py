# SPDX-License-Identifier: GPL-2.0-only
"""The GDB remote serial protocol's framing, over one stream socket.

A packet is `$` payload `#` and two hex digits, the payload's byte sum modulo 256. The
receiver answers `+` (taken) or `-` (send it again). In a payload `}` escapes the next
byte (which is XORed with 0x20): `$`, `#`, `}` and `*` travel so. In what the stub sends,
`c*n` is run-length encoding: c repeated ord(n) - 29 more times. A lone 0x03 byte
interrupts a running target, which then sends a stop reply. (GDB's manual, "Overview"
and "Interrupts" of its Remote Protocol appendix; QEMU's side is gdbstub/gdbstub.c.)

Only the framing is here; harness/boot/gdb.py says what the packets mean. The project
frames the protocol itself so that it can run over a Unix socket, keep a half-read
packet across a timeout, and raise `Timeout` as an exception of its own.
"""

from __future__ import annotations

import socket
import time
from collections import deque

INTERRUPT = b"\x03"
MAX_PACKET = 1 << 20            # a stub's reply to "g" is a few KiB; more is no stub of ours
_SPECIAL = b"$#}*"


class Timeout(Exception):
    """Nothing (or not a whole packet) came within the time allowed."""


class ProtocolError(Exception):
    """The peer broke the framing: a bad checksum too often, a refused packet, a closed link."""


def checksum(payload: bytes) -> bytes:
    return b"%02x" % (sum(payload) & 0xFF)


def escape(data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        if byte in _SPECIAL:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def frame(data: bytes) -> bytes:
    """The packet that carries `data`."""
    payload = escape(data)
    return b"$" + payload + b"#" + checksum(payload)


def decode(payload: bytes) -> bytes:
    """A received payload's data: escapes undone, runs expanded."""
    out = bytearray()
    at = 0
    while at < len(payload):
        byte = payload[at]
        if byte == 0x7D:                          # "}": the next byte XOR 0x20
            if at + 1 >= len(payload):
                raise ProtocolError("a packet ends inside an escape")
            out.append(payload[at + 1] ^ 0x20)
            at += 2
        elif byte == 0x2A:                        # "*": a run of the byte before
            if not out or at + 1 >= len(payload):
                raise ProtocolError("a run-length mark with nothing to repeat")
            count = payload[at + 1] - 29
            if count < 0:
                raise ProtocolError(f"a run-length count below zero ({payload[at + 1]:#x})")
            out += bytes((out[-1],)) * count
            at += 2
        else:
            out.append(byte)
            at += 1
    return bytes(out)


class Link:
    """One connection to a stub. Bytes that came and are not used yet stay in `buffer`,
    so a packet half-read when a wait ran out is read whole by the next wait."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.packets: deque[bytes] = deque()      # packets that came while an ack was awaited

    @classmethod
    def unix(cls, path: str, timeout: float = 10.0) -> Link:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    # -- bytes -------------------------------------------------------------------------
    def _fill(self, deadline: float) -> None:
        """Wait for more bytes until `deadline` (Timeout after it)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("no answer from the stub in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise Timeout("no answer from the stub in time") from None
        except OSError as exc:
            raise ProtocolError(f"the link to the stub failed: {exc}") from None
        if not data:
            raise ProtocolError("the stub closed the connection")
        self.buffer += data

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ProtocolError(f"the link to the stub failed: {exc}") from None

    # -- packets -----------------------------------------------------------------------
    def _take(self) -> bytes | str | None:
        """The next whole item in the buffer: "+" or "-" (an ack), a packet's raw payload,
        or None while it is incomplete. Bytes outside a packet are dropped."""
        while self.buffer:
            first = self.buffer[:1]
            if first in (b"+", b"-"):
                del self.buffer[:1]
                return first.decode()
            if first != b"$":
                del self.buffer[:1]
                continue
            end = self.buffer.find(b"#")
            if end < 0:
                if len(self.buffer) > MAX_PACKET:
                    raise ProtocolError(f"a packet longer than {MAX_PACKET} bytes")
                return None
            if len(self.buffer) < end + 3:
                return None
            payload, given = bytes(self.buffer[1:end]), bytes(self.buffer[end + 1:end + 3]).lower()
            del self.buffer[:end + 3]
            if given != checksum(payload):
                self._send(b"-")                  # damaged: the stub sends it again
                continue
            self._send(b"+")
            return payload
        return None

    def send(self, data: bytes | str, timeout: float = 10.0) -> None:
        """Send a packet and wait for the stub to take it (sent again after a "-")."""
        raw = frame(data.encode() if isinstance(data, str) else data)
        deadline = time.monotonic() + timeout
        for _ in range(3):
            self._send(raw)
            while True:
                item = self._take()
                if item is None:
                    self._fill(deadline)
                elif isinstance(item, bytes):       # a packet that came before the ack
                    self.packets.append(item)
                elif item == "+":
                    return
                else:                               # "-": send it again
                    break
        raise ProtocolError(f"the stub refused the packet {raw[:40]!r} three times")

    def receive(self, timeout: float) -> bytes:
        """The next packet's data (Timeout when none came whole within `timeout`)."""
        if self.packets:
            return decode(self.packets.popleft())
        deadline = time.monotonic() + timeout
        while True:
            item = self._take()
            if isinstance(item, bytes):
                return decode(item)
            if item is None:
                self._fill(deadline)

    def command(self, data: bytes | str, timeout: float = 10.0) -> bytes:
        """Send a packet and return the reply's data."""
        self.send(data, timeout)
        return self.receive(timeout)

    def interrupt(self) -> None:
        self._send(INTERRUPT)

    def close(self) -> None:
        self.sock.close()
