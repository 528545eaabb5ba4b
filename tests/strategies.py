# SPDX-License-Identifier: GPL-2.0-only
"""Hypothesis strategies for the project's inputs, shared by the fuzz tests (test_fuzz.py):
YAML documents near the scenario, matrix and known-gaps schemas (valid-ish and broken),
text and byte streams, and guest reports.

How many examples each fuzz test runs is a settings profile chosen by SEEDCHAIN_FUZZ:
"ci" (the default: a bounded share, FUZZ_CI_EXAMPLES each) or "stress" (bench/stress.py:
SEEDCHAIN_FUZZ_EXAMPLES each, 10,000 unless set). FUZZ is the decorator for them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from harness.matrix.expand import AXES
from harness.matrix.known_gaps import COMPONENTS, GAP_SCHEMA
from harness.scenario.model import CHECKS, LOADERS

ROOT = Path(__file__).resolve().parent.parent
FUZZ_CI_EXAMPLES = 200

_COMMON = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", _COMMON, max_examples=FUZZ_CI_EXAMPLES)
settings.register_profile("stress", _COMMON, max_examples=int(os.environ.get("SEEDCHAIN_FUZZ_EXAMPLES", "10000")))
PROFILE = os.environ.get("SEEDCHAIN_FUZZ", "ci")
if PROFILE not in ("ci", "stress"):
    raise SystemExit(f"SEEDCHAIN_FUZZ={PROFILE!r}: known profiles are ci and stress")
FUZZ = settings(settings.get_profile(PROFILE))

# A host file whose bytes must never show in a message: documents name it wherever a path
# may go (kernel, qemu.build, matrix values), and messages are searched for its content.
SECRET = "s3cr3t-h0st-f1le-c0ntent-7f1c"


def secret_file(folder: Path) -> Path:
    path = folder / "host-secret"
    path.write_text((SECRET + "\n") * 8)
    return path


def dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False)


YAML_CHARS = ":-[]{}&*!|>'\"#%@`,?<~.\n\t ab01"    # syntax characters hit more parser paths
TEXT = st.text(max_size=300) | st.text(alphabet=YAML_CHARS, max_size=200)
BYTES = st.binary(max_size=300)


def mutated(text: str):
    """A file's text with a piece cut out and a random piece put in its place."""
    return st.builds(lambda at, insert, cut: text[:at % len(text)] + insert + text[at % len(text) + cut:],
                     st.integers(0, 100_000), st.text(max_size=5) | st.sampled_from(YAML_CHARS), st.integers(0, 5))


def leaves(paths: Sequence[str] = ()):
    """Scalars: of every YAML type, with the words the files use and the secret's path."""
    return (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
            | st.sampled_from(["debian:bookworm/6.1", "kexec_load", "consumed", "/k", "q35", "x\n",
                               "source:7.2.0", "debian:sid", ">=7.2.1", "<6.0,>=5", "*", "first",
                               *paths]))


def structures(keys, paths: Sequence[str] = ()):
    """Nested lists and mappings of `keys` (plus random ones) and leaves."""
    return st.recursive(leaves(paths), lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(keys | st.text(max_size=6), inner, max_size=5), max_leaves=25)


# --- scenarios ---------------------------------------------------------------------------

SCENARIO_KEYS = st.sampled_from(["name", "description", "tags", "qemu", "layers", "kernel", "loader",
                                 "expect", "seed", "memory", "timeout", "<<", "capture", "bootloader",
                                 "build", "firmware", *CHECKS])


def scenarios(paths: Sequence[str] = ()):
    leaf = leaves(paths)
    layers = st.lists(st.dictionaries(
        st.sampled_from(["kernel", "loader", "userland", "cmdline", "timeout", "expect", "pad_kernel"]),
        leaf | st.dictionaries(st.sampled_from(["seed", *CHECKS]), leaf, max_size=3),
        max_size=6), max_size=4)
    near_valid = st.fixed_dictionaries(
        {"name": st.sampled_from(["ok", "Not ok"]) | leaf, "description": leaf, "layers": layers},
        optional={"qemu": st.dictionaries(st.sampled_from(["memory", "rng", "cpu", "extra_args", "build",
                                                           "firmware", "machine"]),
                                          structures(SCENARIO_KEYS, paths), max_size=3),
                  "tags": structures(SCENARIO_KEYS, paths),
                  "capture": st.dictionaries(st.sampled_from(["seed_in_flight", "ram_search"]), leaf, max_size=2),
                  "bootloader": st.dictionaries(st.sampled_from(["name", "build", "seed_file"]), leaf, max_size=3)})
    return structures(SCENARIO_KEYS, paths) | near_valid


# --- the matrix file ---------------------------------------------------------------------

MATRIX_SCENARIOS = ("qemu-only", "kexec-file-2")     # copied beside the fuzzed matrix file


