# SPDX-License-Identifier: GPL-2.0-only
"""Kernels and userland from Debian packages.

The tests marked `network` use the real mirror (and the default cache, so a second
run downloads nothing); the others need no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.images import debian
from harness.images.cache import Cache
from harness.images.kernel_builds import kernel_abi
from harness.images.debian import (
    Apt, KernelSpec, compare_versions, kernel_modules, parse_kernel_spec,
    resolve_kernel, upstream_version, userland,
)
from harness.arch.x86_64 import read_kernel as read_bzimage
from harness.errors import ImageError


DEBIAN_VERSION = b"6.1.0-99-amd64 (x@y) #1 SMP Debian 6.1.999-1 (2030-01-01)"


def fake_bzimage(path: Path, version: bytes = DEBIAN_VERSION) -> Path:
    """The least a bzImage needs: the header magic and a version string."""
    data = bytearray(0x4000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x3000 - 0x200).to_bytes(2, "little")
    data[0x3000:0x3000 + len(version) + 1] = version + b"\0"
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------- specs and names

def test_parse_kernel_spec():
    assert parse_kernel_spec("debian:bookworm/6.1") == KernelSpec("bookworm", "6.1")
    assert parse_kernel_spec("debian:sid/7.2") == KernelSpec("sid", "7.2")
    assert parse_kernel_spec("debian:bookworm-backports/6.12") == KernelSpec("bookworm-backports", "6.12")
    with pytest.raises(ImageError) as info:
        parse_kernel_spec("debian:buster/4.19")
    assert "buster" in info.value.what and "bookworm" in info.value.hint
    for bad in ("debian:bookworm", "debian:bookworm/6", "debian:/6.1", "bookworm/6.1"):
        with pytest.raises(ImageError, match="bad kernel spec"):
            parse_kernel_spec(bad)


@pytest.mark.parametrize("name, abi", [
    ("linux-image-6.1.0-41-amd64-unsigned", "6.1.0-41"),
    ("linux-image-5.10.0-46-amd64-unsigned", "5.10.0-46"),
    ("linux-image-6.1.0-0.deb11.52-amd64-unsigned", "6.1.0-0.deb11.52"),
    ("linux-image-6.12.115+deb13.1-amd64-unsigned", "6.12.115+deb13.1"),
    ("linux-binary-7.2.13+deb14-amd64", "7.2.13+deb14"),
    ("linux-image-6.1.0-41-cloud-amd64-unsigned", None),
    ("linux-image-6.1.0-41-rt-amd64-unsigned", None),
    ("linux-image-6.1.0-41-amd64-dbg", None),
    ("linux-image-6.1.0-41-amd64", None),  # the signed one: not a -unsigned package
    ("linux-binary-7.2.13+deb14-cloud-amd64", None),
    ("linux-binary-unsigned-7.2.13+deb14-amd64", None),
    ("linux-modules-7.2.13+deb14-amd64", None),
    ("linux-image-amd64", None),
])
def test_kernel_package_names(name, abi):
    m = kernel_abi(name)
    assert (m["abi"] if m else None) == abi


@pytest.mark.parametrize("member, release", [
    ("./boot/vmlinuz-6.1.0-41-amd64", "6.1.0-41-amd64"),
    ("./usr/lib/modules/7.2.13+deb14-amd64/vmlinuz", "7.2.13+deb14-amd64"),
    ("./lib/modules/6.1.0-41-amd64/kernel/x.ko", None),
    ("./boot/System.map-6.1.0-41-amd64", None),
])
def test_release_from_member(member, release):
    assert debian._release_of(member) == release


@pytest.mark.parametrize("a, b", [
    ("6.1.192-1", "6.1.192-2"),
    ("6.12.95-1~bpo12+1", "6.12.95-1"),
    ("1.0~rc1", "1.0"),
    ("1:1.0", "2:0.1"),
    ("6.1.99-1", "6.1.170-3"),
    ("2.0.25-3", "2.0.25-3+deb12u3"),
    ("1.0a", "1.0b"),
    ("1.0", "1.0a"),
])
def test_compare_versions(a, b):
    assert compare_versions(a, b) < 0 < compare_versions(b, a)
    assert compare_versions(a, a) == 0


def test_upstream_version():
    assert upstream_version("1:2.0.25-3+deb12u3") == "2.0.25"
    assert upstream_version("1:1.35.0-4+b3") == "1.35.0"
    assert upstream_version("2.0.20") == "2.0.20"


# ---------------------------------------------------------------- bzImage files

def test_bzimage_header(tmp_path):
    image = fake_bzimage(tmp_path / "bzImage")
    assert read_bzimage(image) == ("6.1.0-99-amd64", "6.1.999-1")
    k = resolve_kernel(str(image), Cache(tmp_path / "cache"))
    assert (k.path, k.package, k.release, k.version) == (image, "(file)", "6.1.0-99-amd64", "6.1.999-1")
    assert not (tmp_path / "cache").exists()  # a file needs no cache
    plain = fake_bzimage(tmp_path / "plain", b"6.9.0-rc1 (me@host) #3 SMP")
    assert read_bzimage(plain) == ("6.9.0-rc1", "6.9.0-rc1")
    assert read_bzimage(fake_bzimage(tmp_path / "nostring", b"")) == ("", "")


@pytest.mark.parametrize("content, found", [
    (b"just some text\n" * 100, "found a text file of 1500 bytes with no Linux boot header"),
    (b"\x7fELF" + bytes(0x400), "ELF"),
    (b"070701" + bytes(0x400), "cpio"),
    (b"\x1f\x8b" + bytes(10), "gzip"),
    (b"tiny", "only 4 bytes"),
])
def test_not_a_bzimage(tmp_path, content, found):
    path = tmp_path / "vmlinuz"
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        resolve_kernel(str(path), Cache(tmp_path / "cache"))
    assert str(path) in info.value.what and found in info.value.what
    assert "bzImage" in info.value.hint


def test_missing_kernel_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        resolve_kernel(str(tmp_path / "nope"), Cache(tmp_path))
    with pytest.raises(ImageError, match="directory"):
        resolve_kernel(str(tmp_path), Cache(tmp_path))


def test_kernel_modules_of_a_file_is_none(tmp_path):
    assert kernel_modules(str(fake_bzimage(tmp_path / "bz")), Cache(tmp_path)) is None


# ---------------------------------------------------------------- private apt

def test_apt_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDCHAIN_DEBIAN_MIRROR", "http://mirror.example/debian")
    monkeypatch.delenv("SEEDCHAIN_DEBIAN_SECURITY", raising=False)
    cache = Cache(tmp_path)
    bookworm = Apt("bookworm", cache)
    lines = bookworm.sources().splitlines()
    assert [line.split()[-2] for line in lines] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert "http://mirror.example/debian bookworm " in lines[0]
    assert "http://deb.debian.org/debian-security bookworm-security" in lines[2]
    assert all("signed-by=/usr/share/keyrings/debian-archive-keyring.gpg" in line for line in lines)
    assert Apt("trixie-backports", cache).sources().splitlines()[-1].split()[-2] == "trixie-backports"
    assert [line.split()[-2] for line in Apt("sid", cache).sources().splitlines()] == ["sid"]
    assert "Check-Valid-Until" in Apt("sid", cache).conf()
    assert "Check-Valid-Until" not in bookworm.conf()
    conf = bookworm.conf()
    # Every place apt reads or writes is private to this suite in the cache.
    for key in ("Dir::Etc::Parts", "Dir::Etc::SourceList", "Dir::Etc::SourceParts",
                "Dir::State::lists", "Dir::State::status", "Dir::Cache"):
        assert re.search(rf'^{key} "{tmp_path}/apt/bookworm/', conf, re.M), key
    assert bookworm.env["APT_CONFIG"] == f"{tmp_path}/apt/bookworm/apt.conf"
    with pytest.raises(ImageError, match="unknown Debian suite"):
        Apt("stretch", cache)


def test_offline_without_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDCHAIN_OFFLINE", "1")
    with pytest.raises(ImageError) as info:
        resolve_kernel("debian:bookworm/6.1", Cache(tmp_path))
    assert "SEEDCHAIN_OFFLINE" in info.value.what


def test_unreachable_mirror(tmp_path, monkeypatch):
    # Nothing listens on the discard port of loopback: apt fails at once.
    monkeypatch.setenv("SEEDCHAIN_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    monkeypatch.setenv("SEEDCHAIN_DEBIAN_SECURITY", "http://127.0.0.1:9/debian-security")
    monkeypatch.delenv("SEEDCHAIN_OFFLINE", raising=False)
    with pytest.raises(ImageError) as info:
        userland("bookworm", Cache(tmp_path))
    assert "package lists" in info.value.what
    assert "network" in info.value.hint and "127.0.0.1:9" in info.value.hint


def test_missing_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dpkg-deb, no apt-get here
    with pytest.raises(ImageError) as info:
        debian._scan_deb(tmp_path / "x.deb", lambda tar, member: False)
    assert info.value.hint == "apt-get install dpkg"
    with pytest.raises(ImageError) as info:
        Apt("bookworm", Cache(tmp_path)).query("policy", "kexec-tools")
    assert info.value.hint == "apt-get install apt"


def test_apt_cache_answers_are_kept_until_the_lists_change(tmp_path, monkeypatch):
    """A warm run asks apt-cache nothing: its answers are kept per state of the lists."""
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls"
    (tools / "apt-cache").write_text(f'#!/bin/sh\necho "$@" >>{calls}\necho "answer to $*"\n')
    (tools / "apt-cache").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    apt = Apt("bookworm", Cache(tmp_path / "cache"))
    apt.dir.mkdir(parents=True)

    def asked() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0
    assert apt.query("policy", "kexec-tools") == "answer to policy kexec-tools\n"
    assert apt.query("policy", "kexec-tools") and asked() == 2        # no lists yet: nothing kept
    (apt.dir / "updated").touch()
    apt.query("policy", "kexec-tools")
    assert apt.query("policy", "kexec-tools") == "answer to policy kexec-tools\n" and asked() == 3
    apt.query("show", "kexec-tools")
    assert asked() == 4                                                # another question is asked
    later = (apt.dir / "updated").stat().st_mtime + 60
    os.utime(apt.dir / "updated", (later, later))                      # the lists were fetched again
    apt.query("policy", "kexec-tools")
    assert asked() == 5


def test_broken_deb(tmp_path):
    deb = tmp_path / "broken.deb"
    deb.write_bytes(b"!<arch>\nnot really a package")
    with pytest.raises(ImageError, match="dpkg-deb could not read broken.deb"):
        debian._scan_deb(deb, lambda tar, member: False)


def test_resolve_in_stage_stays_inside(tmp_path):
    stage = tmp_path / "stage"
    (stage / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (stage / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").write_text("loader")
    (stage / "lib64").mkdir()
    # As libc6 ships it: an absolute link, which must not lead to the host's loader.
    (stage / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (stage / "usr").mkdir()
    (stage / "usr/lib").symlink_to("../lib")
    found = debian._resolve_in(stage, "lib64/ld-linux-x86-64.so.2")
    assert found == stage / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert debian._resolve_in(stage, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2") == found
    assert debian._resolve_in(stage, "../../../etc/passwd") is None
    (stage / "loop").symlink_to("loop")
    assert debian._resolve_in(stage, "loop") is None


# ---------------------------------------------------------------- the real mirror

def run_in_root(root: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run a program of the tree with the tree as /, as the guest would."""
    if os.geteuid() == 0:
        cmd = ["chroot", str(root), *argv]
    else:  # bubblewrap gives an unprivileged user the same
        cmd = ["bwrap", "--bind", str(root), "/", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.network
def test_bookworm_kernel():
    cache = Cache()
    k = resolve_kernel("debian:bookworm/6.1", cache)
    assert re.fullmatch(r"linux-image-6\.1\.0-\d+-amd64-unsigned", k.package)
    assert re.fullmatch(r"6\.1\.0-\d+-amd64", k.release)
    assert k.path.name == f"vmlinuz-{k.release}"
    assert k.path.read_bytes()[0x202:0x206] == b"HdrS"
    # The real image's own version string agrees with the package.
    assert read_bzimage(k.path) == (k.release, k.version)
    assert resolve_kernel(str(k.path), cache).release == k.release
    # Second time: all from the cache and the lists of today, no download.
    start = time.perf_counter()
    assert resolve_kernel("debian:bookworm/6.1", cache) == k
    assert time.perf_counter() - start < 1.0


@pytest.mark.network
def test_no_such_series_lists_the_others():
    with pytest.raises(ImageError) as info:
        resolve_kernel("debian:bookworm/5.10", Cache())
    assert "5.10" in info.value.what
    assert "6.1" in info.value.hint


@pytest.mark.network
def test_bookworm_modules():
    tree = kernel_modules("debian:bookworm/6.1", Cache())
    assert tree is not None and tree.name == resolve_kernel("debian:bookworm/6.1", Cache()).release
    assert list(tree.glob("kernel/drivers/char/hw_random/virtio-rng.ko*"))


@pytest.mark.network
def test_bookworm_userland_runs_kexec():
    u = userland("bookworm", Cache())
    assert upstream_version(u.kexec_tools_version) == "2.0.25"
    assert (u.root / "bin/busybox").is_file()
    assert (u.root / "lib64/ld-linux-x86-64.so.2").is_file()
    assert list(u.root.glob("lib/x86_64-linux-gnu/libxen*"))  # docs/facts.md#kexec-tools: Debian's kexec needs them
    out = run_in_root(u.root, "/sbin/kexec", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["kexec-tools", upstream_version(u.kexec_tools_version)]
    out = run_in_root(u.root, "/bin/busybox", "echo", "busybox works")
    assert out.stdout.strip() == "busybox works"
    assert shutil.disk_usage(u.root)  # the tree is a plain folder


def test_lists_refresh_at_most_daily(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("SEEDCHAIN_OFFLINE", raising=False)
    apt = Apt("bookworm", Cache(tmp_path))
    (apt.dir / "lists").mkdir(parents=True)
    (apt.dir / "sources.list").write_text(apt.sources())
    (apt.dir / "apt.conf").write_text(apt.conf())
    (apt.dir / "lists" / "x_dists_bookworm_main_binary-amd64_Packages").write_text("")
    (apt.dir / "updated").touch()
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # any apt-get call would fail
    apt.ensure_lists()  # fresh: no call
    assert not caplog.records
    day_ago = time.time() - 25 * 3600
    os.utime(apt.dir / "updated", (day_ago, day_ago))
    monkeypatch.setenv("SEEDCHAIN_OFFLINE", "1")
    apt.ensure_lists()  # stale, but offline: no call
    assert not caplog.records
    monkeypatch.delenv("SEEDCHAIN_OFFLINE")
    apt.ensure_lists()  # stale: tries, fails, keeps the old lists with a warning
    assert "apt-get was not found" in caplog.text and "from before" in caplog.text
    caplog.clear()
    apt.ensure_lists()  # and does not try again at once
    assert not caplog.records
