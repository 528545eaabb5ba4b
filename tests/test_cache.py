# SPDX-License-Identifier: GPL-2.0-only
"""The content-addressed cache: hits, locking across processes, broken entries, errors."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from harness.images.cache import MANIFEST, Cache, default_root, key_hash
from harness.errors import ImageError


def write_files(**files: str):
    """A builder that writes these files (names with '__' become subfolders)."""
    def builder(d: Path) -> None:
        for name, text in files.items():
            path = d / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return builder


def leftovers(kind_dir: Path) -> list[str]:
    """Everything in a kind folder but entries and their lock files."""
    return [p.name for p in kind_dir.iterdir() if p.name.startswith(".")]


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SEEDCHAIN_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "a"
    monkeypatch.delenv("SEEDCHAIN_CACHE")
    assert default_root() == tmp_path / "xdg" / "seedchain"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "seedchain"
    assert Cache().root == default_root()


def test_key_hash():
    assert key_hash("abc") == key_hash(["abc"]) == key_hash([b"abc"])
    assert len(key_hash("abc")) == 24
    # Parts are length-prefixed: moving a boundary changes the key.
    assert key_hash(["ab", "c"]) != key_hash(["a", "bc"])


def test_build_then_hit(tmp_path):
    cache = Cache(tmp_path)
    calls = []

    def builder(d: Path) -> None:
        calls.append(d)
        write_files(a="hello", sub__b="world")(d)

    entry = cache.build("thing", ["x", b"y"], builder)
    assert entry == tmp_path / "thing" / key_hash(["x", "y"])
    assert (entry / "a").read_text() == "hello"
    assert (entry / "sub/b").read_text() == "world"
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["key"] == ["x", "y"]
    assert manifest["files"]["sub/b"][0] == 5
    assert len(manifest["files"]["a"][1]) == 64  # sha256
    assert cache.verify(entry) and cache.verify(entry, full=True)

    assert cache.build("thing", ["x", "y"], builder) == entry
    assert len(calls) == 1, "a hit must not call the builder"
    assert leftovers(tmp_path / "thing") == []
    # Another key or kind is another entry.
    assert cache.build("thing", ["x", "z"], builder) != entry
    assert cache.build("other", ["x", "y"], builder).parent.name == "other"


def test_hit_is_fast(tmp_path):
    cache = Cache(tmp_path)
    big = "x" * (8 << 20)  # hashing these on every hit would be slow
    for i in range(4):
        cache.build("k", str(i), write_files(big=big, **{f"f{j}": "y" for j in range(50)}))
    start = time.perf_counter()
    for i in range(4):
        cache.build("k", str(i), lambda d: pytest.fail("rebuilt on a hit"))
    assert time.perf_counter() - start < 0.05


def _slow_builder(log: str, d: Path) -> None:
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    (d / "out").write_text("built once")


def _build_in_child(root: str, log: str, queue) -> None:
    entry = Cache(Path(root)).build("shared", "same-key",
                                    lambda d: _slow_builder(log, d))
    queue.put((str(entry), (entry / "out").read_text()))


def test_concurrent_builders_build_once(tmp_path):
    log = tmp_path / "builds.log"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path / "c"), str(log), queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(log.read_text().splitlines()) == 1, "only one process may build"
    assert len({r[0] for r in results}) == 1
    assert {r[1] for r in results} == {"built once"}
    assert leftovers(tmp_path / "c" / "shared") == []


def test_truncated_entry_is_rebuilt(tmp_path):
    cache = Cache(tmp_path)
    calls = []

    def builder(d: Path) -> None:
        calls.append(1)
        (d / "data").write_bytes(b"z" * 1000)

    entry = cache.build("k", "key", builder)
    with open(entry / "data", "r+b") as f:  # as if a copy was cut short
        f.truncate(10)
    assert not cache.verify(entry)
    assert cache.build("k", "key", builder) == entry
    assert len(calls) == 2
    assert (entry / "data").stat().st_size == 1000


def test_entry_without_manifest_is_rebuilt(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.build("k", "key", write_files(a="1"))
    (entry / MANIFEST).unlink()  # e.g. copied in by hand, or an old layout
    (entry / "stray").write_text("junk")
    assert cache.build("k", "key", write_files(a="2")) == entry
    assert (entry / "a").read_text() == "2"
    assert not (entry / "stray").exists()


def test_full_verify_checks_hashes(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.build("k", "key", write_files(a="abcd"))
    (entry / "a").write_text("abce")  # same size, other content
    assert cache.verify(entry)
    assert not cache.verify(entry, full=True)


def test_interrupted_build_leftovers_are_cleaned(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.path("k", "key")
    entry.parent.mkdir(parents=True)
    stale = entry.parent / f".{entry.name}.tmp-killed"  # a builder killed mid-way
    stale.mkdir()
    (stale / "half").write_text("...")
    assert cache.build("k", "key", write_files(a="1")) == entry
    assert not stale.exists()


def test_builder_exception_leaves_nothing(tmp_path):
    cache = Cache(tmp_path)

    def builder(d: Path) -> None:
        (d / "partial").write_text("half done")
        raise ValueError("builder broke")

    with pytest.raises(ValueError, match="builder broke"):
        cache.build("k", "key", builder)
    assert not cache.path("k", "key").exists()
    assert leftovers(tmp_path / "k") == []
    # A later build works normally.
    assert cache.verify(cache.build("k", "key", write_files(a="ok")))


def test_builder_oserror_about_other_files_passes_through(tmp_path):
    cache = Cache(tmp_path)

    def builder(d: Path) -> None:
        (tmp_path / "no-such-input").read_text()

    with pytest.raises(FileNotFoundError):
        cache.build("k", "key", builder)

    def denied(d: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else")

    with pytest.raises(PermissionError):
        cache.build("k", "key", denied)
    assert leftovers(tmp_path / "k") == []


def test_full_disk_gives_image_error(tmp_path):
    cache = Cache(tmp_path)

    def builder(d: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ImageError) as info:
        cache.build("k", "key", builder)
    assert "SEEDCHAIN_CACHE" in info.value.hint
    assert str(tmp_path / "k") in info.value.what
    assert leftovers(tmp_path / "k") == []


def _build_unprivileged(root: str, queue) -> None:
    # root ignores file modes: drop to nobody, like a user whose cache is not writable.
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    try:
        Cache(Path(root)).build("k", "key", write_files(a="1"))
        queue.put("built")
    except ImageError as err:
        queue.put(("ImageError", err.what, err.hint))
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        queue.put(repr(err))


def test_read_only_cache_dir_gives_image_error():
    # Not tmp_path: its parents are private to root, and the child runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="seedchain-ro-"))
    try:
        base.chmod(0o755)
        ro = base / "ro"
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_build_unprivileged, args=(str(ro / "cache"), queue))
        proc.start()
        result = queue.get(timeout=30)
        proc.join(timeout=30)
        assert result[0] == "ImageError", result
        _, what, hint = result
        assert str(ro / "cache") in what
        assert "SEEDCHAIN_CACHE" in hint and "writable" in hint
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_entries_are_readable_by_others(tmp_path):
    entry = Cache(tmp_path).build("k", "key", write_files(a="1"))
    assert entry.stat().st_mode & 0o777 == 0o755
