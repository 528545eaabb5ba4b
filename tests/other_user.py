# SPDX-License-Identifier: GPL-2.0-only
"""Another local user, for the tests of what seedchain keeps private: a forked child that
drops to uid and gid 65534 (nobody) with no supplementary groups tries something, and
says how it went.

The tests run as root (CI and the developers' machines do). Not as root, a child cannot
become another user, and a test that cannot try what another user could do must not
pass as if it had: it fails, saying so (a skip would hide that the promise went unchecked).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534


def attempt(action, *args) -> str:
    """"ok" when `action(*args)` succeeded as the other user, else the error's name
    ("PermissionError", "FileNotFoundError", ...)."""
    if os.geteuid() != 0:
        pytest.fail("this test acts as another local user and needs root to become one (uid 65534); "
                    "run it as root")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the other user
        said = b"error"
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                action(*args)
                said = b"ok"
            except OSError as exc:
                said = type(exc).__name__.encode()
            os.write(write, said)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as got:
        outcome = got.read().decode()
    os.waitpid(pid, 0)
    assert outcome != "error", "the child could not become the other user"
    return outcome


def read_file(path) -> None:
    with open(path, "rb") as f:
        f.read(1)


def connect(address) -> None:
    """A Unix socket's path, or a (host, port) pair."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(address if isinstance(address, tuple) else str(address))


def list_folder(path) -> None:
    os.listdir(path)


class Shared:
    """A folder every user may enter (as /tmp is), so that only the modes seedchain sets
    keep the other user out (pytest's tmp_path is under a 0700 folder, which would)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="seedchain-shared-", dir="/tmp"))
        os.chmod(self.path, 0o755)
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
