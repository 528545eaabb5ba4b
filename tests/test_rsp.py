# SPDX-License-Identifier: GPL-2.0-only
"""The GDB remote protocol's framing (harness/boot/rsp.py) and the gdbstub driver on it,
over exchanges recorded from real QEMU runs (tests/fixtures/gdb/, made by
tests/record_gdb.py): the driver, given what QEMU sent, sends byte for byte what it sent
then and reads the same stops, registers and answers."""

import json
import re
from pathlib import Path

import pytest

from harness.boot import gdb, rsp
from harness.errors import QemuError
from record_gdb import recorded_form

RECORDED = sorted((Path(__file__).parent / "fixtures" / "gdb").glob("*.json"))


class Replay:
    """A socket that plays QEMU's side of a recorded exchange and checks the other side."""

    def __init__(self, entries: list[dict]):
        self.entries = entries
        self.at = 0

    def _next(self) -> dict | None:
        return self.entries[self.at] if self.at < len(self.entries) else None

    def settimeout(self, value):
        pass

    def sendall(self, data: bytes):
        entry = self._next()
        assert entry is not None and "out" in entry, f"sent {data!r} where the recording has {entry}"
        assert data == entry["out"].encode("latin-1"), f"entry {self.at}"
        self.at += 1

    def recv(self, size: int) -> bytes:
        entry = self._next()
        if entry is not None and "in" in entry:
            self.at += 1
            return entry["in"].encode("latin-1")
        if entry == {"timeout": True}:
            self.at += 1
        raise TimeoutError("recorded: nothing came")

    def close(self):
        pass



@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_the_driver_replays_a_real_qemu_exchange_byte_for_byte(path, monkeypatch):
    data = json.loads(path.read_text())
    calls = [e for e in data["exchange"] if "call" in e]
    assert calls[0]["call"] == "__init__" and any(c["call"] == "registers" for c in calls)
    wire, times = [], 1
    for entry in data["exchange"]:       # a quiet poll kept once with its count: its timeout as often
        if "call" in entry:
            times = entry.get("times", 1)
        else:
            wire += [entry] * (times if entry == {"timeout": True} else 1)
    fake = Replay(wire)
    monkeypatch.setattr(rsp.Link, "unix", classmethod(lambda cls, path, timeout=10.0: cls(fake)))
    stub = gdb.Stub(Path("/nonexistent/gdb.sock"), calls[0]["args"][0])
    stops = 0
    for call in calls[1:]:
        for _ in range(call.get("times", 1)):
            got = recorded_form(getattr(stub, call["call"])(*call["args"]))
            assert got == call["result"], call
            stops += isinstance(got, str) and got.startswith("T")
    assert fake.at == len(fake.entries)          # everything QEMU sent was read, all we sent matched
    assert stops >= 1                            # at least the breakpoint at the first entry


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_every_packet_qemu_sent_has_a_good_checksum_and_is_acknowledged(path):
    entries = json.loads(path.read_text())["exchange"]
    received = b"".join(e["in"].encode("latin-1") for e in entries if "in" in e)
    sent = b"".join(e["out"].encode("latin-1") for e in entries if "out" in e)
    packets = received.count(b"$")
    acks = re.sub(rb"\$[^#]*#[0-9a-f]{2}", b"", sent)      # what was sent outside packets
    assert packets and acks.replace(b"\x03", b"") == b"+" * packets
    link = rsp.Link(Replay([{"in": received.decode("latin-1")}] + [{"out": "+"}] * packets))
    for _ in range(packets):
        link.receive(1.0)
    with pytest.raises(rsp.Timeout):
        link.receive(0.01)


# -- framing ------------------------------------------------------------------------------

def test_a_packet_is_framed_with_its_checksum_and_special_bytes_escaped():
    assert rsp.frame(b"g") == b"$g#67"
    assert rsp.frame(b"Z1,100000,1") == b"$Z1,100000,1#35"         # as recorded from QEMU
    assert rsp.frame(b"a$b#c}d*") == b"$a}\x04b}\x03c}]d}\x0a#" + rsp.checksum(b"a}\x04b}\x03c}]d}\x0a")
    for data in (b"$#}*", bytes(range(256))):
        assert rsp.decode(rsp.escape(data)) == data


def test_runs_are_expanded_as_gdb_documents_them():
    assert rsp.decode(b"0* ") == b"0000"                 # " " is 32: three more
    assert rsp.decode(b"ab*\"c") == b"abbbbbbc"          # '"' is 34: five more
    assert rsp.decode(b"}]*!") == b"}}}}}"               # an escaped byte repeated
    with pytest.raises(rsp.ProtocolError):
        rsp.decode(b"*!")                                 # nothing to repeat


class Peer:
    """A socket fed by the test, recording what the link sends."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks)
        self.sent = b""

    def settimeout(self, value):
        pass

    def sendall(self, data):
        self.sent += data

    def recv(self, size):
        if not self.chunks:
            raise TimeoutError()
        chunk = self.chunks.pop(0)
        if chunk is None:
            raise TimeoutError()
        return chunk

    def close(self):
        pass


def test_a_damaged_packet_is_refused_and_its_resend_taken():
    peer = Peer(b"$OK#00", b"$OK#9a")
    assert rsp.Link(peer).receive(1.0) == b"OK"
    assert peer.sent == b"-+"


def test_a_refused_packet_is_sent_again():
    peer = Peer(b"-", b"+")
    rsp.Link(peer).send("c")
    assert peer.sent == b"$c#63$c#63"


def test_a_packet_half_read_when_the_wait_ran_out_is_read_whole_next_time():
    peer = Peer(b"$T05thr", None, b"ead:01;#07")
    link = rsp.Link(peer)
    with pytest.raises(rsp.Timeout):
        link.receive(0.5)
    assert link.receive(0.5) == b"T05thread:01;"
    assert peer.sent == b"+"


def test_a_reply_that_comes_with_the_ack_is_kept_for_the_next_read():
    peer = Peer(b"+$OK#9a")
    link = rsp.Link(peer)
    assert link.command("Z1,100000,1") == b"OK"
    assert peer.sent == b"$Z1,100000,1#35+"


def test_the_interrupt_is_one_byte_outside_any_packet():
    peer = Peer()
    rsp.Link(peer).interrupt()
    assert peer.sent == b"\x03"


def test_a_closed_connection_is_a_protocol_error_and_a_timeout_its_own_exception():
    assert not issubclass(rsp.Timeout, rsp.ProtocolError)
    peer = Peer(b"")
    with pytest.raises(rsp.ProtocolError, match="closed"):
        rsp.Link(peer).receive(1.0)
    with pytest.raises(rsp.Timeout):
        rsp.Link(Peer()).receive(0.05)


def test_the_driver_turns_a_silent_stub_into_a_qemu_error(monkeypatch):
    monkeypatch.setattr(rsp.Link, "unix", classmethod(lambda cls, path, timeout=10.0: cls(Peer(b"+"))))
    with pytest.raises(QemuError, match="did not answer"):
        gdb.Stub(Path("/nonexistent/gdb.sock"), timeout=0.1)


def test_the_stub_listens_on_a_unix_socket_in_the_run_folder(tmp_path):
    args = gdb.qemu_args(tmp_path)
    assert f"socket,id=gdbstub,path={tmp_path / 'gdb.sock'},server=on,wait=off" in args
    assert not any("tcp" in a or "host=" in a or "port=" in a for a in args)
