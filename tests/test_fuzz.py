# SPDX-License-Identifier: GPL-2.0-only
"""Any input to the loaders and the report parser: a result, or the project's own error
naming file:line (a report's line), never another exception and never a host file's bytes.
The example count is tests/strategies.py's profile (SEEDCHAIN_FUZZ: ci or stress); each
@example is an input that once failed."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.facts.report import GuestReport, LoaderRecord, ReportError, parse_loader, parse_report, take_block
from harness.matrix.expand import expand
from harness.matrix.known_gaps import KnownGapsError, load_gaps, parse_gaps
from harness.scenario.model import Scenario
from harness.scenario.load import load_scenario, load_text
from strategies import (BYTES, FUZZ, MATRIX_SCENARIOS, REPORTS, ROOT, SECRET, STREAMS, TEXT, dump,
                        known_gaps, matrices, mutated, scenarios, secret_file)

# One folder for the whole module (hypothesis runs each example in the same test call).
FOLDER = Path(tempfile.mkdtemp(prefix="seedchain-fuzz-"))
HOST_FILE = str(secret_file(FOLDER))
PATHS = [HOST_FILE, str(FOLDER), "../host-secret"]
MATRIX_FOLDER = FOLDER / "matrix"
MATRIX_FOLDER.mkdir()
for _name in MATRIX_SCENARIOS:
    shutil.copy(ROOT / "scenarios" / f"{_name}.yaml", MATRIX_FOLDER)


def teardown_module():
    shutil.rmtree(FOLDER, ignore_errors=True)


def refused_cleanly(error: Exception, where: str) -> None:
    message = str(error)
    assert re.match(rf"{re.escape(where)}:\d+", message), f"no {where}:LINE in: {message}"
    assert SECRET not in message, message


def scenario_outcome(text: str, where: str = "fuzz.yaml"):
    try:
        result = load_text(text, where)
    except ScenarioError as e:
        refused_cleanly(e, where)
        return e
    assert isinstance(result, Scenario)
    assert [layer.index for layer in result.layers] == list(range(1, len(result.layers) + 1))
    assert result.layers[0].loader == "qemu"
    return result


# --- the scenario loader -----------------------------------------------------------------

@FUZZ
@given(TEXT)
def test_scenario_text(text):
    scenario_outcome(text)


@FUZZ
@given(scenarios(PATHS))
def test_scenario_documents(data):
    scenario_outcome(dump(data))


@FUZZ
@given(mutated((ROOT / "tests" / "fixtures" / "scenarios" / "good" / "kexec-file-chain.yaml").read_text()))
def test_scenario_mutated_file(text):
    scenario_outcome(text)


@FUZZ
@given(BYTES)
def test_scenario_bytes(data):
    path = FOLDER / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_scenario(path)
    except ScenarioError as e:
        refused_cleanly(e, str(path))


# --- the matrix file ---------------------------------------------------------------------

def matrix_outcome(text: str, name: str = "nightly"):
    path = MATRIX_FOLDER / "matrix.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cells = expand(path, name)
    except ScenarioError as e:
        refused_cleanly(e, str(path))
        return e
    assert all(isinstance(c, Scenario) for c in cells)
    assert len({c.id for c in cells}) == len(cells)
    return cells


@FUZZ
@given(matrices(PATHS), st.sampled_from(["nightly", "smoke", "none"]))
@example({"matrices": {"nightly": {"groups": [{"scenarios": ["qemu-only"], "axes": {
    axis: [{"value": f"v{i}", "label": "same"} for i in range(32)]
    for axis in ("qemu", "machine", "firmware", "kernel", "child_kernel", "userland")}}]}}}, "nightly")
@example({"matrices": {"nightly": {"groups": [{"scenarios": ["qemu-only"], "axes": {"machine": ["pc"]}}]}}},
         "none")
def test_matrix_documents(data, name):
    matrix_outcome(dump(data), name)


@FUZZ
@given(mutated((ROOT / "scenarios" / "matrix.yaml").read_text().replace("kexec-load", "kexec-file-2")))
def test_matrix_mutated_file(text):
    matrix_outcome(text, "smoke")


@FUZZ
@given(TEXT)
def test_matrix_text(text):
    matrix_outcome(text)


# --- the known-gaps file -----------------------------------------------------------------

def gaps_outcome(text: str, where: str = "gaps.yaml"):
    try:
        return parse_gaps(text, where)
    except KnownGapsError as e:
        refused_cleanly(e, where)
        return e


@FUZZ
@given(known_gaps(PATHS))
@example([{"id": "a", "component": "qemu", "versions": ">=1", "also": {"kernel": "zzz"},
           "checks": {"received": False}, "reason": "r", "source": "s"}])
def test_known_gaps_documents(data):
    gaps_outcome(dump(data))


@FUZZ
@given(mutated((ROOT / "scenarios" / "known-gaps.yaml").read_text()[:6000]))
def test_known_gaps_mutated_file(text):
    gaps_outcome(text)


@FUZZ
@given(TEXT | BYTES)
def test_known_gaps_text_and_bytes(data):
    if isinstance(data, str):
        gaps_outcome(data)
        return
    path = FOLDER / "gaps.yaml"
    path.write_bytes(data)
    try:
        load_gaps(path)
    except KnownGapsError as e:
        refused_cleanly(e, str(path))


# --- the guest report parser -------------------------------------------------------------

def refused_report(error: ReportError) -> None:
    message = str(error)
    assert message and len(message) <= 200, message     # the guest's bytes are clipped


@FUZZ
@given(REPORTS | BYTES)
def test_report_blocks(raw):
    for parse, kind in ((parse_report, GuestReport), (parse_loader, LoaderRecord)):
        try:
            assert isinstance(parse(raw), kind)
        except ReportError as e:
            refused_report(e)


@FUZZ
@given(STREAMS)
def test_report_streams(stream):
    """The channel as the host reads it: blocks split off, each parsed or refused."""
    rest = stream
    while True:
        block, left = take_block(rest, b"@begin ", b"@end 1")
        if block is None:
            assert left == rest
            break
        assert len(left) < len(rest) and block.startswith(b"@begin ")
        try:
            parse_report(block)
        except ReportError as e:
            refused_report(e)
        rest = left
