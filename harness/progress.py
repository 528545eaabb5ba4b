# SPDX-License-Identifier: GPL-2.0-only
"""Progress of long steps (downloads, root file systems, builds), for whoever watches.

The pipeline says where messages go (`reporting`); the steps deep inside a stage call
`say` or drive a `Meter`, so no progress callback has to be threaded through every
function. A message that starts with TRANSIENT is an in-between update: a terminal
may write it over the previous one, a log leaves it out. The others (a step's start,
every tenth of it or every MILESTONE seconds, its end) are for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from harness.text import one_line, terminal

TRANSIENT = "\r"
MILESTONE = 15.0            # seconds between lines for a log
UPDATE = 0.5                # seconds between a terminal's in-place updates

Sink = Callable[[str], None]
_SINK: ContextVar[Sink | None] = ContextVar("seedchain_progress", default=None)


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def say(message: str, transient: bool = False) -> None:
    sink = _SINK.get()
    if sink is not None:
        sink((TRANSIENT if transient else "") + message)


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class Meter:
    """A step with a known total (bytes, or steps with unit='steps'): rate and time left."""

    def __init__(self, what: str, total: float, unit: str = "bytes", clock=time.monotonic):
        self.what, self.total, self.unit, self.clock = what, max(total, 1), unit, clock
        self.started = self.clock()
        self._last_update = self._last_line = self.started
        self._tenth = 0
        say(f"{what}: {self._amount(total)}")

    def _amount(self, n: float) -> str:
        return _mb(n) if self.unit == "bytes" else f"{int(n)} steps"

    def text(self, done: float) -> str:
        elapsed = self.clock() - self.started
        parts = [f"{self.what}: {self._amount(done)} of {self._amount(self.total)} "
                 f"({100 * done / self.total:.0f}%)"]
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            parts.append(f"{_mb(rate)}/s" if self.unit == "bytes" else f"{rate:.1f} steps/s")
            parts.append(f"about {_duration(max(0.0, (self.total - done) / rate))} left")
        return ", ".join(parts)

    def update(self, done: float) -> None:
        now = self.clock()
        tenth = int(10 * done / self.total)
        if tenth > self._tenth or now - self._last_line >= MILESTONE:
            self._tenth, self._last_line, self._last_update = max(tenth, self._tenth), now, now
            say(self.text(done))
        elif now - self._last_update >= UPDATE:
            self._last_update = now
            say(self.text(done), transient=True)

    def finish(self, done: float | None = None) -> None:
        elapsed = self.clock() - self.started
        done = self.total if done is None else done
        rate = f", {_mb(done / elapsed)}/s" if self.unit == "bytes" and elapsed > 0 else ""
        say(f"{self.what}: {self._amount(done)} in {elapsed:.1f} s{rate}")


class Terminal:
    """The command line's progress lines; on a terminal an in-between update is written over the last line
    (at most every UPDATE seconds), elsewhere it is left out."""

    def __init__(self, out):
        self.out = out
        self.tty = out.isatty()
        self.pending = False
        self.last = 0.0

    def update(self, text: str) -> None:
        now = time.monotonic()
        if self.tty and now - self.last >= UPDATE:
            self.last = now
            self.out.write(f"\r{one_line(text[:200])}\x1b[K")
            self.out.flush()
            self.pending = True

    def line(self, text: str) -> None:
        self.out.write(("\r\x1b[K" if self.pending else "") + terminal(text) + "\n")
        self.out.flush()
        self.pending = False
