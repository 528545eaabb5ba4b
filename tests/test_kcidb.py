# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain report --kcidb`: recorded real results as KCIDB I/O data, validated with
kcidb-io's own schema.

The results are the recorded runs' expected.json files (real result.json contents,
tests/fixtures/runs/), each copied with its logs into a folder laid out as the runner
writes one. Every recorded run passed; the failing one is old-child's record with its
5.10 child expected to consume the seed, as the scenario kexec-file-2 expects of 6.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kcidb_io
import pytest

from harness.errors import SeedchainError
from harness.reports.kcidb import check_status, kcidb_data
from harness.reports.matrix import merge
from recorded import RUNS, names

ROOT = Path(__file__).resolve().parent.parent
QEMU = "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
# The checks the recorded results answer (docs/checks.md).
CHECKS = ("booted", "received", "zeroed_sysfs", "zeroed_ram", "credited", "exposed", "passed_on")
CONSUMED = {"booted": True, "received": True, "zeroed_sysfs": True, "zeroed_ram": True,
            "credited": True, "exposed": False, "passed_on": None}


def _lay_out(folder: Path, name: str, record: dict | None = None) -> Path:
    """A run folder as the runner leaves it: logs, layer-N.json, result.json."""
    target = folder / name
    target.mkdir(parents=True)
    for file in (RUNS / name).iterdir():
        if file.name not in ("expected.json", "result.json"):
            shutil.copy(file, target / file.name)
    record = record or json.loads((RUNS / name / "expected.json").read_text())
    (target / "result.json").write_text(json.dumps(record, indent=2))
    return target


def _expect_consumed_child(record: dict) -> dict:
    """The record judged with layer 2 expected to consume its seed: what the result
    would say (outcome per check, passed) had the scenario expected that."""
    layer = record["layers"][1]
    layer["expect"] = dict(CONSUMED)
    layer["outcome"] = {c: "-" if CONSUMED[c] is None else "pass" if layer[c] == CONSUMED[c] else "fail"
                        for c in CHECKS}
    layer["passed"] = record["passed"] = False
    return record


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kcidb")
    for name in names():
        _lay_out(root / "runs", name)
    (root / "runs" / "kexec-load" / "console.log").unlink()    # a run that kept no console log
    return root


@pytest.fixture(scope="module")
def data(runs) -> dict:
    return kcidb_data(merge([runs / "runs"]), runs)


def _tests(data: dict, prefix: str) -> dict[str, dict]:
    return {t["path"]: t for t in data["tests"] if t["path"].startswith(prefix)}


def _by_id(data: dict, kind: str) -> dict[str, dict]:
    return {o["id"]: o for o in data[kind]}


def _validate(data: dict) -> None:
    kcidb_io.schema.V5_3.validate_exactly(data)
    kcidb_io.schema.LATEST.validate(data)          # the newest schema the package knows


# --- the whole set -----------------------------------------------------------------------

def test_every_recorded_run_validates(data):
    _validate(data)
    assert data["version"] == {"major": 5, "minor": 3}
    records = [json.loads((RUNS / n / "expected.json").read_text()) for n in names()]
    assert len(data["tests"]) == sum(len(la["outcome"]) for r in records for la in r["layers"])
    assert {t["path"].rsplit(".", 1)[1] for t in data["tests"]} >= set(CHECKS)
    assert len({t["id"] for t in data["tests"]}) == len(data["tests"])
    # 6 kernels (6.1.0-57, the same padded to 31 MiB, 7.2.13, 5.10.0-46, 6.1.0-57-arm64 and
    # 6.1.192 built from linux-source-6.1); 8 kernel x QEMU pairs, the arm64 ones for aarch64
    assert len(data["checkouts"]) == 6 and len(data["builds"]) == 8
    assert sorted(b["architecture"] for b in data["builds"]) == ["aarch64"] * 2 + ["x86_64"] * 6
    assert {o["origin"] for kind in ("checkouts", "builds", "tests") for o in data[kind]} == {"seedchain"}
    for kind in ("checkouts", "builds", "tests"):
        for obj in data[kind]:
            assert obj["id"].startswith("seedchain:") and len(obj["id"]) == len("seedchain:") + 32
    builds, checkouts = _by_id(data, "builds"), _by_id(data, "checkouts")
    assert all(t["build_id"] in builds for t in data["tests"])
    assert all(b["checkout_id"] in checkouts for b in builds.values())