def matrices(paths: Sequence[str] = ()):
    leaf = leaves(paths)
    value = (st.sampled_from(["debian:bookworm", "debian:sid/7.2", "q35", "pc", "ovmf", *paths]) | leaf
             | st.fixed_dictionaries({"value": leaf}, optional={"label": leaf | st.sampled_from(["7.2", "x"])}))
    group = st.fixed_dictionaries(
        {"scenarios": st.lists(st.sampled_from([*MATRIX_SCENARIOS, "missing"]) | leaf, max_size=3) | leaf,
         "axes": st.dictionaries(st.sampled_from(list(AXES)) | st.text(max_size=6),
                                 st.lists(value, max_size=5) | leaf, max_size=3)},
        optional={"description": leaf})
    matrix = st.fixed_dictionaries({"groups": st.lists(group, max_size=3) | leaf}, optional={"description": leaf})
    names = st.sampled_from(["nightly", "smoke", "Bad_Name"]) | st.text(max_size=6)
    return (st.fixed_dictionaries({"matrices": st.dictionaries(names, matrix | leaf, max_size=2) | leaf})
            | structures(st.sampled_from(["matrices", "groups", "scenarios", "axes", *AXES]), paths))


# --- the known-gaps file -----------------------------------------------------------------

def known_gaps(paths: Sequence[str] = ()):
    leaf = leaves(paths)
    values = st.sampled_from([True, False, None]) | st.lists(st.sampled_from([True, False, None]), max_size=3) | leaf
    checks = st.dictionaries(st.sampled_from(list(CHECKS)) | st.text(max_size=6), values, max_size=3)
    ranges = st.sampled_from([">=7.2.1", "<6.0", ">=2.0.20,<2.0.25", "*", "==7.2.0", ">9,<1", "7.x", ""]) | leaf
    strings = ranges | st.lists(ranges, max_size=3)
    gap = st.fixed_dictionaries(
        {"id": st.sampled_from(["kernel-ignores-seed", "a", "a", "Bad id"]) | leaf,
         "component": st.sampled_from(list(COMPONENTS)) | leaf,
         "versions": strings, "reason": leaf, "source": strings},
        optional={"loader": st.sampled_from(["qemu", *LOADERS]) | st.lists(st.sampled_from(["qemu", *LOADERS])) | leaf,
                  "layer": st.sampled_from(["first"]) | leaf, "when": checks, "checks": checks,
                  "also": st.dictionaries(st.sampled_from(list(COMPONENTS)) | st.text(max_size=6), strings, max_size=2)
                  | leaf,
                  "cpu": strings, "machine": strings, "firmware": strings,
                  "informational": st.booleans() | leaf})
    # Gaps the schema accepts, with version ranges and selectors that may still be wrong:
    # what the checks after the schema see.
    good_checks = st.dictionaries(st.sampled_from(list(CHECKS)), st.sampled_from([True, False, None]),
                                  min_size=1, max_size=3)
    near_valid = st.fixed_dictionaries(
        {"id": st.sampled_from(["kernel-ignores-seed", "a", "b.1"]),
         "component": st.sampled_from(list(COMPONENTS)), "versions": strings,
         "reason": st.text(min_size=1, max_size=20), "source": st.text(min_size=1, max_size=20),
         "checks": good_checks},
        optional={"loader": st.sampled_from(["qemu", *LOADERS]), "layer": st.just("first"),
                  "when": good_checks, "informational": st.booleans(), "cpu": st.just("max"),
                  "also": st.dictionaries(st.sampled_from(list(COMPONENTS)), strings, min_size=1, max_size=2)})
    return (st.lists(gap, max_size=3) | st.lists(near_valid, min_size=1, max_size=3)
            | structures(st.sampled_from(sorted(GAP_SCHEMA["properties"])), paths))


# --- guest reports -----------------------------------------------------------------------

REPORT_LINES = st.one_of(
    st.sampled_from(["@begin 1", "@end 1", "@field dmesg", "@field boot_params", "@field setup_data/0/type",
                     "@field setup_data/0/data", "@field setup_data/0/mode", "|0x9", "|00ff", "|444", "|",
                     "@loader kexec_load 0 yes", "@end-loader", "@field loader_output", "@field loader_dmesg",
                     "@field kernel_release", "|0x" + "f" * 30, "|" + "00" * 600, "|-1", "\r", "@begin 999"]),
    st.text(max_size=40).map(lambda t: "|" + t.replace("\n", "")),
    st.text(max_size=40).map(lambda t: t.replace("\n", "")),
)
REPORTS = st.lists(REPORT_LINES, max_size=30).map(lambda lines: ("\n".join(lines) + "\n").encode())
STREAMS = st.lists(REPORTS | st.binary(max_size=64), max_size=4).map(b"".join)
