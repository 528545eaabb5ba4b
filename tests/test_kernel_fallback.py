# SPDX-License-Identifier: GPL-2.0-only
"""A kernel package the archive's index names but the mirror does not have (HTTP 404).

Seen with bullseye's security archive: its index listed linux-image-5.10.0-46-arm64-unsigned
5.10.262-1 while the mirror had no such file, so every aarch64 cell with kernel 5.10
failed in set-up. The newest build of the series is tried first; on a 404 an older
build of the same series is taken and the layer says so (kernel_note); only when
none of the newest few is there does the set-up fail, with a clear error.

The unit tests answer apt-cache's questions from a table and put a fake apt-get on
PATH that serves .deb files made here (and a 404 for the versions it is told to); the
test marked `network` downloads from the real mirror.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from harness.errors import ImageError
from harness.images import apt as apt_module
from harness.images import debian, kernel_builds
from harness.images.cache import Cache

SERIES = [("linux-image-5.10.0-46-arm64-unsigned", "5.10.262-1", "bullseye-security"),
          ("linux-image-5.10.0-45-arm64-unsigned", "5.10.259-1", "bullseye-security"),
          ("linux-image-5.10.0-32-arm64-unsigned", "5.10.223-1", "bullseye"),
          ("linux-image-5.10.0-32-rt-arm64-unsigned", "5.10.223-1", "bullseye")]
MIRRORS = {"bullseye": "http://deb.debian.org/debian",
           "bullseye-security": "http://deb.debian.org/debian-security"}

# What apt-get prints for a file the server does not have (its last lines).
NOT_FOUND = """\
Err:1 {mirror} {archive}/main arm64 {name} arm64 {version}
  404  Not Found [IP: 203.0.113.80 80]
E: Failed to fetch {mirror}/pool/updates/main/l/linux/{name}_{version}_arm64.deb  404  Not Found [IP: 203.0.113.80 80]
"""


def make_deb(work: Path, name: str, version: str) -> Path:
    """A .deb holding boot/vmlinuz-ABI-arm64 (its bytes are not looked at here)."""
    abi = name.removeprefix("linux-image-").removesuffix("-unsigned")
    tree = work / f"tree-{name}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: arm64\nMaintainer: t <t@t>\n"
        "Description: test\n")
    (tree / "boot").mkdir()
    (tree / "boot" / f"vmlinuz-{abi}").write_bytes(b"kernel " + version.encode())
    deb = work / "pool" / f"{name}_{version}_arm64.deb"
    deb.parent.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """apt for bullseye arm64 with the SERIES rows, a fake apt-get that serves them, and
    `missing`: the versions it answers with a 404."""
    work = tmp_path / "mirror"
    debs = {(n, v): make_deb(work, n, v) for n, v, _ in SERIES}
    missing = work / "missing"
    missing.write_text("")
    tools = tmp_path / "bin"
    tools.mkdir()
    for (name, version), archive in ((r[:2], r[2]) for r in SERIES):
        (work / f"404-{name}_{version}").write_text(NOT_FOUND.format(
            mirror=MIRRORS[archive], archive=archive, name=name, version=version))
    # apt-get -q download NAME=VERSION: the file, or apt's 404 words and exit 100.
    (tools / "apt-get").write_text(f"""#!/bin/sh
