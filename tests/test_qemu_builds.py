# SPDX-License-Identifier: GPL-2.0-only
"""QEMU builds: the system's, a Debian suite's (mmdebstrap + bubblewrap), a user's path.

The unit tests need neither network nor QEMU runs. The `vm` tests build Debian
root file systems (cached afterwards) and boot short chains under them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.images import qemu_builds
from harness.images.cache import Cache
from harness.images.debian import Apt, Package
from harness.errors import ImageError, QemuError
from harness.boot.qemu import Machine
from harness.images.qemu_builds import QemuBuild, installed_version, resolve

REPO = Path(__file__).resolve().parent.parent
SYSTEM_QEMU = shutil.which("qemu-system-x86_64")


def executable(path: Path, text: str = "#!/bin/sh\necho 'QEMU emulator version 0.0.0 (a stand-in)'\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_root(tmp_path: Path) -> Path:
    """A merged-/usr tree shaped like the ones mmdebstrap makes."""
    root = tmp_path / "entry" / "root"
    for d in ("usr/bin", "usr/lib", "usr/share/OVMF", "etc", "var/lib/dpkg", "root"):
        (root / d).mkdir(parents=True)
    for name in ("bin", "lib"):
        (root / name).symlink_to(f"usr/{name}")
    executable(root / "usr/bin/qemu-system-x86_64")
    return root


# ---------------------------------------------------------------- build strings

def test_system(tmp_path):
    build = resolve("system", Cache(tmp_path / "cache"))
    assert build == QemuBuild(label="system", binary=SYSTEM_QEMU)
    assert build.prefix == () and build.extra_args == () and build.package_version == ""
    assert build.command(tmp_path / "run", tmp_path / "cache") == [build.binary]
    assert build.host_binary == build.binary
    assert not (tmp_path / "cache").exists()  # nothing built, nothing fetched


def test_path_build_and_its_pc_bios(tmp_path):
    cache = Cache(tmp_path / "cache")
    plain = executable(tmp_path / "plain" / "qemu-system-x86_64")
    build = resolve(str(plain), cache)
    assert (build.label, build.binary, build.prefix, build.extra_args) == (str(plain), str(plain), (), ())
    assert build.command(tmp_path / "run", cache.root) == [str(plain)]

    # A build directory with pc-bios beside the binary ...
    beside = executable(tmp_path / "b1" / "build" / "qemu-system-x86_64")
    (beside.parent / "pc-bios").mkdir()
    assert resolve(str(beside), cache).extra_args == ("-L", str(beside.parent / "pc-bios"))
    # ... or a source tree's pc-bios one level up from the build directory.
    below = executable(tmp_path / "b2" / "build" / "qemu-system-x86_64")
    (tmp_path / "b2" / "pc-bios").mkdir()
    assert resolve(str(below), cache).extra_args == ("-L", str(tmp_path / "b2" / "pc-bios"))


@pytest.mark.parametrize("build, message, hint", [
    ("", "qemu.build is empty", "debian:SUITE"),
    ("   ", "qemu.build is empty", "debian:SUITE"),
    ("debian:", "unknown Debian suite ''", "debian:bullseye, debian:bookworm, debian:trixie, debian:sid"),
    ("debian:buster", "unknown Debian suite 'buster'", "debian:bullseye, debian:bookworm, debian:trixie, debian:sid"),
    ("debian:bookworm-backports", "unknown Debian suite 'bookworm-backports'", "debian:trixie"),
    ("debian:Trixie", "unknown Debian suite 'Trixie'", "debian:trixie"),
    ("/nonexistent/qemu-system-x86_64", "is not an executable file", "qemu-system-x86_64"),
])
def test_bad_build_strings(tmp_path, build, message, hint):
    with pytest.raises(QemuError) as info:
        resolve(build, Cache(tmp_path / "cache"))
    assert message in info.value.what
    assert hint in info.value.hint
    assert not (tmp_path / "cache").exists()


def test_path_that_is_not_an_executable_file(tmp_path):
    cache = Cache(tmp_path / "cache")
    text = tmp_path / "qemu.txt"
    text.write_text("not a program")
    for bad in (text, tmp_path):
        with pytest.raises(QemuError, match="is not an executable file"):
            resolve(str(bad), cache)


# ---------------------------------------------------------------- missing tools

def test_missing_system_qemu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(QemuError) as info:
        resolve("system", Cache(tmp_path / "cache"))
    assert "qemu-system-x86_64 is not installed" in info.value.what
    assert "apt-get install qemu-system-x86" in info.value.hint


def test_missing_bwrap_is_named_before_anything_is_fetched(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(QemuError) as info:
        resolve("debian:trixie", Cache(tmp_path / "cache"))
    assert "bwrap" in info.value.what
    assert info.value.hint == "apt-get install bubblewrap"
    assert not (tmp_path / "cache").exists()


def test_missing_mmdebstrap(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if shutil.which("bwrap"):
        (bin_dir / "bwrap").symlink_to(shutil.which("bwrap"))
    monkeypatch.setenv("PATH", str(bin_dir))
    apt = Apt("trixie", Cache(tmp_path / "cache"))
    pkg = Package("qemu-system-x86", "1:10.0.13+ds-0+deb13u1", "0" * 64, 1, "")
    entry = tmp_path / "entry"
    entry.mkdir()
    with pytest.raises(ImageError) as info:
        qemu_builds._build_root(apt, pkg, entry)
    assert "mmdebstrap" in info.value.what
    assert info.value.hint == "apt-get install mmdebstrap"
    assert list(entry.iterdir()) == []


# ---------------------------------------------------------------- the sandbox's command

def test_sandbox_prefix_and_binds(tmp_path, monkeypatch):
    root = fake_root(tmp_path)
    prefix = qemu_builds._sandbox("/usr/bin/bwrap", root)
    assert prefix[:3] == ("/usr/bin/bwrap", "--die-with-parent", "--unshare-pid")
    text = " ".join(prefix)
    assert f"--ro-bind {root}/usr /usr" in text and f"--ro-bind {root}/etc /etc" in text
    assert "--symlink usr/bin /bin" in text and "--symlink usr/lib /lib" in text
    assert "--dev-bind /dev /dev --proc /proc --tmpfs /tmp" in text
    assert "/root" not in text.split() and f"{root}/var" not in text  # only what QEMU needs
    if Path("/usr/share/OVMF").is_dir():
        assert "--ro-bind /usr/share/OVMF /usr/share/OVMF" in text

    build = QemuBuild("debian:trixie", "/usr/bin/qemu-system-x86_64", prefix=prefix,
                      package_version="1:10.0.13+ds-0+deb13u1", root=root)
    assert build.host_binary == str(root / "usr/bin/qemu-system-x86_64")
    cache_root = tmp_path / "cache"
    kernel_in_cache = cache_root / "kernel" / "abc" / "vmlinuz"
    own_kernel = tmp_path / "src" / "bzImage"
    work = tmp_path / "results" / "kexec-file-2"
    argv = build.command(work, cache_root, [kernel_in_cache, own_kernel])
    assert argv[:len(prefix)] == list(prefix)
    assert argv[-2:] == ["--", "/usr/bin/qemu-system-x86_64"]
    binds = argv[len(prefix):-2]
    assert binds == ["--ro-bind", str(cache_root), str(cache_root),
                     "--ro-bind", str(own_kernel), str(own_kernel),
                     "--bind", str(work), str(work)]

    # A run folder inside the cache is still bound read-write, after the cache.
    inner = cache_root / "runs" / "x"
    binds = build.command(inner, cache_root)[len(prefix):-2]
    assert binds == ["--ro-bind", str(cache_root), str(cache_root), "--bind", str(inner), str(inner)]

    # Relative folders are bound at their absolute paths.
    monkeypatch.chdir(tmp_path)
    binds = build.command(Path("results/y"), Path("cache"))[len(prefix):-2]
    assert binds == ["--ro-bind", str(cache_root), str(cache_root),
                     "--bind", str(tmp_path / "results/y"), str(tmp_path / "results/y")]


def test_bind_under_the_sandboxes_usr_is_refused(tmp_path):
    root = fake_root(tmp_path)
    build = QemuBuild("debian:sid", "/usr/bin/qemu-system-x86_64",
                      prefix=qemu_builds._sandbox("/usr/bin/bwrap", root), root=root)
    with pytest.raises(QemuError) as info:
        build.command(Path("/usr/local/seedchain-results/x"), tmp_path / "cache")
    assert "/usr" in info.value.what and "SEEDCHAIN_CACHE" in info.value.hint
    # The host's OVMF folder is in the sandbox already (when the host has one).
    if Path("/usr/share/OVMF").is_dir():
        ovmf = [Path("/usr/share/OVMF/OVMF_CODE_4M.fd")]
        assert build.command(tmp_path / "run", tmp_path / "cache", ovmf)[-5:-2] == [
            "--bind", str(tmp_path / "run"), str(tmp_path / "run")]


def test_machine_runs_the_command(tmp_path):
    command = ["/usr/bin/bwrap", "--unshare-pid", "--", "/usr/bin/qemu-system-x86_64"]
    machine = Machine(command, ["-m", "256"], tmp_path)
    assert machine.command_line.startswith("/usr/bin/bwrap --unshare-pid -- /usr/bin/qemu-system-x86_64 -m 256 ")
    assert machine.binary == "/usr/bin/qemu-system-x86_64"
    assert Machine("/opt/qemu/bin/qemu-system-x86_64", [], tmp_path).command_line.startswith(
        "/opt/qemu/bin/qemu-system-x86_64 -chardev")


# ---------------------------------------------------------------- the root file system

def test_tidy_leaves_nothing_that_leads_out(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev").mkdir()
    (root / "dev/stdin").symlink_to("/proc/self/fd/0")
    os.mkfifo(root / "dev/initctl")
    os.mkfifo(root / "etc/fifo")
    (root / "usr/lib/libc.so.6").write_text("libc")
    (root / "usr/bin/awk").symlink_to("/usr/lib/libc.so.6")       # absolute: the host's file
    (root / "usr/bin/relative").symlink_to("../lib/libc.so.6")
    (root / "etc/mtab").symlink_to("/proc/self/mounts")
    qemu_builds._tidy(root)
    assert list((root / "dev").iterdir()) == []
    assert not (root / "etc/fifo").exists()
    assert os.readlink(root / "usr/bin/awk") == "../lib/libc.so.6"
    assert (root / "usr/bin/awk").resolve() == (root / "usr/lib/libc.so.6").resolve()
    assert os.readlink(root / "usr/bin/relative") == "../lib/libc.so.6"
    assert os.readlink(root / "etc/mtab") == "../proc/self/mounts"   # dangling inside the tree
    assert os.readlink(root / "bin") == "usr/bin"


def test_installed_version(tmp_path):
    root = fake_root(tmp_path)
    (root / "var/lib/dpkg/status").write_text(
        "Package: qemu-system-x86-microvm\nStatus: install ok installed\nVersion: 9\n\n"
        "Package: qemu-system-x86\nStatus: deinstall ok config-files\nVersion: 1:5.2\n\n"
        "Package: qemu-system-x86\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 1:10.0.13+ds-0+deb13u1\n")
    assert installed_version(root, "qemu-system-x86") == "1:10.0.13+ds-0+deb13u1"
    with pytest.raises(ImageError, match="ovmf is not installed"):
        installed_version(root, "ovmf")


# ---------------------------------------------------------------- real builds and boots

def _scenario(name: str, build: str):
    from harness.scenario.load import load_scenario
    scenario = load_scenario(REPO / "scenarios" / f"{name}.yaml")
    # accel tcg: the machines this runs on have no working KVM, and the probe costs seconds.
    return dataclasses.replace(scenario, qemu=dataclasses.replace(scenario.qemu, build=build, accel="tcg"))


def _left_behind(folder: Path) -> list[str]:
    """QEMU or bwrap processes whose command line names this run's folder."""
    deadline = time.monotonic() + 5
    while True:
        proc = subprocess.run(["pgrep", "-a", "-f", re.escape(str(folder))], capture_output=True, text=True)
        found = [line for line in proc.stdout.splitlines() if re.search(r"qemu-system|bwrap", line)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.vm
@pytest.mark.network
@pytest.mark.parametrize("suite, scenario, version", [
    ("trixie", "kexec-file-2", "10.0."),    # 2 layers: the child gets kexec_file_load's seed
    ("bullseye", "qemu-only", "5.2."),      # 1 layer: QEMU 5.2 passes no seed
])
def test_debian_build_runs_a_chain(seedchain, tmp_path, suite, scenario, version):
    from harness.pipeline import run
    build = resolve(f"debian:{suite}", seedchain.cache)
    assert build.label == f"debian:{suite}" and build.prefix[0].endswith("bwrap")
    assert build.package_version.startswith(f"1:{version[:3]}")
    result = run(_scenario(scenario, f"debian:{suite}"), cache=seedchain.cache, artifacts=tmp_path)
    assert result.passed, "\n".join(result.failures())
    assert result.qemu_version.startswith(version), result.qemu_version
    assert build.package_version in result.qemu_version  # QMP's "package": "Debian 1:10.0.13+ds-..."
    assert result.qemu_binary == f"debian:{suite}"
    cmdline = (Path(result.artifacts) / "qemu-cmdline.txt").read_text()
    assert cmdline.startswith(" ".join(build.prefix[:3]))
    assert _left_behind(tmp_path) == []
    assert seedchain.cache.verify(build.root.parent)  # QEMU could not write to the tree


@pytest.mark.vm
@pytest.mark.network
def test_user_path_build(seedchain, tmp_path):
    from harness.pipeline import run
    wrapper = executable(tmp_path / "mybuild" / "qemu-system-x86_64",
                         f'#!/bin/sh\nexec {SYSTEM_QEMU} "$@"\n')
    result = run(_scenario("qemu-only", str(wrapper)), cache=seedchain.cache, artifacts=tmp_path / "out")
    assert result.passed, "\n".join(result.failures())
    assert result.qemu_binary == str(wrapper)
    assert (Path(result.artifacts) / "qemu-cmdline.txt").read_text().startswith(f"{wrapper} -nodefaults")
    host = subprocess.run([SYSTEM_QEMU, "--version"], capture_output=True, text=True).stdout
    assert re.search(r"version (\S+)", host)[1] == result.qemu_version.split()[0]
    assert _left_behind(tmp_path) == []
