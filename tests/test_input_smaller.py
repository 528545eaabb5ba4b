# SPDX-License-Identifier: GPL-2.0-only
"""Smaller input defects: one bad file in a folder neither hides the others from `list` nor
stops `run DIR --tag` when the tag leaves it out; `check` says what `run` says of a kernel
series a suite does not have (offline, from the cached package lists); an artifacts path
too long for QEMU's sockets is refused before any image is built."""

from __future__ import annotations

from pathlib import Path

from harness.images import debian
from harness.images.cache import Cache
from test_cli import seedchain
from test_kconfig import kernel

GOOD = "name: good\ndescription: fine\ntags: [t]\nlayers:\n  - kernel: debian:bookworm/6.1\n"
BAD_TAGGED_OTHER = "name: bad\ndescription: d\ntags: [other]\nlayers:\n  - kernel: 5\n    loader: x\n"
BROKEN = "name: [unclosed\n"


def folder(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "scenarios"
    d.mkdir()
    for name, body in files.items():
        (d / f"{name}.yaml").write_text(body)
    return d


def test_list_names_a_bad_file_and_lists_the_others(tmp_path):
    d = folder(tmp_path, good=GOOD, broken=BROKEN)
    proc = seedchain("list", d)
    assert proc.returncode == 2
    assert proc.stdout.startswith("good ") and "broken.yaml" in proc.stderr


def test_run_dir_tag_passes_over_a_bad_file_the_tag_leaves_out(tmp_path):
    d = folder(tmp_path, good=GOOD, bad=BAD_TAGGED_OTHER)
    env = {"SEEDCHAIN_CACHE": str(tmp_path / "cache"), "SEEDCHAIN_OFFLINE": "1"}
    proc = seedchain("run", d, "--tag", "nothing", "--artifacts", tmp_path / "out", env=env)
    assert proc.returncode == 125 and "no scenario to run" in proc.stderr, proc.stderr
    proc = seedchain("run", d, "--tag", "t", "--artifacts", tmp_path / "out", env=env)
    assert proc.returncode == 125 and "bad.yaml" not in proc.stderr
    assert "good" in proc.stdout + proc.stderr           # it got as far as the good scenario
    # Without --tag every file is to run: the bad one is an error.
    proc = seedchain("run", d, "--artifacts", tmp_path / "out", env=env)
    assert proc.returncode == 125 and "bad.yaml" in proc.stderr


def test_check_refuses_a_series_the_suite_does_not_have(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: d\nlayers:\n  - kernel: debian:bookworm/9.9\n")
    # No package lists cached: a note, nothing fetched, nothing made.
    empty = tmp_path / "cache"
    proc = seedchain("check", path, env={"SEEDCHAIN_CACHE": str(empty)})
    assert proc.returncode == 0 and "whether bookworm has series 9.9 is checked when the scenario runs" in proc.stdout
    assert not empty.exists()
    # Lists cached (fetched here if the shared cache has none): what run says, offline.
    debian.Apt("bookworm", Cache()).ensure_lists()
    proc = seedchain("check", path, env={"SEEDCHAIN_OFFLINE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"seedchain: error: {path}:4: layer 1: no Debian amd64 kernel of series 9.9 in bookworm")


def test_an_artifacts_path_too_long_for_a_socket_is_refused_before_images(tmp_path):
    bz = kernel(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndescription: d\nlayers:\n  - kernel: {bz}\n")
    cache = tmp_path / "cache"
    artifacts = tmp_path / ("a" * 100)
    proc = seedchain("run", path, "--artifacts", artifacts,
                     env={"SEEDCHAIN_CACHE": str(cache), "SEEDCHAIN_OFFLINE": "1"})
    assert proc.returncode == 125
    assert "too long for QEMU's sockets" in proc.stderr, proc.stderr
    assert not any((cache / name).exists() for name in ("apt", "deb", "initrd", "busybox-applets", "chain-disk"))