[ "$2" = download ] || exit 99
pin="$3"; name="${{pin%%=*}}"; version="${{pin#*=}}"
echo "$pin" >> {work}/asked
if grep -qx "$version" {missing}; then cat "{work}/404-${{name}}_${{version}}" >&2; exit 100; fi
cp "{work}/pool/${{name}}_${{version}}_arm64.deb" .
""")
    (tools / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")

    def query(self, *args):
        if args[0] == "pkgnames":
            return "\n".join(sorted({n for n, _, _ in SERIES})) + "\nlinux-image-arm64\n"
        if args[0] == "madison":
            return "".join(f"{n} | {v} | {MIRRORS[a]} {a}/main arm64 Packages\n"
                           for n, v, a in SERIES if n in args[1:])
        if args[0] == "show":
            out = []
            for pin in args[1:]:
                name, version = pin.split("=")
                data = debs[name, version].read_bytes()
                out.append(f"Package: {name}\nVersion: {version}\n"
                           f"SHA256: {hashlib.sha256(data).hexdigest()}\nSize: {len(data)}\n")
            return "\n".join(out)
        raise AssertionError(f"unexpected apt-cache {args}")
    monkeypatch.setattr(apt_module.Apt, "query", query)
    monkeypatch.setattr(apt_module.Apt, "ensure_lists", lambda self: None)
    monkeypatch.setattr(kernel_builds, "MISSING", {})

    def missing_versions(*versions: str) -> None:
        missing.write_text("".join(f"{v}\n" for v in versions))
    missing_versions.asked = lambda: (work / "asked").read_text().split()
    return missing_versions


def test_the_newest_build_is_taken_when_the_mirror_has_it(tmp_path, mirror):
    kernel = debian.resolve_kernel("debian:bullseye/5.10", Cache(tmp_path / "cache"), "aarch64")
    assert (kernel.package, kernel.version, kernel.note) == (
        "linux-image-5.10.0-46-arm64-unsigned", "5.10.262-1", "")
    assert kernel.release == "5.10.0-46-arm64" and kernel.path.read_bytes() == b"kernel 5.10.262-1"


def test_a_build_missing_on_the_mirror_falls_back_to_an_older_one_and_says_so(tmp_path, mirror):
    mirror("5.10.262-1")
    cache = Cache(tmp_path / "cache")
    kernel = debian.resolve_kernel("debian:bullseye/5.10", cache, "aarch64")
    assert (kernel.package, kernel.version) == ("linux-image-5.10.0-45-arm64-unsigned", "5.10.259-1")
    assert kernel.release == "5.10.0-45-arm64" and kernel.path.read_bytes() == b"kernel 5.10.259-1"
    assert "linux-image-5.10.0-46-arm64-unsigned 5.10.262-1 (bullseye-security)" in kernel.note
    assert "HTTP 404" in kernel.note and "instead of the newest" in kernel.note
    # The run asks the mirror for the missing file once, not for every use of the kernel.
    assert debian.resolve_kernel("debian:bullseye/5.10", cache, "aarch64") == kernel
    assert mirror.asked().count("linux-image-5.10.0-46-arm64-unsigned=5.10.262-1") == 1


def test_the_main_archives_build_when_the_security_archive_has_none(tmp_path, mirror):
    mirror("5.10.262-1", "5.10.259-1")
    kernel = debian.resolve_kernel("debian:bullseye/5.10", Cache(tmp_path / "cache"), "aarch64")
    assert (kernel.package, kernel.version) == ("linux-image-5.10.0-32-arm64-unsigned", "5.10.223-1")
    assert "5.10.262-1" in kernel.note and "5.10.259-1" in kernel.note
    assert "rt-arm64" not in kernel.package


def test_no_build_on_the_mirror_is_a_clear_error(tmp_path, mirror):
    mirror("5.10.262-1", "5.10.259-1", "5.10.223-1")
    with pytest.raises(ImageError) as info:
        debian.resolve_kernel("debian:bullseye/5.10", Cache(tmp_path / "cache"), "aarch64")
    err = info.value
    assert err.where == "debian:bullseye/5.10" and not err.transient
    assert "could be downloaded" in err.what and err.what.count("HTTP 404") == 1
    for version in ("5.10.262-1", "5.10.259-1", "5.10.223-1"):
        assert version in err.what
    assert "SEEDCHAIN_DEBIAN_MIRROR" in err.hint


def test_other_download_failures_are_not_taken_for_a_missing_file(tmp_path, mirror, monkeypatch):
    """A mirror that cannot be reached is not a 404: no fallback, the error as before
    (transient, so the run tries again)."""
    tools = tmp_path / "bin"
    (tools / "apt-get").write_text("#!/bin/sh\necho 'E: Failed to fetch http://x/y.deb  "
                                   "Could not resolve host: deb.debian.org' >&2\nexit 100\n")
    with pytest.raises(ImageError) as info:
        debian.resolve_kernel("debian:bullseye/5.10", Cache(tmp_path / "cache"), "aarch64")
    assert not isinstance(info.value, apt_module.NotOnMirror) and info.value.transient
    assert "Could not resolve host" in info.value.what


@pytest.mark.network
def test_bullseye_arm64_5_10_from_the_real_mirror():
    """Whatever the mirror has today: a 5.10 arm64 kernel, and a note exactly when it
    is not the newest build the index lists."""
    cache = Cache()
    kernel = debian.resolve_kernel("debian:bullseye/5.10", cache, "aarch64")
    assert kernel.release.startswith("5.10.0-") and kernel.release.endswith("-arm64")
    apt = debian.Apt("bullseye", cache, "arm64")
    newest = kernel_builds.builds(apt, debian.parse_kernel_spec("debian:bullseye/5.10"), "aarch64")[0]
    assert bool(kernel.note) == ((kernel.package, kernel.version) != newest[:2])
