# SPDX-License-Identifier: GPL-2.0-only
"""A scenario's run folder (harness/runfolder.py): seedchain empties only a folder it made
itself (its mark inside), refuses anything else at ARTIFACTS/<scenario> without touching
it, and lets one run at a time use it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import jobs, pipeline
from harness.errors import ImageError, SeedchainError
from harness.scenario.load import load_scenario
from runs import reaped, until_qemu_started

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
MARK, LOCK = ".seedchain-run", ".seedchain-lock"


@pytest.fixture
def no_images(monkeypatch):
    """Runs stop where the images would be built; the calls are counted."""
    calls = []

    def build_chain(scenario, cache):
        calls.append(scenario.name)
        raise ImageError("stopped here by the test")
    monkeypatch.setattr(pipeline, "build_chain", build_chain)
    return calls


def _run(artifacts: Path, tmp_path: Path, name: str = "qemu-only"):
    from harness.images.cache import Cache
    return pipeline.run(load_scenario(SCENARIOS / f"{name}.yaml"), cache=Cache(tmp_path / "cache"),
                        artifacts=artifacts)


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what", ["a folder of the user's", "a symlink to one", "a file"])
def test_what_seedchain_did_not_make_is_refused_and_kept(what, tmp_path, no_images):
    """`--artifacts ~` with a scenario named like a folder there; a symlink planted in a
    shared folder; a file of that name."""
    home, victim = tmp_path / "home", tmp_path / "victim"
    (victim / "thesis").mkdir(parents=True)
    (victim / "thesis" / "chapter1.tex").write_text("years of work")
    home.mkdir()
    target = home / "qemu-only"
    if what == "a folder of the user's":
        victim.rename(target)
        victim = target
    elif what == "a symlink to one":
        target.symlink_to(victim)
    else:
        target.write_text("notes")
    before = _tree(victim) if what != "a file" else {"": target.read_text()}
    with pytest.raises(SeedchainError) as refused:
        _run(home, tmp_path)
    assert not isinstance(refused.value, ImageError)
    assert str(target) in refused.value.what and "--artifacts" in refused.value.hint
    assert (_tree(victim) if what != "a file" else {"": target.read_text()}) == before
    assert no_images == []


def test_the_root_folder_is_no_artifacts_folder(tmp_path, no_images):
    made = not Path("/qemu-only").exists()
    try:
        with pytest.raises(SeedchainError) as refused:
            _run(Path("/"), tmp_path)
        assert not isinstance(refused.value, ImageError)
        assert not made or not Path("/qemu-only").exists()
    finally:
        if made and Path("/qemu-only").is_dir():
            os.system("rm -rf /qemu-only")      # what the old code made there


def test_a_folder_seedchain_made_is_emptied_for_the_next_run(tmp_path, no_images):
    artifacts = tmp_path / "out"
    with pytest.raises(ImageError):
        _run(artifacts, tmp_path)
    outdir = artifacts / "qemu-only"
    assert (outdir / MARK).is_file() and (outdir / LOCK).is_file()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    (outdir / "console.log").write_text("the last run's")
    (outdir / "boot-1").mkdir()
    (outdir / "boot-1" / "qemu.log").write_text("the last run's")
    (outdir / "link").symlink_to(outside)
    with pytest.raises(ImageError):
        _run(artifacts, tmp_path)
    # What the run that failed in set-up left: its error result (pipeline.record_error).
    assert sorted(p.name for p in outdir.iterdir()) == [LOCK, MARK, "result.json", "scenario.yaml"]
    assert (outdir / "result.json").read_text().count('"error": "could not run: ') == 1
    assert (outside / "keep").read_text() == "kept"


def test_cli_refuses_a_folder_it_did_not_make_with_125(tmp_path):
    (tmp_path / "qemu-only").mkdir()
    (tmp_path / "qemu-only" / "mine.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(SCENARIOS / "qemu-only.yaml"),
                           "--artifacts", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 125, proc.stdout + proc.stderr
    assert f"{tmp_path / 'qemu-only'}" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "qemu-only" / "mine.txt").read_text() == "mine"


def test_a_path_too_long_for_the_sockets_is_refused_before_images_are_built(tmp_path, no_images):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with pytest.raises(SeedchainError, match="too long"):
        _run(deep, tmp_path)
    assert no_images == []


def _hold(outdir: Path) -> subprocess.Popen[str]:
    """Another process that holds the run folder's lock as a run does, until killed."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom harness import runfolder\n"
            f"with runfolder.locked(Path({str(outdir)!r})):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
    assert holder.stdout is not None                  # stdout=PIPE
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_into_the_same_folder_is_refused_naming_the_first(tmp_path, no_images):
    artifacts = tmp_path / "out"
    holder = _hold(artifacts / "qemu-only")
    try:
        with pytest.raises(SeedchainError, match=f"process {holder.pid}") as refused:
            _run(artifacts, tmp_path)
        assert not isinstance(refused.value, ImageError) and no_images == []
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(ImageError):       # the folder is free again once the first run ended
        _run(artifacts, tmp_path)


def test_parallel_jobs_of_different_scenarios_share_an_artifacts_folder(tmp_path, no_images):
    from harness.images.cache import Cache
    scenarios = [load_scenario(SCENARIOS / f"{name}.yaml") for name in ("qemu-only", "kexec-file-2")]
    outcomes = jobs.run_all(scenarios, jobs=2, cache=Cache(tmp_path / "cache"), artifacts=tmp_path / "out",
                            progress=lambda scenario, message: None, done=lambda place, outcome: None)
    assert [str(o.error).splitlines()[0] for o in outcomes] == ["stopped here by the test"] * 2


@pytest.mark.vm
def test_two_real_runs_of_one_scenario_into_one_folder(seedchain, tmp_path):
    """The second run is refused at once (125) while the first goes on and passes."""
    text = (SCENARIOS / "qemu-only.yaml").read_text().replace("name: qemu-only", "name: locked-run")
    scenario = tmp_path / "locked-run.yaml"
    scenario.write_text(text)
    command = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--artifacts", str(tmp_path / "out")]
    env = {**os.environ, "SEEDCHAIN_CACHE": str(seedchain.cache.root)}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    with reaped(first, seedchain.cache.root, "locked-run"):
        until_qemu_started(first)
        started = time.monotonic()
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                                stdin=subprocess.DEVNULL)
        second_seconds = time.monotonic() - started
        rest = first.stdout.read()
        assert first.wait(timeout=300) == 0, rest
    assert second.returncode == 125, second.stdout + second.stderr
    assert f"process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert second_seconds < 30
    assert "locked-run: PASS" in rest
    assert (tmp_path / "out" / "locked-run" / "result.json").is_file()


def test_a_folder_another_run_is_making_this_moment_is_waited_for(tmp_path, monkeypatch):
    """Two runs that start together: the other makes the folder between this one's look and
    its mkdir, and writes its mark a moment later."""
    import threading

    from harness import runfolder
    outdir = tmp_path / "qemu-only"
    real_mkdir = os.mkdir
    marking = threading.Timer(0.3, lambda: (outdir / MARK).write_text("made by seedchain"))

    def mkdir(path, mode=0o777):
        if Path(path) == outdir:               # the other run was first
            real_mkdir(path, 0o700)
            marking.start()
            raise FileExistsError(path)
        return real_mkdir(path, mode)
    monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        assert runfolder.claim(outdir) == outdir
    finally:
        marking.join()
