# SPDX-License-Identifier: GPL-2.0-only
"""Known gap arm64-6.12-kexec-load-oops-with-lpa2 over the recorded runs it rests on
(tests/fixtures/matrix/arm64-6.12-kexec-load/, QEMU 10.0.13 -M virt, Debian's 6.12.118-1
in both layers): layer 1 oopses in kexec_load on a CPU with FEAT_LPA2 (lpa2.json,
-cpu max,pauth-impdef=on), and loads the child with lpa2=off (lpa2-off.json).

The matrix cell keeps measuring it: excused while the oops shows, an unexpected pass
once a fixed 6.12 loads the child, and no excuse for another kernel series or a CPU
without LPA2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.matrix.known_gaps import classify, load_gaps

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path(__file__).parent / "fixtures" / "matrix" / "arm64-6.12-kexec-load"
GAP = "arm64-6.12-kexec-load-oops-with-lpa2"


@pytest.fixture(scope="module")
def gaps():
    return load_gaps(ROOT / "scenarios" / "known-gaps.yaml")


def recorded(name: str) -> dict:
    return json.loads((RUNS / name).read_text())


def test_the_oops_is_a_known_gap(gaps):
    result = recorded("lpa2.json")
    assert result["layers"][1]["booted"] is False and result["qemu"]["cpu"] == "max,pauth-impdef=on"
    verdict = classify(result, gaps)
    assert verdict.status == "known-gap", verdict.lines()
    assert GAP in verdict.gaps
    assert classify(result, [g for g in gaps if g.id != GAP]).status == "fail"


def test_a_fixed_6_12_shows_as_an_unexpected_pass(gaps):
    """The cell as a fixed kernel would leave it: the child booted, as with lpa2=off."""
    fixed = recorded("lpa2.json")
    fixed["layers"] = copy.deepcopy(recorded("lpa2-off.json")["layers"])
    for layer in fixed["layers"]:
        layer["outcome"] = {}
    fixed["passed"] = True
    verdict = classify(fixed, gaps)
    assert verdict.status == "unexpected-pass", verdict.lines()
    assert any(GAP in str(c.to_json()) for c in verdict.unexpected)


def test_no_lpa2_no_gap(gaps):
    """With lpa2=off the load works and the gap does not apply (nothing excused, nothing news)."""
    result = recorded("lpa2-off.json")
    assert result["passed"] and classify(result, gaps).status == "pass"
    failing = recorded("lpa2.json")
    failing["qemu"]["cpu"] = "max,pauth-impdef=on,lpa2=off"
    assert classify(failing, gaps).status == "fail"


@pytest.mark.parametrize("field, value", [
    ("kernel_version", "7.2.13-1"),     # sid's 7.2 allocates the P4D table
    ("kernel_version", "6.1.192-2"),    # no 52-bit VAs with 4K pages
])
def test_other_parent_kernels_are_not_excused(gaps, field, value):
    result = recorded("lpa2.json")
    result["layers"][0][field] = value
    result["layers"][0]["kernel"] = None
    assert classify(result, gaps).status == "fail"


def test_qemu_without_lpa2_is_not_excused(gaps):
    """QEMU 5.2's max CPU has no FEAT_LPA2: a 6.12 that fails to load there is something else."""
    result = recorded("lpa2.json")
    result["qemu"]["cpu"], result["qemu"]["version"] = "max", "5.2.0 (Debian 1:5.2+dfsg-11+deb11u3)"
    assert classify(result, gaps).status == "fail"
