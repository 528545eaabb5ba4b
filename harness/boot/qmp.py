# SPDX-License-Identifier: GPL-2.0-only
"""A synchronous QMP monitor: qemu.qmp's asyncio client on an event loop of its own.

The runner is synchronous and is stopped by KeyboardInterrupt (Ctrl-C, or SIGTERM
turned into one). qemu.qmp's own synchronous shim (`qemu.qmp.legacy`) leaves a
command's task pending when that cuts its wait short; once QEMU has gone the task
fails with `Disconnected`, nobody takes the failure, and asyncio prints it as a
traceback when the task is collected. Here a call that does not complete has its
task cancelled and settled before the interruption goes on, and closing settles
whatever the client still runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from collections.abc import Awaitable

from qemu.qmp import QMPClient


class Monitor:
    """A QMP server socket QEMU connects to (`-mon chardev=...`), then commands."""

    def __init__(self, path: Path | str):
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient()
        self.timeout: float | None = None           # for `cmd`; None waits as long as it takes
        self._run(self._client.start_server(str(path)))

    def accept(self, timeout: float) -> None:
        """Wait for QEMU to connect and negotiate capabilities."""
        self._run(self._client.accept(), timeout)

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def cmd(self, name: str, **arguments: Any) -> Any:
        """Run a command; its `return` value, or qemu.qmp's ExecuteError."""
        return self._run(self._client.execute(name, arguments or None), self.timeout)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            try:
                self._run(self._client.disconnect(), 5.0)
            except Exception:  # a monitor QEMU dropped says so here again; nothing to save
                pass
            left = asyncio.all_tasks(self._loop)
            for task in left:
                task.cancel()
            if left:    # each ends now; gathering takes their outcomes, so none is reported
                self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        finally:
            self._loop.close()

    def _run(self, awaitable: Awaitable, timeout: float | None = None) -> Any:
        task = self._loop.create_task(asyncio.wait_for(awaitable, timeout))
        try:
            return self._loop.run_until_complete(task)
        except BaseException:
            self._settle(task)
            raise

    def _settle(self, task: asyncio.Future) -> None:
        """Let a task that did not finish end (cancelled), and take its outcome."""
        if not task.done():
            task.cancel()
            try:
                self._loop.run_until_complete(asyncio.wait([task]))
            except BaseException:  # a second interruption: stop settling, the first goes on
                return
        if not task.cancelled():
            task.exception()                        # taken: asyncio does not report it

