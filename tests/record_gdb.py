# SPDX-License-Identifier: GPL-2.0-only
"""Record what the runner and QEMU's gdbstub say to each other in a real run, as a fixture
for tests/test_rsp.py: every Stub call (its arguments and result) and, between them,
every byte sent and every piece received on the socket (and every wait that timed out).

    .venv/bin/python tests/record_gdb.py scenarios/kexec-file-2.yaml kexec-file-2
    .venv/bin/python tests/record_gdb.py scenarios/a64-qemu-hop.yaml a64-qemu-hop

writes tests/fixtures/gdb/NAME.json; the run's verdict is printed. A run of polls that
timed out one after the other is kept as one entry with its count.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import types
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import pipeline  # noqa: E402
from harness.boot import gdb, rsp  # noqa: E402
from harness.images.cache import Cache, default_root  # noqa: E402
from harness.scenario.load import load_scenario  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "gdb"
CALLS = ("set_breakpoint", "clear_breakpoint", "registers", "step", "cont", "stop", "wait")


def recorded_form(value):
    """A Stub call's result as the fixture keeps it (tests/test_rsp.py compares in this form)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, gdb.StopReply):
        return value.text
    return value


class RecordingSocket:
    def __init__(self, sock: socket.socket, log: list[dict]):
        self.sock, self.log = sock, log

    def settimeout(self, value):
        self.sock.settimeout(value)

    def sendall(self, data: bytes):
        self.log.append({"out": bytes(data).decode("latin-1")})
        return self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        try:
            data = self.sock.recv(size)
        except TimeoutError:
            self.log.append({"timeout": True})
            raise
        self.log.append({"in": data.decode("latin-1")})
        return data

    def close(self):
        self.sock.close()


def record(scenario_path: Path, name: str) -> dict:
    log: list[dict] = []
    depth: list[str] = []
    original_unix = cast(types.MethodType, rsp.Link.unix).__func__     # the classmethod bound to Link

    def unix(cls, path, timeout=10.0):
        link = original_unix(cls, path, timeout)
        link.sock = RecordingSocket(link.sock, log)
        return link
    setattr(rsp.Link, "unix", classmethod(unix))    # noqa: B010 (mypy refuses assigning to a method)

    def wrap(method_name):
        method = getattr(gdb.Stub, method_name)

        def recorded(self, *args):
            if depth:                      # called by another recorded call (stop -> wait)
                return method(self, *args)
            at = len(log)
            log.append({"call": method_name, "args": list(args)})
            depth.append(method_name)
            try:
                value = method(self, *args)
            finally:
                depth.pop()
            log[at]["result"] = recorded_form(value)
            return value
        setattr(gdb.Stub, method_name, recorded)
    for method_name in CALLS:
        wrap(method_name)
    original_init = gdb.Stub.__init__

    def init(self, path, timeout=10.0):
        log.append({"call": "__init__", "args": [timeout]})
        original_init(self, path, timeout)
    setattr(gdb.Stub, "__init__", init)             # noqa: B010 (mypy refuses assigning to a method)

    scenario = load_scenario(scenario_path)
    with tempfile.TemporaryDirectory(prefix="seedchain-record-") as artifacts:
        result = pipeline.run(scenario, cache=Cache(default_root()), artifacts=Path(artifacts),
                              progress=print)
    caught = [layer.get("seed_in_flight", {}).get("caught") for layer in result.to_json()["layers"]]
    print(f"{name}: passed {result.passed}, caught in flight per layer: {caught}")
    return {"scenario": name, "arch": scenario.arch, "exchange": _squeeze(log)}


def _squeeze(log: list[dict]) -> list[dict]:
    """Polls that timed out one after another (a call "wait" with result None and nothing
    but a timeout on the socket) are kept once, with their count."""
    out: list[dict] = []
    at = 0
    while at < len(log):
        entry = log[at]
        quiet = (entry.get("call") == "wait" and entry.get("result") is None
                 and at + 1 < len(log) and log[at + 1] == {"timeout": True})
        if quiet and len(out) >= 2 and out[-1] == {"timeout": True} and out[-2].get("quiet") \
                and out[-2].get("args") == entry.get("args"):
            out[-2]["times"] = out[-2].get("times", 1) + 1
            at += 2
            continue
        if quiet:
            out.append({**entry, "quiet": True})
            out.append(log[at + 1])
            at += 2
            continue
        out.append(entry)
        at += 1
    return out


def main() -> None:
    scenario, name = Path(sys.argv[1]), sys.argv[2]
    data = record(scenario, name)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / f"{name}.json").write_text(json.dumps(data, indent=0) + "\n")
    print(f"wrote {FIXTURES / (name + '.json')}: {len(data['exchange'])} entries")


if __name__ == "__main__":
    main()
