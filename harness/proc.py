# SPDX-License-Identifier: GPL-2.0-only
"""Process helpers shared by every stage that starts a long-lived child."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """For Popen's preexec_fn: the child gets `sig` (SIGKILL) when this process dies, however
    it dies. A child that unwinds by itself on SIGTERM (a worker of `seedchain run -j`) asks
    for that instead, so it can quit its QEMU and keep its logs."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))


def signals_as_at_a_terminal() -> None:
    """For Popen's preexec_fn: the child reacts to SIGINT and SIGTERM as one started from a
    terminal does. A process started in the background by a shell without job control (nohup,
    cron, a CI runner's job) ignores SIGINT, and so would every child it starts; a test or a
    benchmark that interrupts a child sets the state it tests."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
