# SPDX-License-Identifier: GPL-2.0-only
"""What `seedchain check` finds without any network, and `run` before it builds anything:
Debian suites, kernel files, the QEMU build; kernel paths that lead out of the scenario's
folder and the project; a QEMU option that names no QEMU. No QEMU is booted here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.arch import x86_64
from harness.errors import ImageError, QemuError
from harness.images import qemu_builds
from harness.images.cache import Cache
from test_cli import seedchain
from test_kconfig import kernel

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_QEMU = shutil.which("qemu-system-x86_64")


def scenario_file(folder: Path, *, kernel_line: str = "kernel: debian:bookworm/6.1", layer: str = "",
                  qemu: str = "") -> Path:
    """A one-layer scenario: line 3 is its `qemu:` (if any), the layer starts on line 5."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "s.yaml"
    path.write_text("name: s\ndescription: d\n" + (f"qemu: {qemu}\n" if qemu else "# no qemu\n")
                    + f"layers:\n  - {kernel_line}\n" + (f"    {layer}\n" if layer else ""))
    return path


def _files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.txt"
    text.write_text("just some words\n" * 100)
    elf = tmp_path / "vmlinux"
    elf.write_bytes(b"\x7fELF" + bytes(8192))
    (tmp_path / "folder").mkdir()
    return {"missing": tmp_path / "nothing-here", "folder": tmp_path / "folder", "text": text, "elf": elf}


CASES = [  # (what the layer or qemu says, the line named, the message)
    ({"kernel_line": "kernel: debian:buster/4.19"}, "5: layer 1", "unknown Debian suite 'buster'"),
    ({"layer": "userland: debian:jessie"}, "5: layer 1", "unknown Debian suite 'jessie' in userland"),
    ({"qemu": "{build: 'debian:buster'}"}, "3: qemu.build", "unknown Debian suite 'buster'"),
    ({"qemu": "{build: 'debian:bookworm-backports'}"}, "3: qemu.build", "unknown Debian suite"),
    ({"qemu": "{build: 'source:9.9.9'}"}, "3: qemu.build", "no recipe for a QEMU source build '9.9.9'"),
    ({"qemu": "{build: ./no-such-qemu}"}, "3: qemu.build", "no-such-qemu is not an executable file"),
    ({"kernel_line": "kernel: nothing-here"}, "5: layer 1", "nothing-here does not exist"),
    ({"kernel_line": "kernel: folder"}, "5: layer 1", "folder is a directory, not a bzImage"),
    ({"kernel_line": "kernel: notes.txt"}, "5: layer 1", "is not an x86 bzImage: found a text file"),
    ({"kernel_line": "kernel: vmlinux"}, "5: layer 1", "is not an x86 bzImage: found an ELF file"),
]


@pytest.mark.parametrize("fields,where,message", CASES, ids=[c[2].split(" is ")[0][:40] for c in CASES])
def test_check_refuses_what_run_would_refuse(tmp_path, fields, where, message):
    _files(tmp_path)
    path = scenario_file(tmp_path, **fields)
    proc = seedchain("check", path, "--allow-scenario-binaries")     # for the binary's own checks
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith(f"seedchain: error: {path}:{where}: "), proc.stderr
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("fields,where,message", CASES, ids=[c[2].split(" is ")[0][:40] for c in CASES])
def test_run_refuses_it_before_building_anything(tmp_path, fields, where, message):
    _files(tmp_path)
    path = scenario_file(tmp_path, **fields)
    cache = tmp_path / "cache"
    proc = seedchain("run", path, "--artifacts", tmp_path / "out", "--allow-scenario-binaries",
                     env={"SEEDCHAIN_CACHE": str(cache), "SEEDCHAIN_OFFLINE": "1"})
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"seedchain: error: {path}:{where}: "), proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not cache.exists() or sorted(p.name for p in cache.iterdir()) == []