def test_statuses_of_a_passing_chain(data):
    tests = _tests(data, "seedchain.kexec-file-2.")
    assert {p: t["status"] for p, t in tests.items() if p.rsplit(".", 1)[1] in CHECKS} == {
        "seedchain.kexec-file-2.layer1.booted": "PASS",
        "seedchain.kexec-file-2.layer1.received": "PASS",
        "seedchain.kexec-file-2.layer1.zeroed_sysfs": "SKIP",   # n/a: nothing received
        "seedchain.kexec-file-2.layer1.zeroed_ram": "SKIP",
        "seedchain.kexec-file-2.layer1.credited": "DONE",       # observed no, not expected
        "seedchain.kexec-file-2.layer1.exposed": "PASS",
        "seedchain.kexec-file-2.layer1.passed_on": "PASS",
        **{f"seedchain.kexec-file-2.layer2.{c}": "PASS" for c in CHECKS if c != "passed_on"},
        "seedchain.kexec-file-2.layer2.passed_on": "SKIP",      # the last layer hands on nothing
    }
    credited = tests["seedchain.kexec-file-2.layer1.credited"]
    assert credited["comment"].startswith("credited: no (not checked by the scenario); layer 1 kernel "
                                          "6.1.0-57-amd64 (linux-image-6.1.0-57-amd64-unsigned 6.1.192-3")
    assert credited["misc"]["observed"] == "no" and credited["misc"]["expected"] == "-"
    assert tests["seedchain.kexec-file-2.layer2.credited"]["comment"].startswith("credited: yes, as expected; ")


def test_checkout_and_build_name_the_kernel_and_qemu(data):
    test = _tests(data, "seedchain.old-child.layer2.")["seedchain.old-child.layer2.booted"]
    build = _by_id(data, "builds")[test["build_id"]]
    checkout = _by_id(data, "checkouts")[build["checkout_id"]]
    assert checkout["tree_name"] == "debian:bullseye"
    assert checkout["misc"] == {"kernel_package": "linux-image-5.10.0-46-amd64-unsigned",
                                "kernel_version": "5.10.262-1", "kernel_spec": "debian:bullseye/5.10"}
    assert build["architecture"] == "x86_64"
    assert build["misc"] == {"qemu_version": QEMU}
    assert build["comment"] == ("5.10.0-46-amd64 (linux-image-5.10.0-46-amd64-unsigned 5.10.262-1, "
                                f"debian:bullseye/5.10) under QEMU {QEMU}")
    assert test["environment"]["misc"]["machine"] == "q35"
    assert test["environment"]["comment"].startswith(f"QEMU {QEMU}: machine q35, cpu max, accel tcg")
    # QEMU 7.2.0 built from source: its build says what it was built from
    source = _tests(data, "seedchain.qemu720-chain.layer1.")["seedchain.qemu720-chain.layer1.credited"]
    built = _by_id(data, "builds")[source["build_id"]]
    assert built["misc"]["qemu_version"] == "7.2.0" and built["misc"]["qemu_source"]["version"]
    assert source["status"] == "PASS"     # the one QEMU whose first hop is credited by its seed


def test_layers_of_one_kernel_share_its_build_across_runs(data):
    layer1 = {t["build_id"] for p, t in _tests(data, "seedchain.").items()
              if ".layer1." in p and "qemu720" not in p and ".a64-" not in p}
    assert len(layer1) == 1               # 6.1.0-57 under QEMU 7.2.22 in every other x86 run


def test_a_failing_check_is_a_fail_naming_the_layers_kernel(tmp_path):
    record = _expect_consumed_child(json.loads((RUNS / "old-child" / "expected.json").read_text()))
    _lay_out(tmp_path, "old-child", record)
    data = kcidb_data(merge([tmp_path]), tmp_path)
    _validate(data)
    tests = _tests(data, "seedchain.old-child.layer2.")
    assert {p.rsplit(".", 1)[1]: t["status"] for p, t in tests.items() if p.rsplit(".", 1)[1] in CHECKS} == {
        "booted": "PASS", "received": "PASS", "zeroed_sysfs": "FAIL", "zeroed_ram": "FAIL",
        "credited": "FAIL", "exposed": "FAIL", "passed_on": "SKIP"}
    credited = tests["seedchain.old-child.layer2.credited"]
    assert credited["comment"] == (
        "credited: expected yes, observed no; layer 2 kernel 5.10.0-46-amd64 "
        "(linux-image-5.10.0-46-amd64-unsigned 5.10.262-1, debian:bullseye/5.10) started by "
        f"kexec_file_load with kexec-tools 1:2.0.25-3+deb12u3, QEMU {QEMU}")
    assert tests["seedchain.old-child.layer2.exposed"]["comment"].startswith("exposed: expected no, observed yes; ")
    build = _by_id(data, "builds")[credited["build_id"]]
    assert build["comment"].startswith("5.10.0-46-amd64 ")
    # layer 1 is untouched
    assert all(t["status"] != "FAIL" for p, t in _tests(data, "seedchain.old-child.layer1.").items())
    # an older result without `outcome` is judged from `expect` alike
    for layer in record["layers"]:
        del layer["outcome"]
    assert [check_status(record["layers"][1], c) for c in CHECKS] == [
        "PASS", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "SKIP"]


