# SPDX-License-Identifier: GPL-2.0-only
"""`seedchain run` as a `git bisect run` command: 0 good, 1 bad, 125 cannot test, 130 interrupted.

The unit tests map outcomes to exit statuses over results judged from recorded runs,
and bisect a throw-away history with the real git and the real command line on a
replayed pipeline; the vm test bisects one of 3 good and 3 bad commits, booting the
chain at every step.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, pipeline
from harness.checks.verdict import judge
from harness.errors import ImageError, QemuError
from recorded import facts

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
GOOD, BAD = "debian:bookworm/6.1", "debian:bullseye/5.10"
CHAIN = """\
name: {name}
description: >
  Commit {number}: QEMU boots 6.1; kexec_file_load seeds a {child} child, which must
  zero its seed and be credited by it alone.
qemu: {{machine: q35, cpu: max}}
layers:
  - kernel: debian:bookworm/6.1
    expect: {{seed: absent, passed_on: true}}
  - loader: kexec_file_load
    kernel: {child}
    cmdline: random.trust_cpu=off
    expect: {{seed: consumed}}
"""
# What a child kernel did in the recorded runs: a 6.1 child consumed its seed, a 5.10 one
# (before SETUP_RNG_SEED support) kept it, uncredited.
RECORDED = {GOOD: "kexec-file-2", BAD: "old-child"}


@pytest.fixture
def sigterm_kept():
    """cli.main installs its SIGTERM handler; put pytest's back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def replayed(scenario, **_):
    """pipeline.run without QEMU: the scenario judged over the recorded run of its child kernel."""
    child = scenario.layers[1].kernel
    if child not in RECORDED:
        raise ImageError(f"no package for {child} could be downloaded", where="layer 2",
                         hint="check the mirror")
    return judge(scenario, facts(RECORDED[child]))


def write_chain(folder: Path, name: str, child: str, number: int = 1) -> Path:
    path = folder / "chain.yaml"
    path.write_text(CHAIN.format(name=name, number=number, child=child))
    return path


# ---------------------------------------------------------------- exit statuses

@pytest.mark.parametrize("child,status", [(GOOD, 0), (BAD, 1), ("debian:trixie/6.12", 125)])
def test_the_verdict_gives_the_status(tmp_path, monkeypatch, capsys, sigterm_kept, child, status):
    monkeypatch.setattr(pipeline, "run", replayed)
    chain = write_chain(tmp_path, "chain", child)
    assert cli.main(["run", str(chain), "--artifacts", str(tmp_path / "out")]) == status
    out, err = capsys.readouterr()
    if status == 125:
        assert err == ("seedchain: error: layer 2: no package for debian:trixie/6.12 could be downloaded\n"
                       "  hint: check the mirror\n")
    else:
        assert out.startswith(f"chain: {'PASS' if status == 0 else 'FAIL'}")


@pytest.mark.parametrize("raised,status,message", [
    (QemuError("qemu-system-x86_64 exited at once", where="qemu.build"), 125,
     "seedchain: error: qemu.build: qemu-system-x86_64 exited at once"),
    (KeyboardInterrupt(), 130, "seedchain: interrupted; QEMU stopped, logs kept"),
    (RuntimeError("a bug"), 125, "seedchain: internal error: seedchain itself failed"),
])
def test_what_stops_a_run_gives_the_status(tmp_path, monkeypatch, capsys, sigterm_kept, raised, status, message):
    def run(scenario, **_):
        raise raised
    monkeypatch.setattr(pipeline, "run", run)
    chain = write_chain(tmp_path, "chain", GOOD)
    assert cli.main(["run", str(chain), "--artifacts", str(tmp_path / "out")]) == status
    err = capsys.readouterr().err
    assert message in err
    assert ("Traceback" in err) == isinstance(raised, RuntimeError)    # only a bug shows one


@pytest.mark.parametrize("children,status", [
    ((GOOD, GOOD), 0), ((GOOD, "debian:trixie/6.12"), 125), ((BAD, "debian:trixie/6.12"), 1), ((GOOD, BAD), 1),
])
def test_of_several_scenarios_the_worst_counts(tmp_path, monkeypatch, capsys, sigterm_kept, children, status):
    # A broken expectation makes the build bad even where another scenario could not be tested.
    monkeypatch.setattr(pipeline, "run", replayed)
    files = []
    for number, child in enumerate(children, start=1):
        (tmp_path / str(number)).mkdir()
        files.append(str(write_chain(tmp_path / str(number), f"chain-{number}", child)))
    assert cli.main(["run", *files, "--artifacts", str(tmp_path / "out")]) == status
    out, err = capsys.readouterr()
    assert out.startswith(f"chain-1: {'FAIL' if children[0] == BAD else 'PASS'}")   # the first ran on
    assert ("chain-2: " in out) != ("seedchain: error: layer 2: no package" in err)
    assert re.search(r"^\d passed, \d failed", out, re.M)