def test_a_good_kernel_file_and_the_default_suites_pass(tmp_path):
    kernel(tmp_path)
    proc = seedchain("check", scenario_file(tmp_path, kernel_line="kernel: bzImage"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{tmp_path / 's.yaml'}: ok (s, 1 layer)")


# ---------------------------------------------------------------- a file's content is never shown

def test_a_file_that_is_not_a_kernel_is_named_by_what_it_is_not_and_its_size(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$j9T$SECRETSALT$SECRETHASHSECRETHASH:19000:0:99999:7:::\n" * 20)
    size = secret.stat().st_size
    with pytest.raises(ImageError) as info:
        x86_64.read_kernel(secret)
    said = str(info.value).replace(str(secret), "FILE")
    data = secret.read_bytes()
    assert not any(data[i:i + 4].decode() in said for i in range(0, 0x400)), said
    assert f"{size} bytes" in said and "no Linux boot header" in said, said
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x01")
    with pytest.raises(ImageError, match="found only 2 bytes"):
        x86_64.read_kernel(tiny)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_a_kernel_path_out_of_the_folder_and_the_project_is_refused_unless_allowed(tmp_path, how):
    folder = tmp_path / "mine"
    folder.mkdir()
    if how == "symlink":
        (folder / "bzImage").symlink_to("/etc/passwd")
    line = {"dotdot": "kernel: " + "../" * 30 + "etc/passwd", "absolute": "kernel: /etc/passwd",
            "symlink": "kernel: bzImage"}[how]
    path = scenario_file(folder, kernel_line=line)
    for command, status in (("check", 2), ("run", 125)):
        proc = seedchain(command, path, "--artifacts", tmp_path / "out") if command == "run" \
            else seedchain(command, path)
        assert proc.returncode == status
        assert proc.stderr.startswith(f"seedchain: error: {path}:5: layer 1: the kernel path leads out of "
                                      "the scenario's folder and the project, to /etc/passwd"), proc.stderr
        assert "--allow-outside-paths" in proc.stderr
    proc = seedchain("check", "--allow-outside-paths", path)
    assert proc.returncode == 2 and "is not an x86 bzImage: found a text file" in proc.stderr, proc.stderr
    assert "root:" not in proc.stderr and "root:" not in proc.stdout


def test_a_kernel_inside_the_project_or_given_as_an_option_is_not_outside(tmp_path):
    kernel(tmp_path)
    path = scenario_file(tmp_path / "mine", kernel_line=f"kernel: {ROOT}/no-such-kernel")
    assert "no-such-kernel does not exist" in seedchain("check", path).stderr
    path = scenario_file(tmp_path / "mine", kernel_line="kernel: /etc/passwd")
    proc = seedchain("run", path, "--kernel", "/nonexistent/bzImage", "--artifacts", tmp_path / "out")
    assert proc.returncode == 125 and "/nonexistent/bzImage does not exist" in proc.stderr, proc.stderr


# ---------------------------------------------------------------- --qemu

def test_a_qemu_named_by_its_name_on_path(tmp_path):
    build = qemu_builds.resolve("qemu-system-x86_64", Cache(tmp_path / "cache"))
    assert build.binary == SYSTEM_QEMU and build.label == "qemu-system-x86_64"


def _not_qemu(tmp_path: Path, body: str = "echo 'hello'") -> tuple[Path, Path]:
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "not-qemu"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n{body}\n')
    fake.chmod(0o755)
    return fake, calls


def test_a_binary_that_is_not_qemu_is_asked_once_and_refused(tmp_path):
    fake, calls = _not_qemu(tmp_path)
    with pytest.raises(QemuError) as info:
        qemu_builds.resolve(str(fake), Cache(tmp_path / "cache"))
    assert f"{fake} is not a QEMU: `{fake} --version` did not print 'QEMU emulator version'" in info.value.what
    assert "hello" not in str(info.value)
    assert calls.read_text() == "--version\n"


def test_a_binary_that_does_not_answer_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu_builds, "PROBE_SECONDS", 0.5)
    fake, calls = _not_qemu(tmp_path, "sleep 30")
    with pytest.raises(QemuError, match=r"did not answer `.* --version` within 0.5 s"):
        qemu_builds.resolve(str(fake), Cache(tmp_path / "cache"))


def test_run_with_a_qemu_option_that_is_not_qemu_starts_nothing(tmp_path):
    fake, calls = _not_qemu(tmp_path)
    proc = seedchain("run", "scenarios/qemu-only.yaml", "--qemu", fake, "--artifacts", tmp_path / "out",
                     env={"SEEDCHAIN_CACHE": str(tmp_path / "cache"), "SEEDCHAIN_OFFLINE": "1"})
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"seedchain: error: --qemu: {fake} is not a QEMU"), proc.stderr
    assert calls.read_text() == "--version\n"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_artifacts_folder_too_deep_for_sockets_is_a_clear_error(tmp_path):
    from harness.boot.qemu import SOCKET_PATH_MAX, Machine
    from harness.errors import QemuError
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    machine = Machine(["/bin/false"], [], deep)
    with pytest.raises(QemuError) as info:
        machine.start()
    assert f"at most {SOCKET_PATH_MAX}" in str(info.value) and "shorter --artifacts" in info.value.hint
    assert machine.proc is None                                       # nothing was started
