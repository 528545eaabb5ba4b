# SPDX-License-Identifier: GPL-2.0-only
"""The newc writer: archives the real cpio(1) unpacks to the same tree, reproducibly."""

import hashlib
import io
import os
import stat
import subprocess

import pytest

from harness.images import cpio


def _archive(entries) -> bytes:
    out = io.BytesIO()
    cpio.write(out, entries)
    return out.getvalue()


def _sample(tmp_path):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    (src / "bin" / "tool").chmod(0o755)
    (src / "odd").write_bytes(b"abc")       # sizes that need padding
    os.symlink("tool", src / "bin" / "link")
    return src


def test_unpacks_with_cpio_to_the_same_tree(tmp_path):
    src = _sample(tmp_path)
    data = _archive(cpio.tree(src) + [cpio.file("conf", data=b"LAYER=1\n"), cpio.directory("dev")])
    dest = tmp_path / "dest"
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=data, cwd=dest, check=True)
    assert (dest / "bin" / "tool").read_bytes() == (src / "bin" / "tool").read_bytes()
    assert stat.S_IMODE((dest / "bin" / "tool").stat().st_mode) == 0o755
    assert os.readlink(dest / "bin" / "link") == "tool"
    assert (dest / "odd").read_bytes() == b"abc"
    assert (dest / "conf").read_bytes() == b"LAYER=1\n"
    assert (dest / "dev").is_dir()


def test_device_node_and_trailer(tmp_path):
    data = _archive([cpio.chardev("dev/console", 5, 1)])
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=data, capture_output=True, check=True).stdout.decode()
    assert listing.startswith("crw-------")
    assert "5,   1" in listing or "5, 1" in listing
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")
    assert len(data) % 4 == 0


def test_reproducible(tmp_path):
    src = _sample(tmp_path)
    first = _archive(cpio.tree(src))
    os.utime(src / "odd", (0, 0))           # mtimes must not leak into the archive
    second = _archive(cpio.tree(src))
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_duplicate_entry_is_refused():
    with pytest.raises(ValueError, match="duplicate"):
        _archive([cpio.directory("a"), cpio.directory("a")])