def test_a_bad_scenario_file_is_cannot_test_under_run_and_bad_input_under_check(tmp_path, capsys, sigterm_kept):
    chain = tmp_path / "chain.yaml"
    chain.write_text(CHAIN.format(name="chain", number=1, child=GOOD).replace("loader:", "lodaer:"))
    assert cli.main(["run", str(chain)]) == 125
    assert cli.main(["check", str(chain)]) == 2
    err = capsys.readouterr().err
    assert err.count(f"seedchain: error: {chain}:9: layers[2].lodaer: unknown key") == 2


# ---------------------------------------------------------------- git bisect run

def _git(repo: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **kwargs.pop("env", {})}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kwargs)


def history(repo: Path, name: str, children: list[str]) -> list[str]:
    """A repository whose commits each write chain.yaml with that commit's child kernel."""
    repo.mkdir()
    _git(repo, "init", "-q", check=True)
    commits = []
    for number, child in enumerate(children, start=1):
        write_chain(repo, name, child, number)
        _git(repo, "add", "chain.yaml", check=True)
        _git(repo, "commit", "-q", "-m", f"commit {number}: layer 2 runs {child}", check=True)
        commits.append(_git(repo, "rev-parse", "HEAD", check=True).stdout.strip())
    return commits


def bisect(repo: Path, first: str, command: list[str], env: dict, timeout: float) -> tuple[str, str]:
    """`git bisect run` from the first commit (good) to HEAD (bad): the first bad commit, and the log."""
    _git(repo, "bisect", "start", "HEAD", first, check=True)
    proc = _git(repo, "bisect", "run", *command, env=env, timeout=timeout)
    log = _git(repo, "bisect", "log").stdout
    _git(repo, "bisect", "reset")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{log}"
    found = re.search(r"^([0-9a-f]{40}) is the first bad commit", proc.stdout, re.M)
    assert found, proc.stdout
    return found[1], log


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_git_bisect_run_finds_the_first_bad_commit_and_skips_the_untestable(tmp_path):
    # Commits 1-2 good, 3 bad, 4-6 cannot be tested (a download fails), 7 bad: bisect tries
    # one of 4-6 first, skips it, and names 3.
    children = [GOOD] * 2 + [BAD] + ["debian:trixie/6.12"] * 3 + [BAD]
    commits = history(tmp_path / "repo", "chain", children)
    runner = tmp_path / "replayed_run.py"
    runner.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]\n"
        "from harness import cli, pipeline\n"
        "import test_bisect\n"
        "pipeline.run = test_bisect.replayed\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    first_bad, log = bisect(tmp_path / "repo", commits[0],
                            [sys.executable, str(runner), "run", "chain.yaml", "--artifacts", str(tmp_path / "out")],
                            env={}, timeout=120)
    assert first_bad == commits[2], log
    assert any(f"git bisect skip {c}" in log for c in commits[3:6]), log


@needs_git
@pytest.mark.vm
def test_git_bisect_run_on_real_boots_names_the_commit_that_brought_the_old_child(seedchain, tmp_path):
    """Every bisect step boots the commit's 2-layer chain: good while layer 2 is 6.1, bad
    from the commit that makes it 5.10 (which neither zeroes nor credits its seed)."""
    name = "bisect-chain"
    commits = history(tmp_path / "repo", name, [GOOD] * 3 + [BAD] * 3)
    command = [sys.executable, "-m", "harness.cli", "run", "chain.yaml", "--artifacts", str(tmp_path / "out"),
               "--cache", str(seedchain.cache.root)]
    try:
        first_bad, log = bisect(tmp_path / "repo", commits[0], command,
                                env={"PYTHONPATH": str(ROOT)}, timeout=3600)
    finally:
        subprocess.run([sys.executable, "-m", "harness.cli", "ledger", "clear", name, "--cache",
                        str(seedchain.cache.root)], cwd=ROOT, capture_output=True)
    assert first_bad == commits[3], log
    assert "git bisect skip" not in log, log       # every commit could be tested