def test_a_layer_that_did_not_boot(data):
    tests = _tests(data, "seedchain.child-panics.layer2.")
    assert tests["seedchain.child-panics.layer2.booted"]["status"] == "PASS"   # expected not to
    assert tests["seedchain.child-panics.layer2.booted"]["misc"]["fault"] == "panic"
    assert {t["status"] for p, t in tests.items() if not p.endswith(".booted")} == {"SKIP"}


def test_a_failed_boot_carries_the_console_tail(tmp_path):
    record = json.loads((RUNS / "child-panics" / "expected.json").read_text())
    child = record["layers"][1]
    child["expect"]["booted"], child["outcome"]["booted"] = True, "fail"
    child["console_tail"] = ["Kernel panic - not syncing: sysrq triggered crash"]
    _lay_out(tmp_path, "child-panics", record)
    data = kcidb_data(merge([tmp_path]), tmp_path)
    _validate(data)
    booted = _tests(data, "seedchain.child-panics.layer2.")["seedchain.child-panics.layer2.booted"]
    assert booted["status"] == "FAIL"
    assert booted["comment"].startswith("booted: expected yes, observed no; layer 2 kernel debian:bookworm/6.1 ")
    assert booted["log_excerpt"].startswith("fault: panic")
    assert booted["log_excerpt"].endswith("Kernel panic - not syncing: sysrq triggered crash")


# --- ids and links -----------------------------------------------------------------------

def test_ids_are_stable_and_each_run_gets_its_own(tmp_path, runs, data):
    again = kcidb_data(merge([runs / "runs"]), runs)
    assert again == data
    record = json.loads((RUNS / "kexec-file-2" / "expected.json").read_text())
    record["seconds"] += 1.0                  # another run of the same cell
    _lay_out(tmp_path, "kexec-file-2", record)
    other = kcidb_data(merge([tmp_path]), tmp_path)
    mine = _tests(data, "seedchain.kexec-file-2.")
    theirs = _tests(other, "seedchain.kexec-file-2.")
    assert not {t["id"] for t in mine.values()} & {t["id"] for t in theirs.values()}
    assert {t["build_id"] for t in mine.values()} == {t["build_id"] for t in theirs.values()}


def test_links_are_file_urls_without_a_base(runs, data):
    test = _tests(data, "seedchain.kexec-file-2.")["seedchain.kexec-file-2.layer2.credited"]
    folder = (runs / "runs" / "kexec-file-2").resolve()
    assert test["log_url"] == (folder / "console.log").as_uri()
    assert [(f["name"], f["url"]) for f in test["output_files"]] == [
        (n, (folder / n).as_uri()) for n in ("agent.log", "layer-2.json", "result.json")]
    no_console = _tests(data, "seedchain.kexec-load.")["seedchain.kexec-load.layer1.booted"]
    assert "log_url" not in no_console    # that run's console.log was not recorded
    assert [f["name"] for f in no_console["output_files"]] == ["agent.log", "layer-1.json", "result.json"]


def test_links_under_a_url_base(runs):
    data = kcidb_data(merge([runs / "runs"]), runs, url_base="https://ci.example.org/run/42")
    _validate(data)
    test = _tests(data, "seedchain.kexec-file-2.")["seedchain.kexec-file-2.layer1.booted"]
    assert test["log_url"] == "https://ci.example.org/run/42/runs/kexec-file-2/console.log"
    assert test["output_files"][1] == {"name": "layer-1.json",
                                       "url": "https://ci.example.org/run/42/runs/kexec-file-2/layer-1.json"}
    with pytest.raises(SeedchainError, match="not inside"):
        kcidb_data(merge([runs / "runs"]), runs / "elsewhere", url_base="https://ci.example.org/")
    with pytest.raises(SeedchainError, match="not an absolute URL"):
        kcidb_data(merge([runs / "runs"]), runs, url_base="runs/")


