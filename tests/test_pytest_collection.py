# SPDX-License-Identifier: GPL-2.0-only
"""`pytest` over scenario files: what is collected, a broken file as an item of its own,
two files with one name, kernel paths out of the folder and the project, and the closing
lines. Each case is a pytest of its own; none boots QEMU (the scenarios that would run
name kernel files that do not exist, so even an unchecked one stops before booting).
A `checkout` is a folder with this repository's conftest.py and a pytest.ini, as a clone
of it has, so that what is tested there is the collection itself; elsewhere the plugin is
asked for as docs/scenarios.md says, `pytest -p harness.pytest_session PATH`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOOD = "name: {name}\ndescription: d\nlayers:\n  - kernel: {kernel}\n"


def pytest_run(tmp_path: Path, *args, checkout: bool = False) -> subprocess.CompletedProcess:
    if checkout:
        shutil.copy(ROOT / "conftest.py", tmp_path)
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
    plugin = [] if checkout else ["-p", "harness.pytest_session"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin, "-q",
                           "--artifacts", str(tmp_path / "out"), "--seedchain-cache", str(tmp_path / "cache"),
                           *map(str, args)], cwd=tmp_path if checkout else ROOT, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout
    return proc


def folder(tmp_path: Path, files: dict[str, str], schema: bool = False) -> Path:
    where = tmp_path / "scenarios-elsewhere"
    where.mkdir()
    for name, text in files.items():
        (where / name).write_text(text)
    if schema:
        shutil.copy(ROOT / "scenarios" / "schema.json", where)
    return where


def test_a_scenario_outside_the_repository_is_collected(tmp_path):
    where = folder(tmp_path, {"x.yaml": GOOD.format(name="elsewhere", kernel="debian:bookworm/6.1"),
                              "matrix.yaml": "not: a scenario\n", "known-gaps.yaml": "[]\n"})
    proc = pytest_run(tmp_path, "--collect-only", where / "x.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the node id is relative to pytest's rootdir, which depends on where tmp_path is
    first = proc.stdout.splitlines()[0]
    assert first.endswith("x.yaml::elsewhere") and "warning" not in proc.stdout, proc.stdout
    proc = pytest_run(tmp_path, "--collect-only", where)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x.yaml::elsewhere" in proc.stdout and "matrix.yaml" not in proc.stdout
    assert "known-gaps.yaml" not in proc.stdout and "1 test collected" in proc.stdout


def test_a_malformed_file_is_its_own_failing_item_and_the_rest_run(tmp_path):
    where = folder(tmp_path, {"good.yaml": GOOD.format(name="good", kernel="debian:bookworm/6.1"),
                              "broken.yaml": "name: broken\ndescripton: typo\n"}, schema=True)
    proc = pytest_run(tmp_path, "--collect-only", where, "-k", "good", checkout=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "good.yaml::good" in proc.stdout and "1 deselected" in proc.stdout
    proc = pytest_run(tmp_path, where, "-m", "not vm", checkout=True)
    assert proc.returncode == 1, proc.stdout
    assert f"{where / 'broken.yaml'}:2: descripton: unknown key" in proc.stdout
    assert "1 failed, 1 deselected" in proc.stdout


def test_two_files_with_one_name_are_refused_naming_both(tmp_path):
    where = folder(tmp_path, {"a.yaml": GOOD.format(name="same", kernel="missing-bzImage"),
                              "b.yaml": GOOD.format(name="same", kernel="missing-bzImage")}, schema=True)
    proc = pytest_run(tmp_path, where, checkout=True)
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout.count(f"scenario name 'same' is used by {where / 'a.yaml'} and {where / 'b.yaml'}") >= 2
    assert "2 failed" in proc.stdout and "does not exist" not in proc.stdout


def test_a_kernel_path_out_of_the_folder_and_the_project_needs_the_option(tmp_path):
    where = folder(tmp_path, {"out.yaml": GOOD.format(name="out", kernel="../" * 30 + "etc/passwd")},
                   schema=True)
    proc = pytest_run(tmp_path, where, checkout=True)
    assert proc.returncode == 1, proc.stdout
    assert "the kernel path leads out of the scenario's folder and the project, to /etc/passwd" in proc.stdout
    assert "--allow-outside-paths" in proc.stdout
    proc = pytest_run(tmp_path, where, "--allow-outside-paths", checkout=True)
    assert proc.returncode == 1 and "/etc/passwd is not an x86 bzImage: found a text file" in proc.stdout
    assert "root:" not in proc.stdout


def test_no_artifacts_folder_is_named_when_no_scenario_ran(tmp_path):
    proc = pytest_run(tmp_path, "scenarios", "-m", "not vm")
    assert proc.returncode == 5, proc.stdout           # every scenario deselected: nothing ran
    assert "seedchain artifacts" not in proc.stdout


def test_an_empty_qemu_option_is_a_usage_error(tmp_path):
    proc = pytest_run(tmp_path, "scenarios", "--collect-only", "--qemu", "")
    assert proc.returncode == 4 and "--qemu: names no QEMU" in proc.stderr, proc.stdout + proc.stderr


def test_ctrl_c_while_the_session_finishes_ends_it_as_interrupted(tmp_path):
    """pytest-xdist stops its workers in pytest_sessionfinish; a Ctrl-C landing there came
    out of pytest as a KeyboardInterrupt traceback (seen 3 times in 17 interrupted
    `pytest -n 2` runs). The hook here raises it where xdist's teardown would; the plugin
    is asked for as outside a checkout."""
    (tmp_path / "conftest.py").write_text(
        "def pytest_sessionfinish(session):\n    raise KeyboardInterrupt\n")
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "harness.pytest_session",
                           "-q", "test_one.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)            # pytest's INTERRUPTED
    assert "interrupted while the session was finishing" in proc.stderr


def test_collecting_a_matrix_writes_nothing(tmp_path):
    """`--collect-only --matrix nightly` wrote matrix.json, .md and .html into an artifacts
    folder that existed already: collecting must leave the disk as it was."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--collect-only",
                           "--matrix", "smoke", "--artifacts", str(out),
                           "--seedchain-cache", str(tmp_path / "cache"), "scenarios"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kexec-file-2" in proc.stdout
    assert list(out.iterdir()) == []


def test_another_projects_pytest_is_left_alone(tmp_path):
    """The plugin was registered for every pytest run in the environment (a pytest11 entry
    point): another project's pytest gained --kernel, --qemu and --matrix, and its YAML
    file beside a schema.json was collected as a failing scenario. Unasked, it is not
    there; asked for with -p, it is."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    (tmp_path / "data.yaml").write_text("key: value\n")
    (tmp_path / "schema.json").write_text("{}\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    helptext = run("--help")
    assert helptext.returncode == 0, helptext.stderr
    assert "--kernel" not in helptext.stdout and "--matrix" not in helptext.stdout and "seedchain" not in helptext.stdout
    proc = run("-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout and "data.yaml" not in proc.stdout, proc.stdout
    asked = run("-p", "harness.pytest_session", "--help")
    assert asked.returncode == 0 and "--kernel" in asked.stdout, asked.stdout + asked.stderr
