"""The checks over facts recorded from real boots, and the verdicts built from them."""

import dataclasses
from pathlib import Path

import pytest

from harness import checks
from harness.model import CHECKS
from harness.scenario import load_scenario
from harness.verdict import judge
from recorded import facts, names, result

SCENARIOS = Path(__file__).parent.parent / "scenarios"

Y, N, NA = True, False, None

# What each recorded run shows, layer by layer, in CHECKS order:
# booted, received, zeroed_sysfs, zeroed_ram, credited, exposed, passed_on
OBSERVED = {
    "qemu-only":       [(Y, N, NA, NA, N, N, NA)],
    "kexec-file-2":    [(Y, N, NA, NA, N, N, Y), (Y, Y, Y, Y, Y, N, NA)],
    "kexec-file-4":    [(Y, N, NA, NA, N, N, Y), (Y, Y, Y, Y, Y, N, Y), (Y, Y, Y, Y, Y, N, Y),
                        (Y, Y, Y, Y, Y, N, NA)],
    "kexec-load":      [(Y, N, NA, NA, N, N, Y), (Y, Y, Y, Y, Y, N, NA)],
    "unseeded-parent": [(Y, N, NA, NA, N, N, N), (Y, N, NA, NA, N, N, NA)],
    "old-child":       [(Y, N, NA, NA, N, N, Y), (Y, Y, N, N, N, Y, NA)],
    "child-panics":    [(Y, N, NA, NA, N, N, NA), (N, NA, NA, NA, NA, NA, NA)],
}


def test_every_recorded_run_is_covered():
    assert sorted(OBSERVED) == names()


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_checks_over_recorded_runs(name):
    observed = [tuple(row[c] for c in CHECKS) for row in checks.run_checks(facts(name))]
    assert observed == OBSERVED[name]


def test_each_check_fails_for_a_real_reason_somewhere():
    """Every check is seen giving its unwanted answer in a recorded run."""
    unwanted = {"booted": N, "received": N, "zeroed_sysfs": N, "zeroed_ram": N,
                "credited": N, "exposed": Y, "passed_on": N}
    seen = {c: [] for c in CHECKS}
    for name, rows in OBSERVED.items():
        for index, row in enumerate(rows, 1):
            for check, value in zip(CHECKS, row):
                if value is unwanted[check]:
                    seen[check].append(f"{name}:{index}")
    assert all(seen.values()), seen


def test_ram_read_through_qmp_shows_a_zeroed_seed():
    layer = facts("kexec-file-2")[1]
    (entry,) = layer.ram_seeds
    assert (entry.type, entry.len, entry.data) == (9, 0, bytes(32))
    assert entry.address == layer.report.setup_data_head


def test_ram_shows_the_old_kernels_seed_intact():
    layer = facts("old-child")[1]
    (entry,) = layer.ram_seeds
    assert entry.len == 32 and any(entry.data)
    assert entry.data == layer.sysfs_seeds[0].data      # RAM and sysfs agree


def test_credit_needs_the_other_sources_off():
    parent = facts("kexec-file-2")[0]
    assert checks.other_entropy_sources(parent) == ["RDRAND (trusted CPU)"]
    child = facts("kexec-file-2")[1]
    assert checks.other_entropy_sources(child) == []
    # The same child with RDRAND trusted cannot attribute its credit to the seed.
    trusting = dataclasses.replace(child)
    trusting.report = dataclasses.replace(child.report, fields=dict(
        child.report.fields, cmdline=child.report.fields["cmdline"].replace("random.trust_cpu=off", "")))
    assert checks.credited(trusting) is None


def test_credit_is_judged_by_dmesg_order():
    child = facts("kexec-file-2")[1]
    dmesg = child.report.fields["dmesg"].splitlines()
    moved = [line for line in dmesg if "crng init done" not in line] + ["[   9.9] random: crng init done"]
    late = dataclasses.replace(child)
    late.report = dataclasses.replace(child.report, fields=dict(child.report.fields, dmesg="\n".join(moved)))
    assert checks.credited(late) is False


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_verdicts_match_the_recorded_results(name):
    recorded = result(name)
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    run = judge(scenario, facts(name))
    assert run.passed == recorded["passed"] is True
    for layer, saved in zip(run.to_json()["layers"], recorded["layers"]):
        for key in ("index", "kernel", "loader", *CHECKS, "seed_address", "expect", "outcome"):
            assert layer[key] == saved[key], (name, layer["index"], key)


def test_a_wrong_expectation_names_the_layer_component_and_version():
    scenario = load_scenario(SCENARIOS / "old-child.yaml")
    # Expect what a >= 6.0 kernel would do from the 5.10 child: the verdict must fail.
    wrong = dataclasses.replace(scenario.layers[1], expect=scenario.layers[1].expect.from_mapping({"seed": "consumed"}))
    scenario = dataclasses.replace(scenario, layers=(scenario.layers[0], wrong))
    run = judge(scenario, facts("old-child"))
    assert not run.passed
    (line,) = run.failures()
    assert line.startswith("layer 2 kernel 5.10.")
    assert "linux-image-5.10" in line and "kexec_file_load" in line and "kexec-tools 1:2.0.25" in line
    assert "zeroed_sysfs expected yes observed no" in line
    assert "credited expected yes observed no" in line
    assert "exposed expected no observed yes" in line
