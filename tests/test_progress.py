# SPDX-License-Identifier: GPL-2.0-only
"""Progress of long steps: what a terminal and a log see of a download, a build, mmdebstrap."""

import io

from harness import progress
from harness.cli import _Terminal


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_meter_gives_lines_for_a_log_and_updates_for_a_terminal():
    seen, clock = [], Clock()
    with progress.reporting(seen.append):
        meter = progress.Meter("downloading linux-image", 50e6, clock=clock)
        for n in range(1, 101):
            clock.now += 0.1
            meter.update(n * 0.5e6)
        meter.finish()
    lines = [m for m in seen if not m.startswith(progress.TRANSIENT)]
    updates = [m for m in seen if m.startswith(progress.TRANSIENT)]
    assert lines[0] == "downloading linux-image: 50.0 MB"
    # a line at every tenth, the end included; in-between updates at most every 0.5 s
    assert len([m for m in lines if "%)" in m]) == 10
    assert "downloading linux-image: 25.0 MB of 50.0 MB (50%), 5.0 MB/s, about 5 s left" in lines
    assert lines[-1] == "downloading linux-image: 50.0 MB in 10.0 s, 5.0 MB/s"
    assert 5 <= len(updates) <= 20


def test_a_slow_step_still_logs_a_line_now_and_then():
    seen, clock = [], Clock()
    with progress.reporting(seen.append):
        meter = progress.Meter("building", 1000, unit="steps", clock=clock)
        for n in range(1, 61):
            clock.now += 1.0
            meter.update(n)          # 6% in a minute: no tenth reached
    lines = [m for m in seen if not m.startswith(progress.TRANSIENT)]
    assert len(lines) == 1 + 60 // int(progress.MILESTONE)
    assert "building: 60 steps of 1000 steps (6%), 1.0 steps/s, about 16 min left" in lines


def test_nothing_is_said_outside_a_run(capsys):
    seen: list[str] = []
    with progress.reporting(seen.append):
        progress.say("inside")
    progress.say("nobody listens")          # no sink: no error, no output
    assert seen == ["inside"]
    assert capsys.readouterr() == ("", "")


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_overwrites_updates_and_a_log_leaves_them_out():
    log = io.StringIO()
    plain = _Terminal(log)
    plain.update("  downloading: 10%")
    plain.line("  downloading: done")
    assert log.getvalue() == "  downloading: done\n"
    tty = Tty()
    term = _Terminal(tty)
    term.update("  downloading: 10%")
    term.line("  downloading: done")
    assert tty.getvalue() == "\r  downloading: 10%\x1b[K\r\x1b[K  downloading: done\n"
