# SPDX-License-Identifier: GPL-2.0-only
"""The checks over facts recorded from real boots, and the verdicts built from them."""

import dataclasses
from pathlib import Path

import pytest

from harness.checks import rules as checks
from harness.scenario.model import CHECKS
from harness.scenario.load import load_scenario
from harness.checks.verdict import judge
from recorded import RUNS, facts, names, result

SCENARIOS = Path(__file__).parent.parent / "scenarios"

Y, N, NA = True, False, None
ADDED_CHECKS = ("seed_file_refreshed",)     # newer than some recorded result.json files

# What each recorded run shows, layer by layer, in CHECKS order:
# booted, received, fresh, zeroed_sysfs, zeroed_ram, credited, exposed, lingering, passed_on,
# seed_file_refreshed
OBSERVED = {
    # the device tree (arch aarch64): received = an rng-seed in the DTB caught at the entry
    "a64-chain":                        [(Y, Y, Y, Y, Y, Y, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, NA, NA, NA)],
    "a64-crash-kernel":                 [(Y, Y, Y, Y, Y, Y, N, N, Y, NA), (Y, Y, Y, Y, Y, Y, N, Y, NA, NA)],
    "a64-dtb-randomness-off":           [(Y, N, NA, NA, NA, N, N, NA, N, NA), (Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "a64-uefi-efi-table":               [(Y, Y, NA, NA, Y, Y, N, NA, Y, NA), (Y, Y, Y, NA, Y, Y, N, NA, NA, NA)],
    "a64-debian-kexec-load":            [(Y, Y, Y, Y, Y, Y, N, NA, N, NA), (Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "a64-nokaslr":                      [(Y, Y, Y, N, N, Y, Y, NA, NA, NA)],
    "a64-qemu-hop":                     [(Y, Y, Y, Y, Y, Y, N, NA, NA, NA)],
    "child-panics":                     [(Y, N, NA, NA, NA, N, N, NA, NA, NA), (N, NA, NA, NA, NA, NA, NA, NA, NA, NA)],
    "crash-kernel":                     [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, Y, NA, NA)],
    "kexec-file-2":                     [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
    "kexec-file-4":                     [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, Y, NA), (Y, Y, Y, Y, Y, Y, N, Y, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
    "kexec-load":                       [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, Y, NA, NA)],
    "machine-pc":                       [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
    "microvm":                          [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
    "old-child":                        [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, N, N, N, Y, N, NA, NA)],
    "ovmf-crash-kernel":                [(Y, Y, NA, NA, Y, Y, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, NA, NA, NA)],
    "ovmf-efi-seed":                    [(Y, Y, NA, NA, Y, Y, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
    "qemu-only":                        [(Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "qemu720-chain":                    [(Y, Y, Y, Y, Y, Y, N, Y, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, Y, NA), (Y, Y, Y, Y, Y, Y, N, Y, NA, NA)],
    "qemu720-old-machine":              [(Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "qemu720-replayed-seed":            [(Y, Y, N, Y, Y, Y, N, NA, NA, NA)],
    "qemu720-seed-overwritten":         [(Y, N, N, NA, NA, N, N, N, NA, NA)],
    "qemu720-seed-overwritten-control": [(Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
    "sdboot-252":                       [(Y, N, NA, NA, NA, N, N, NA, N, Y), (Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "sdboot-child-without-setup-data":  [(Y, Y, NA, NA, Y, Y, N, NA, Y, Y), (Y, Y, Y, NA, Y, Y, N, NA, NA, NA)],
    "sdboot-no-seed":                   [(Y, N, NA, NA, NA, N, N, NA, N, NA), (Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "sdboot-no-token":                  [(Y, N, NA, NA, NA, N, N, NA, N, N), (Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "sdboot-seed-file":                 [(Y, Y, NA, NA, Y, Y, N, NA, Y, Y), (Y, Y, Y, Y, Y, Y, N, NA, NA, NA)],
    "sdboot-seed-file-virtio-rng":      [(Y, Y, NA, NA, Y, Y, N, NA, Y, Y), (Y, Y, Y, Y, Y, Y, N, NA, NA, NA)],
    "unseeded-parent":                  [(Y, N, NA, NA, NA, N, N, NA, N, NA), (Y, N, NA, NA, NA, N, N, NA, NA, NA)],
    "virtio-rng":                       [(Y, N, NA, NA, NA, N, N, NA, Y, NA), (Y, Y, Y, Y, Y, Y, N, N, NA, NA)],
}


def test_every_recorded_run_is_covered():
    assert sorted(OBSERVED) == names()


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_checks_over_recorded_runs(name):
    observed = [tuple(row[c] for c in CHECKS) for row in checks.run_checks(facts(name))]
    assert observed == OBSERVED[name]


def test_each_check_fails_for_a_real_reason_somewhere():
    """Every check is seen giving its unwanted answer in a recorded run."""
    unwanted = {"booted": N, "received": N, "fresh": N, "zeroed_sysfs": N, "zeroed_ram": N,
                "credited": N, "exposed": Y, "lingering": Y, "passed_on": N,
                "seed_file_refreshed": N}
    seen = {c: [] for c in CHECKS}
    for name, rows in OBSERVED.items():
        for index, row in enumerate(rows, 1):
            for check, value in zip(CHECKS, row, strict=True):
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
    for layer, saved in zip(run.to_json()["layers"], recorded["layers"], strict=True):
        # A check added after a run was recorded is not in its result.json (see tests/README.md).
        added = [c for c in ADDED_CHECKS if c not in saved]
        for key in ("index", "kernel", "loader", *CHECKS, "seed_address", "expect", "outcome"):
            if key in added:
                continue
            ours, theirs = layer[key], saved[key]
            if key in ("expect", "outcome"):
                ours = {c: v for c, v in ours.items() if c not in added}
            assert ours == theirs, (name, layer["index"], key)


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


def _with_fields(layer, **fields):
    changed = dataclasses.replace(layer)
    changed.report = dataclasses.replace(layer.report, fields=dict(layer.report.fields, **fields))
    return changed


def test_a_seed_received_through_the_efi_rng_table():
    layer = facts("ovmf-efi-seed")[0]
    assert layer.sysfs_seeds == [] and layer.ram_seeds == []      # no setup_data seed at all
    assert checks.received_via(layer) == ["efi"]
    assert checks.received(layer) is True
    assert checks.zeroed_sysfs(layer) is None                      # the EFI table has no sysfs view
    # The table in RAM at dmesg's RNG= address: size kept, the 32 bits zeroed by the kernel.
    assert layer.efi_seed_ram.address == layer.efi_rng_address
    assert (layer.efi_seed_ram.size, layer.efi_seed_ram.data) == (32, bytes(32))
    assert checks.zeroed_ram(layer) is True
    assert checks.credit_attributable_to(layer) == ["efi"]
    assert checks.credited(layer) is True


def test_an_efi_seed_left_intact_is_not_zeroed():
    layer = dataclasses.replace(facts("ovmf-efi-seed")[0])
    layer.efi_seed_ram = dataclasses.replace(layer.efi_seed_ram, data=bytes(range(32)))
    assert checks.zeroed_ram(layer) is False
    layer.efi_seed_ram = None                                      # RAM not read: cannot say
    assert checks.zeroed_ram(layer) is None


def test_an_efi_seeds_credit_needs_rdrand_and_hwrngs_off():
    layer = facts("ovmf-efi-seed")[0]
    trusting = _with_fields(layer, cmdline=layer.field("cmdline").replace("random.trust_cpu=off", ""))
    assert checks.credited(trusting) is None
    # A hardware RNG not loaded by the agent (built in) could have acted before /init.
    builtin_hwrng = _with_fields(layer, modules="")
    assert checks.other_entropy_sources(builtin_hwrng, "efi") == ["hardware RNG virtio_rng.0"]
    assert checks.credited(builtin_hwrng) is None


def test_a_kexec_child_of_an_efi_boot_gets_both_seeds_and_dmesg_order_tells_which_credited():
    child = facts("ovmf-efi-seed")[1]
    assert checks.received_via(child) == ["setup_data", "efi"]
    # 'crng init done' comes before the efi: RNG= line: parse_setup_data() ran first.
    assert checks.credit_attributable_to(child) == ["setup_data"]
    assert "EFI RNG table" in checks.other_entropy_sources(child)
    dmesg = child.report.fields["dmesg"].splitlines()
    moved = [line for line in dmesg if "crng init done" not in line]
    at = next(i for i, line in enumerate(moved) if "RNG=0x" in line) + 1
    later = _with_fields(child, dmesg="\n".join(moved[:at] + ["[    0.000000] random: crng init done"]
                                                + moved[at:]))
    assert checks.credit_attributable_to(later) == ["efi"]
    assert checks.credited(later) is True


def test_virtio_hwrng_is_seen_as_another_source():
    parent, child = facts("virtio-rng")
    for layer in (parent, child):
        assert layer.field("hwrng") == "virtio_rng.0"
        assert checks.other_entropy_sources(layer) == [
            "hardware RNG virtio_rng.0 (module virtio_rng, loaded after /init)"]
    # Layer 1 has no seed: its RNG came up from the hwrng after /init, too late to be credited.
    assert checks.credited(parent) is False and parent.loader_record.rng_ready is True
    # The child's early credit is its seed's: its own virtio_rng came after /init ...
    assert checks.credit_attributable_to(child) == ["setup_data"]
    # ... which the facts show only through the module list; without it nothing is attributed.
    assert checks.credited(_with_fields(child, modules="")) is None


def test_the_crash_kernels_hand_over_is_not_a_fault():
    parent, crash = facts("crash-kernel")
    assert parent.loader_record.loader == "kexec_crash" and parent.loader_record.rc == 0
    assert "crashkernel=384M" in parent.field("cmdline").split()
    assert crash.fault is None and crash.booted
    assert {"irqpoll", "nr_cpus=1", "reset_devices"} <= set(crash.field("cmdline").split())
    assert any(w.startswith("elfcorehdr=") for w in crash.field("cmdline").split())
    assert checks.received_via(crash) == ["setup_data"] and checks.credited(crash) is True
    agent_log = (RUNS / "crash-kernel" / "agent.log").read_text()
    assert "@loader kexec_crash 0 yes" in agent_log


def test_microvm_and_pc_chains_get_no_seed_from_qemu():
    for name in ("microvm", "machine-pc"):
        first, child = facts(name)
        assert checks.received(first) is False and checks.credited(child) is True
    assert "tsc_early_khz=" in facts("microvm")[0].field("cmdline")