# --- runs the harness did not finish ----------------------------------------------------

def test_a_harness_error_is_a_miss(tmp_path):
    record = json.loads((RUNS / "kexec-file-2" / "expected.json").read_text())
    record.update(layers=[], passed=False, id="kexec-file-2[qemu=10.0,kernel=6.1]",
                  cell={"qemu": "debian:trixie", "kernel": "debian:bookworm/6.1"},
                  error="cannot prepare QEMU debian:trixie: mmdebstrap exited with 1")
    _lay_out(tmp_path, "kexec-file-2", record)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text('{"format": 1, "scen')
    data = kcidb_data(merge([tmp_path]), tmp_path)
    _validate(data)
    assert [(t["path"], t["status"]) for t in data["tests"]] == [
        ("seedchain.broken", "MISS"), ("seedchain.kexec-file-2", "MISS")]
    miss = data["tests"][1]
    assert miss["comment"].endswith("mmdebstrap exited with 1")
    assert miss["misc"]["cell"] == {"qemu": "debian:trixie", "kernel": "debian:bookworm/6.1"}
    checkout = _by_id(data, "checkouts")[_by_id(data, "builds")[miss["build_id"]]["checkout_id"]]
    assert checkout["tree_name"] == "debian:bookworm"


# --- the command line --------------------------------------------------------------------

def _seedchain(*args):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_the_command_writes_a_valid_file(runs, tmp_path):
    out = runs / "kcidb.json"
    proc = _seedchain("report", "--kcidb", out, runs / "runs", "--kcidb-url-base", "https://ci.example.org/7/")
    assert proc.returncode == 0, proc.stderr
    written = json.loads(out.read_text())
    _validate(written)
    statuses = [t["status"] for t in written["tests"]]
    assert proc.stdout.splitlines() == [
        f"{len(names())} results: 6 checkouts, 8 builds, {len(statuses)} tests ("
        + ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) + ")",
        f"wrote {out} (KCIDB schema v5.3, validated with kcidb-io)"]
    assert set(statuses) == {"DONE", "PASS", "SKIP"}
    assert written["tests"][0]["log_url"].startswith("https://ci.example.org/7/runs/")


@pytest.mark.parametrize("args,message", [
    (["--kcidb-url-base", "https://x/", "RUNS"], "the following arguments are required: --kcidb"),
    (["--kcidb", "OUT", "RUNS", "--kcidb-url-base", "ci/"], "is not an absolute URL"),
    (["--kcidb", "OUT", "/no/such/results"], "/no/such/results: no such file or folder"),
])
def test_the_command_on_bad_input(runs, tmp_path, args, message):
    args = [str(runs / "runs") if a == "RUNS" else str(tmp_path / "k.json") if a == "OUT" else a for a in args]
    proc = _seedchain("report", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "k.json").exists()


def test_without_kcidb_io_the_file_is_written_and_says_it_was_not_validated(runs, tmp_path, monkeypatch, capsys):
    """kcidb-io is optional (its requirements are not GPL-2.0-only compatible): without it the
    data is the same, and the command says it could not validate it."""
    from harness.reports import kcidb
    with_schema = kcidb_data(merge([runs / "runs"]), tmp_path)
    monkeypatch.setitem(sys.modules, "kcidb_io", None)          # `import kcidb_io` fails
    assert kcidb.kcidb_schema() is None
    assert kcidb_data(merge([runs / "runs"]), tmp_path) == with_schema
    out = tmp_path / "k.json"
    assert kcidb.main(["--kcidb", str(out), str(runs / "runs")]) == 0
    assert "not validated: kcidb-io is not installed" in capsys.readouterr().out
    _validate(json.loads(out.read_text()))


def test_a_broken_file_does_not_validate():
    """The validation the tests lean on can fail."""
    with pytest.raises(jsonschema.ValidationError):
        kcidb_io.schema.V5_3.validate_exactly({"version": {"major": 5, "minor": 3},
                                               "tests": [{"id": "seedchain:x", "origin": "seedchain",
                                                          "build_id": "seedchain:y", "status": "n/a"}]})
