"""The command line on bad input and broken set-ups: a clear message, no traceback; exit 125
under `run` (git bisect run's "cannot test"), 2 under the other commands."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_a_path_escaping_the_project_is_just_a_file_to_check(tmp_path):
    scenario = tmp_path / "escape.yaml"
    scenario.write_text("name: escape\ndescription: x\nlayers:\n  - kernel: " + "../" * 40 + "etc/passwd\n")
    proc = seedchain("run", scenario, "--artifacts", tmp_path)
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"seedchain: error: {scenario}:4: layer 1")
    assert "/etc/passwd" in proc.stderr and "not a" in proc.stderr


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
    assert proc.stderr.startswith("seedchain: error: ") and "scenarios/matrix.yaml: no matrix named 'nighty'" in proc.stderr
    assert "hint: known: nightly, smoke" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--file", "{tmp}/none.yaml"], "none.yaml: no such matrix file"),
    (["--file", "{tmp}/bad.yaml"], "bad.yaml:1: matrixes: unknown key; allowed: matrices"),
    (["--file", "{tmp}/empty.yaml"], "empty.yaml:1: top level: missing required key 'matrices'"),
    (["--by", "cpu"], "unknown axis 'cpu'"),
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
