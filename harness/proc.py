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
