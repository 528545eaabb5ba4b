# SPDX-License-Identifier: GPL-2.0-only
"""The verdict table `seedchain run` prints: 100 columns, no column n/a in every layer,
colour on a terminal only and never with NO_COLOR. Every recorded run is replayed
(tests/test_golden.py) and rendered."""

from __future__ import annotations

import io
import os
import re

import pytest

from harness import cli
from harness.jobs import Outcome
from harness.reports.terminal import SHORT, WIDTH, colour_wanted, summary, table
from harness.scenario.model import CHECKS
from recorded import names
from test_golden import replayed

ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("name", names())
def test_the_table_of_every_recorded_run_fits_100_columns(name):
    lines = table(replayed(name)).splitlines()
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert WIDTH == 100 and not too_wide, f"{name}: {[len(line) for line in too_wide]} columns"


@pytest.mark.parametrize("name", names())
def test_a_check_n_a_in_every_layer_has_no_column_and_is_named_under_the_table(name):
    result = replayed(name)
    text = table(result)
    header = text.splitlines()[0].split()
    for check in CHECKS:
        none = all(layer.observed[check] is None and layer.expect[check] is None for layer in result.layers)
        assert (SHORT[check] in header) != none, (name, check)
        named = re.search(rf"not applicable in any layer:[^\n]*(\n  [^\n]*)*\b{check}\b", text)
        assert bool(named) == none, (name, check)


def test_the_legend_names_each_short_header_with_its_result_json_key():
    text = table(replayed("kexec-file-4"))
    legend = " ".join(line.strip() for line in text.splitlines() if line.startswith(("columns:", "  ")))
    for check in ("booted", "received", "zeroed_sysfs", "zeroed_ram", "credited", "exposed", "lingering",
                  "passed_on"):
        assert f"{SHORT[check]}={check}" in legend
    assert "not applicable in any layer: seed_file_refreshed" in text
    # lingering was searched (RAM) in kexec-file-4 but not in kexec-file-2's first layer: still a column
    assert "linger" in text.splitlines()[0]


def _broken():
    """old-child with two expectations turned round: zeroed_sysfs and exposed break in layer 2."""
    result = replayed("old-child")
    result.layers[1].expect.update(zeroed_sysfs=True, exposed=False)
    return result


def test_the_failure_lines_under_the_table_are_kept():
    text = summary(_broken())
    assert "what broke:" in text
    assert "zeroed_sysfs expected yes observed no" in text and "exposed expected no observed yes" in text
    assert "no != yes" in text and "yes != no" in text


def test_colour_marks_held_broken_and_n_a_cells():
    text = table(_broken(), colour=True)
    assert "\x1b[32myes ok\x1b[0m" in text            # an expectation that held: green
    assert "\x1b[31mno != yes\x1b[0m" in text         # a broken one: red
    assert "\x1b[2mn/a\x1b[0m" in text                # n/a: dim
    assert ESCAPE.sub("", text) == table(_broken()), "colour changes nothing but the colour"


def _printed(stream, monkeypatch) -> str:
    monkeypatch.setattr("sys.stdout", stream)
    result = _broken()
    cli._print_outcome(Outcome(scenario=result.scenario, result=result))
    stream.flush()
    return stream.getvalue() if isinstance(stream, io.StringIO) else ""


def _on_a_terminal(monkeypatch) -> str:
    """What `seedchain run` prints for a result on a pseudo-terminal (small: fits its buffer)."""
    parent, child = os.openpty()
    with open(child, "w", closefd=True) as tty:
        _printed(tty, monkeypatch)
    os.set_blocking(parent, False)
    data = b""
    try:
        while chunk := os.read(parent, 65536):
            data += chunk
    except OSError:         # drained (EAGAIN), or the terminal's other end is closed (EIO)
        pass
    finally:
        os.close(parent)
    return data.decode()


def test_a_terminal_gets_colour(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[31mno != yes" in _on_a_terminal(monkeypatch)


@pytest.mark.parametrize("value", ["1", "", "0"])
def test_no_color_set_to_any_value_means_no_colour(monkeypatch, value):
    monkeypatch.setenv("NO_COLOR", value)
    printed = _on_a_terminal(monkeypatch)
    assert "no != yes" in printed and "\x1b[" not in printed


def test_no_colour_when_stdout_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    printed = _printed(io.StringIO(), monkeypatch)
    assert "no != yes" in printed and "\x1b[" not in printed
    assert colour_wanted(io.StringIO()) is False


def test_a_result_without_layers_has_a_header_and_no_column_of_checks():
    from dataclasses import replace
    result = replace(replayed("kexec-file-2"), layers=[], error="QEMU did not start")
    text = summary(result)
    assert "ERROR (no verdict)" in text and "QEMU did not start" in text
    assert "not applicable" not in text and "columns:" not in text


def test_guest_text_in_the_kernel_column_is_escaped():
    result = replayed("kexec-file-2")
    result.layers[1].facts.report.fields["kernel_release"] = "6.1\x1b]0;owned\x07"
    text = table(result, colour=True)
    assert "\x1b]" not in text and "6.1\\x1b]0;owned\\x07" in text


def _every_expectation_inverted(name):
    """A recorded run judged against the opposite of every value it observed: every
    observed cell is a broken expectation ("yes != no"), the widest cells there are."""
    result = replayed(name)
    for layer in result.layers:
        layer.expect.update({n: (not v) for n, v in layer.observed.items() if v is not None})
    return result


@pytest.mark.parametrize("name", names())
def test_broken_expectations_turn_the_table_rather_than_widen_it(name):
    result = _every_expectation_inverted(name)
    text = table(result)
    assert max(len(line) for line in text.splitlines()) <= WIDTH, name
    if any(layer.observed[n] is not None for layer in result.layers for n in CHECKS):
        assert " != " in text


def test_the_turned_table_names_the_checks_in_full_and_keeps_the_failure_lines():
    text = summary(_every_expectation_inverted("kexec-file-4"), colour=False)
    lines = text.splitlines()
    assert lines[1].split() == ["check", "layer", "1", "layer", "2", "layer", "3", "layer", "4"]
    assert lines[3].startswith("kernel ") and lines[4].startswith("loader ")
    assert lines[5].split()[:4] == ["booted", "yes", "!=", "no"]
    assert "columns:" not in text and "not applicable in any layer: seed_file_refreshed" in text
    assert "what broke:" in text and "booted expected no observed yes" in text
    coloured = table(_every_expectation_inverted("kexec-file-4"), colour=True)
    assert "\x1b[31myes != no\x1b[0m" in coloured
    assert ESCAPE.sub("", coloured) == table(_every_expectation_inverted("kexec-file-4"))
