# SPDX-License-Identifier: GPL-2.0-only
"""CI runs one cell of every (architecture, QEMU build) pair of the nightly matrix.

The nightly matrix runs once a day, on its own; a QEMU build or architecture that
breaks (a root file system that cannot be made, a QEMU that does not start, a boot that
goes wrong) was seen there only after it landed: on a new machine the aarch64 cells
had never run. Matrix `ci` in scenarios/matrix.yaml holds one cell per pair, each the
cheapest scenario there (one layer, the kernel the default scenarios boot), and this
module runs them in the default test run (`./dev test`: pytest -n 2 tests bench
scenarios), judged as the matrix report judges them: pass or known gap.

test_ci_covers_every_pair_of_nightly keeps it so: a QEMU build or architecture added
to nightly fails it until `ci` has a cell for it.
"""

from __future__ import annotations

import pytest

from harness.checks.verdict import RunResult
from harness.matrix.expand import expand
from harness.matrix.known_gaps import classify, load_gaps
from harness.paths import SCENARIOS
from harness.pipeline import run
from harness.reports.terminal import summary

MATRIX = SCENARIOS / "matrix.yaml"
CELLS = expand(MATRIX, "ci")


def _pair(cell) -> tuple[str, str]:
    return cell.arch, cell.qemu.build


def test_ci_covers_every_pair_of_nightly():
    # The system's QEMU (cells without a qemu axis) runs every default scenario already.
    nightly = {_pair(c) for c in expand(MATRIX, "nightly") if c.qemu.build != "system"}
    ci = [_pair(c) for c in CELLS]
    assert set(ci) == nightly, f"pairs of nightly without a ci cell: {sorted(nightly - set(ci))}"
    assert len(ci) == len(set(ci)), "one cell per pair is enough"
    assert all(len(c.layers) == 1 for c in CELLS), "the cheapest scenario: one layer"


@pytest.mark.vm
@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_ci_cell(cell, seedchain):
    result: RunResult = run(cell, cache=seedchain.cache, artifacts=seedchain.artifacts / "ci-matrix")
    verdict = classify(result.to_json(), load_gaps(SCENARIOS / "known-gaps.yaml"))
    assert verdict.status in ("pass", "known-gap"), (
        f"{verdict.summary()}\n" + "\n".join(verdict.lines()) + f"\n\n{summary(result)}")
