# SPDX-License-Identifier: GPL-2.0-only
"""The command line on bad input and broken set-ups: a clear message, no traceback; exit 125
under `run` (git bisect run's "cannot test"), 2 under the other commands."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.proc import signals_as_at_a_terminal

ROOT = Path(__file__).parent.parent
BAD = Path(__file__).parent / "fixtures" / "scenarios" / "bad"


def seedchain(*args, env=None, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env={**os.environ, **(env or {})}, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def test_check_accepts_the_shipped_scenarios():
    files = sorted((ROOT / "scenarios").glob("*.yaml"))
    files = [f for f in files if f.name not in ("matrix.yaml", "known-gaps.yaml")]
    proc = seedchain("check", *files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": ok (") == len(files)


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.glob("*.yaml")))
def test_every_bad_scenario_is_refused_with_its_file_and_line(name):
    proc = seedchain("run", BAD / name)
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"seedchain: error: {BAD / name}")
    proc = seedchain("check", BAD / name)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"seedchain: error: {BAD / name}")


def test_a_hundred_layers_are_refused(tmp_path):
    hop = "  - {loader: kexec_file_load, kernel: debian:bookworm/6.1}\n"
    path = tmp_path / "long.yaml"
    path.write_text("name: long\ndescription: too long\nlayers:\n  - kernel: debian:bookworm/6.1\n" + hop * 99)
    proc = seedchain("run", path)
    assert proc.returncode == 125 and "layers" in proc.stderr and "16" in proc.stderr


def test_missing_qemu_binary(tmp_path):
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--qemu", tmp_path / "no-such-qemu",
                     "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert "no-such-qemu is not an executable file" in proc.stderr
    assert "hint:" in proc.stderr


def test_a_kernel_that_is_not_a_kernel(tmp_path):
    fake = tmp_path / "bzImage"
    fake.write_bytes(b"#!/bin/sh\necho not a kernel\n" + bytes(1024))
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--kernel", fake, "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert str(fake) in proc.stderr and "bzImage" in proc.stderr


def test_a_path_escaping_the_project_is_refused_unless_allowed_and_then_just_a_file_to_check(tmp_path):
    scenario = tmp_path / "escape.yaml"
    scenario.write_text("name: escape\ndescription: x\nlayers:\n  - kernel: " + "../" * 40 + "etc/passwd\n")
    proc = seedchain("run", scenario, "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"seedchain: error: {scenario}:4: layer 1: the kernel path leads out")
    assert "/etc/passwd" in proc.stderr and "--allow-outside-paths" in proc.stderr
    proc = seedchain("run", scenario, "--artifacts", tmp_path, "--allow-outside-paths")
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"seedchain: error: {scenario}:4: layer 1")
    assert "/etc/passwd is not an x86 bzImage: found a text file" in proc.stderr and "root:" not in proc.stderr


def test_a_missing_host_tool(tmp_path):
    # A cold cache and no apt-get/dpkg-deb on PATH: the message names what to install.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qemu-system-x86_64").symlink_to("/usr/bin/qemu-system-x86_64")
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--artifacts", tmp_path / "out",
                     env={"PATH": str(bin_dir), "SEEDCHAIN_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 125
    assert "apt" in proc.stderr and "hint:" in proc.stderr, proc.stderr


def test_read_only_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    if os.access(cache, os.W_OK):      # root ignores modes: make it truly read-only
        subprocess.run(["mount", "--bind", "-o", "ro", str(cache), str(cache)], check=False)
    try:
        proc = seedchain("run", "scenarios/qemu-only.yaml", "--artifacts", tmp_path / "out",
                         env={"SEEDCHAIN_CACHE": str(cache)})
    finally:
        subprocess.run(["umount", str(cache)], check=False, capture_output=True)
    assert proc.returncode == 125
    assert "SEEDCHAIN_CACHE" in proc.stderr and str(cache) in proc.stderr, proc.stderr


def test_list_and_unknown_command():
    proc = seedchain("list", "scenarios")
    assert proc.returncode == 0 and "kexec-file-4" in proc.stdout
    assert seedchain("frobnicate").returncode == 2


def test_matrix_lists_the_cells_and_prints_the_github_job_list():
    proc = seedchain("matrix", "smoke")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "kexec-file-2[qemu=5.2,kernel=6.1]", "kexec-file-2[qemu=5.2,kernel=7.2]",
        "kexec-file-2[qemu=11.1,kernel=6.1]", "kexec-file-2[qemu=11.1,kernel=7.2]",
        "4 cells in 2 jobs by qemu"]
    proc = seedchain("matrix", "nightly", "--github")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ('{"include":[{"qemu":"5.2"},{"qemu":"7.2"},{"qemu":"10.0"},{"qemu":"11.1"},'
                           '{"qemu":"7.2.0"},{"qemu":"-"}]}\n')


def test_matrix_with_a_wrong_name_says_which_file_and_which_names_exist():
    proc = seedchain("matrix", "nighty", "--github")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("seedchain: error: ") and re.search(r"scenarios/matrix\.yaml:\d+: no matrix named 'nighty'", proc.stderr)
    assert "hint: known: nightly, smoke" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--file", "{tmp}/none.yaml"], "none.yaml: no such matrix file"),
    (["--file", "{tmp}/bad.yaml"], "bad.yaml:1: matrixes: unknown key; allowed: matrices"),
    (["--file", "{tmp}/empty.yaml"], "empty.yaml:1: top level: missing required key 'matrices'"),
    (["--by", "memory"], "unknown axis 'memory'"),
])
def test_matrix_on_bad_input(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("matrixes: {}\n")
    (tmp_path / "empty.yaml").write_text("{}\n")
    proc = seedchain("matrix", "nightly", "--github", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert message in proc.stderr, proc.stderr


def test_a_kernel_for_a_layer_the_scenario_lacks(tmp_path):
    proc = seedchain("run", "scenarios/kexec-file-2.yaml", "--kernel", "5=/k/bzImage", "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert proc.stderr.startswith("seedchain: error: scenarios/kexec-file-2.yaml: scenario kexec-file-2 "
                                  "has 2 layers; --kernel 5=/k/bzImage names none")
    assert "hint: number its layers 1 to 2" in proc.stderr


def test_one_layers_kernel_that_is_not_a_kernel_names_that_layer(tmp_path):
    fake = tmp_path / "bzImage"
    fake.write_bytes(b"\x7fELF" + bytes(4096))
    proc = seedchain("run", "scenarios/kexec-file-2.yaml", "--kernel", f"2={fake}", "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert proc.stderr.startswith("seedchain: error: scenarios/kexec-file-2.yaml:11: layer 2: ")
    assert f"{fake} is not an x86 bzImage: found an ELF file" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["-j", "0"], "argument -j/--jobs: '0': give the number of scenarios to boot at once"),
    (["--kernel", "0=/k/bzImage"], "--kernel 0=/k/bzImage: layers are numbered from 1"),
    (["--kernel", "2=/a", "--kernel", "2=/b"], "--kernel 2= is given twice (/a and /b)"),
])
def test_a_wrong_option_under_run_says_cannot_test(args, message):
    # The same at every commit: git bisect run must skip, not call the commit bad.
    proc = seedchain("run", "scenarios/kexec-file-2.yaml", *args)
    assert proc.returncode == 125, proc.stderr
    assert message in proc.stderr


# --- outputs, names, options and words checked before anything runs -------------------
# A kernel that does not exist, so that nothing could boot even where a check is missing.

NO_KERNEL = "/nonexistent/seedchain-test/bzImage"


@pytest.mark.parametrize("option,target,said", [
    ("--artifacts", "/proc/seedchain-artifacts", "cannot write to /proc/seedchain-artifacts"),
    ("--artifacts", "{file}", "{file} is a file; --artifacts needs a folder"),
    ("--artifacts", "{file}/results", "{file} is a file; --artifacts needs a folder"),
    ("--json", "{tmp}", "{tmp} is a folder; --json needs a file"),
    ("--json", "/proc/seedchain.json", "cannot write to /proc/seedchain.json"),
    ("--json", "{file}/out.json", "{file} is a file; --json needs a folder there"),
])
def test_outputs_that_cannot_be_written_are_refused_before_the_run(tmp_path, option, target, said):
    file = tmp_path / "a-file"
    file.write_text("x\n")
    target, said = (text.format(file=file, tmp=tmp_path) for text in (target, said))
    extra = ["--artifacts", tmp_path / "out"] if option == "--json" else []
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--kernel", NO_KERNEL, option, target, *extra)
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.startswith(f"seedchain: error: {option}: {said}"), proc.stderr
    assert "hint:" in proc.stderr
    assert file.read_text() == "x\n"


def test_json_and_artifacts_folders_are_made_when_missing(tmp_path):
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--kernel", NO_KERNEL, "--artifacts",
                     tmp_path / "a" / "b", "--json", tmp_path / "c" / "out.json")
    assert proc.returncode == 125 and "does not exist" in proc.stderr, proc.stderr
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "c").is_dir()


def _named(folder: Path, name: str, kernel: str = "debian:bookworm/6.1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{folder.name}.yaml"
    path.write_text(f"name: {name}\ndescription: d\nlayers:\n  - kernel: {kernel}\n")
    return path


def test_two_scenario_files_with_one_name_are_refused(tmp_path):
    first = _named(tmp_path / "a", "same", kernel="missing-bzImage")
    second = _named(tmp_path / "b", "same", kernel="missing-bzImage")
    for given in ([first, second], [tmp_path / "a", tmp_path / "b"]):
        proc = seedchain("run", *given, "--artifacts", tmp_path / "out")
        assert proc.returncode == 125, proc.stderr
        assert proc.stderr.startswith(f"seedchain: error: {second}: scenario name 'same' is also the "
                                      f"name of {first}"), proc.stderr
    first, second = _named(tmp_path / "c", "other"), _named(tmp_path / "d", "other")
    proc = seedchain("check", first, second)
    assert proc.returncode == 2 and f"{second}: scenario name 'other' is also the name of {first}" in proc.stderr


def test_one_file_given_twice_is_still_run_twice(tmp_path):
    path = _named(tmp_path / "a", "once", kernel="missing-bzImage")
    proc = seedchain("run", path, path, "--artifacts", tmp_path / "out")
    assert proc.returncode == 125 and proc.stderr.count("missing-bzImage does not exist") == 2, proc.stderr


def test_an_empty_qemu_option_is_refused(tmp_path):
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--qemu", "", "--kernel", NO_KERNEL,
                     "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert proc.stderr.startswith("seedchain: error: --qemu: names no QEMU"), proc.stderr


def test_one_layer_is_singular_and_list_has_no_blank_lines():
    proc = seedchain("check", "scenarios/qemu-only.yaml", "scenarios/kexec-file-2.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["scenarios/qemu-only.yaml: ok (qemu-only, 1 layer)",
                                            "scenarios/kexec-file-2.yaml: ok (kexec-file-2, 2 layers)"]
    proc = seedchain("list", "scenarios")
    assert proc.returncode == 0 and "" not in proc.stdout.splitlines(), proc.stdout
    assert any(re.match(r"qemu-only +1 layer +QEMU boots a 6.1 kernel directly\. No", line)
               for line in proc.stdout.splitlines()), proc.stdout
    assert " 1 layers" not in proc.stdout


def test_interrupting_check_says_nothing_of_qemu(monkeypatch, capsys):
    import signal
    from harness import cli
    previous = signal.getsignal(signal.SIGTERM)

    def interrupted(path):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "load_scenario", interrupted)
    try:
        assert cli.main(["check", "scenarios/qemu-only.yaml"]) == 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err == "seedchain: interrupted\n"


def test_a_reader_that_goes_away_is_no_traceback():
    # `true` is gone before seedchain writes: the write meets a closed pipe
    proc = subprocess.run(f"{sys.executable} -m harness.cli list scenarios | true",
                          shell=True, capture_output=True, text=True, cwd=ROOT)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_ctrl_c_while_the_modules_load_is_one_line_not_a_traceback():
    """A Ctrl-C 50 ms after start landed in an import (1 of 9 SIGINTs in the stress) and
    printed a KeyboardInterrupt traceback. Here the signal comes while harness.cli loads."""
    code = ("import os, signal, sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'harness.checks.verdict':\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "import harness.cli\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, preexec_fn=signals_as_at_a_terminal)
    assert (proc.returncode, proc.stderr) == (130, "seedchain: interrupted\n")


def test_importing_the_command_line_leaves_the_signals_as_they_were():
    code = ("import signal, harness.cli\n"
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, preexec_fn=signals_as_at_a_terminal)
    assert proc.returncode == 0, proc.stderr


def test_ctrl_c_while_a_command_is_parsed(monkeypatch, capsys):
    import signal
    from harness import cli

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_parser", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["list"]) == cli.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err == "seedchain: interrupted\n"


def test_version():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stdout) == (0, "seedchain 0.1.0\n"), proc.stderr
