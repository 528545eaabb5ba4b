# SPDX-License-Identifier: GPL-2.0-only
"""What a killed seedchain leaves behind, and that the next run is not disturbed by it:
temporary build folders in the cache (swept once their builder is gone, told from a live
one by its lock), and in a scenario's artifacts folder the sockets and the guest-RAM file."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import pipeline
from harness import runfolder
from harness.boot.chain import make_ram_file, ram_file, remove_ram
from harness.errors import ImageError
from harness.facts import ledger
from harness.images.cache import Cache
from harness.scenario.load import load_scenario
from runs import until_qemu_started

ROOT = Path(__file__).resolve().parent.parent


def in_child(code: str) -> subprocess.Popen:
    """Python code in a process of its own, which may kill itself or be killed."""
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.DEVNULL)


def temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*") if p.is_dir() and ".tmp-" in p.name or
                  p.name.startswith(".userland-"))


BUILD = """
import os, signal, time
from pathlib import Path
from harness.images.cache import Cache
def builder(d):
    Path(d, "half-written").write_text("x")
    Path({marker!r}).write_text("building")
    {then}
Cache(Path({root!r})).build("kernel", ["some", "key"], builder)
"""


def test_a_killed_builders_folder_is_swept_a_live_ones_is_kept(tmp_path):
    root, marker = tmp_path / "cache", tmp_path / "marker"
    killed = in_child(BUILD.format(root=str(root), marker=str(marker), then="os.kill(os.getpid(), signal.SIGKILL)"))
    assert killed.wait(60) == -signal.SIGKILL
    (left,) = temporaries(root)
    marker.unlink()
    live = in_child(BUILD.format(root=str(root / "other"), marker=str(marker), then="time.sleep(60)"))
    try:
        while not marker.exists():
            time.sleep(0.05)
        (building,) = temporaries(root / "other")
        assert Cache(root).sweep() == [left]
        assert not left.exists() and building.is_dir()
        assert Cache(root / "other").sweep() == [] and building.is_dir()
    finally:
        live.kill()
        live.wait()
    assert Cache(root / "other").sweep() == [building] and temporaries(root) == []


USERLAND = """
import os, signal
from pathlib import Path
from harness.images import debian
from harness.images.cache import Cache
class Apt:                        # dies where the packages would be resolved, the work folder made
    def closure(self, names):
        os.kill(os.getpid(), signal.SIGKILL)
cache = Cache(Path({root!r}))
cache.build("userland", ["k"], lambda d: debian._build_userland(Apt(), cache, d))
"""


def test_a_killed_userland_build_leaves_nothing_the_sweep_does_not_take(tmp_path):
    root = tmp_path / "cache"
    assert in_child(USERLAND.format(root=str(root))).wait(60) == -signal.SIGKILL
    assert [p.name for p in root.iterdir() if p.name.startswith(".userland-")] == []
    assert len(Cache(root).sweep()) == 1 and temporaries(root) == []


def test_old_userland_work_folders_go_once_no_userland_build_runs(tmp_path):
    root = tmp_path / "cache"
    old = root / ".userland-abc123"
    (old / "stage").mkdir(parents=True)
    (root / "userland").mkdir()
    with open(root / "userland" / "0123.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)            # a userland build under way
        assert Cache(root).sweep() == [] and old.is_dir()
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert Cache(root).sweep() == [old] and not old.exists()


def test_sweeping_a_cache_that_is_not_there_or_not_writable_is_quiet(tmp_path):
    assert Cache(tmp_path / "none").sweep() == []
    assert not (tmp_path / "none").exists()


def test_a_run_sweeps_the_cache_first(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    stale = root / "initrd" / ".0123456789abcdef01234567.tmp-xyz"
    stale.mkdir(parents=True)

    def no_images(scenario, cache):
        raise ImageError("stop here")
    monkeypatch.setattr(pipeline, "build_chain", no_images)
    with pytest.raises(ImageError):
        pipeline.run(load_scenario(ROOT / "scenarios" / "qemu-only.yaml"), cache=Cache(root),
                     artifacts=tmp_path / "out")
    assert not stale.exists()


def test_a_killed_runs_sockets_and_ram_file_do_not_stay_for_the_next_run(tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "qemu-only.yaml")
    artifacts = tmp_path / "out"
    outdir = artifacts / scenario.slug
    runfolder.claim(outdir)                            # the killed run made the folder
    (outdir / "boot-1").mkdir()
    for path in (outdir / "qmp.sock", outdir / "agent.sock", outdir / "boot-1" / "qmp.sock"):
        with socket.socket(socket.AF_UNIX) as s:       # bound by the killed run, nobody listening
            s.bind(str(path))
    rams = [make_ram_file(outdir), make_ram_file(outdir / "boot-1")]
    for ram in rams:
        ram.write_bytes(b"old guest RAM, a smaller size than the next run's")
    try:
        assert pipeline.prepare_artifacts(scenario, artifacts) == outdir
        assert sorted(p.name for p in outdir.iterdir() if not p.name.startswith(".seedchain-")) == ["scenario.yaml"]
        assert [ram.parent for ram in rams if ram.parent.exists()] == []
    finally:
        for folder in (outdir, outdir / "boot-1"):
            remove_ram(folder)


def _live_processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z" and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


@pytest.mark.vm
def test_a_run_killed_mid_boot_does_not_disturb_the_next_run_of_that_scenario(seedchain, tmp_path):
    """SIGKILL while QEMU boots the guest (its RAM searched: a RAM file on tmpfs), then the
    same scenario again: its QEMU died with the killed run, the second run passes, and it
    leaves neither the killed run's sockets nor a RAM file behind."""
    text = (ROOT / "scenarios" / "qemu-only.yaml").read_text().replace("name: qemu-only", "name: killed-run")
    scenario = tmp_path / "killed-run.yaml"
    scenario.write_text(text + "capture: {ram_search: true}\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--artifacts", str(out)]
    env = {**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root)}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    try:
        until_qemu_started(first)
    finally:
        first.kill()
        first.wait()
    outdir = out / "killed-run"
    assert (outdir / "qmp.sock").is_socket() and (outdir / "agent.sock").is_socket()   # what it leaves
    deadline = time.monotonic() + 20
    while _live_processes_naming(str(outdir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _live_processes_naming(str(outdir)) == []        # QEMU died with it
    try:
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                                stdin=subprocess.DEVNULL)
    finally:
        ledger.clear(seedchain.cache.root, "killed-run")      # the shared cache's ledger keeps no trace
    assert second.returncode == 0, second.stdout + second.stderr
    assert "killed-run: PASS" in second.stdout
    assert sorted(p.name for p in outdir.iterdir() if p.is_socket()) == []
    assert not ram_file(outdir).exists() and not ram_file(outdir).parent.exists()
