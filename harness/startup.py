# SPDX-License-Identifier: GPL-2.0-only
"""The command line's first moments: a Ctrl-C or SIGTERM while its modules still load.

Until `loaded()`, either signal ends the process at once with one line and the status of
an interrupt (130), not in a KeyboardInterrupt traceback out of some import: nothing has
been started that would need stopping. `loaded()` puts back what was there before, so
importing the command line as a library (the tests do) sets nothing for good.
"""

from __future__ import annotations

import os
import signal

INTERRUPTED = 130


def _interrupted(signum, frame):
    os.write(2, b"seedchain: interrupted\n")
    os._exit(INTERRUPTED)


try:
    _before = {s: signal.signal(s, _interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
except ValueError:          # imported off the main thread: signals are not ours to set
    _before = {}


def loaded() -> None:
    for sig, handler in _before.items():
        signal.signal(sig, handler)
    _before.clear()
