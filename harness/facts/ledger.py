# SPDX-License-Identifier: GPL-2.0-only
"""The ledger: SHA-256 digests of the seeds each scenario's layers were handed, run
after run on this machine, so a seed handed over again is seen (never the bytes).

One JSON file per scenario under CACHE/ledger/, changed under a lock and replaced
atomically, so parallel workers and interrupted runs leave it whole. The digests of
a run are entered after it was judged; `annotate` marks, before the checks, every
caught seed that equals another of the run or one in the ledger (its `same_as`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import files
from harness.errors import SeedchainError
from harness.facts.layer import LayerFacts
from harness.progress import say
from harness.private import FILE_MODE, make_folder, open_file

FOLDER = "ledger"
KEEP_RUNS = 1000            # per scenario; the oldest go first
FORMAT = 1
MAX_BYTES = 64 << 20        # 1000 runs of 16 layers take about 2 MiB


def folder(cache_root: Path) -> Path:
    return Path(cache_root) / FOLDER


def _file(cache_root: Path, scenario: str) -> Path:
    safe = re.sub(r"[^a-z0-9-]", "_", scenario)
    return folder(cache_root) / f"{safe}.json"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    make_folder(path.parent)
    with os.fdopen(open_file(path.with_suffix(".lock"), append=True), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Damaged(ValueError):
    """A ledger file that is not one seedchain wrote: why, and the runs still readable."""

    def __init__(self, why: str, kept: list[dict[str, Any]]):
        super().__init__(why)
        self.kept = kept


def _valid_run(run: object) -> bool:
    return (isinstance(run, dict) and isinstance(run.get("when", ""), str) and isinstance(run.get("id", ""), str)
            and isinstance(run.get("layers"), dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in run["layers"].items())
            and isinstance(run.get("seed_file") or [], list)
            and all(isinstance(d, str) for d in run.get("seed_file") or []))


def _parse(path: Path) -> list[dict[str, Any]]:
    """The runs in a ledger file ([] when there is none); Damaged when it cannot be read
    whole (not JSON, nested deeper than a ledger, entries of the wrong shape)."""
    try:
        with files.open_regular(path, what="ledger", max_bytes=MAX_BYTES) as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return []
    except SeedchainError as exc:
        if not path.exists():
            return []
        raise Damaged(exc.what, []) from None
    except RecursionError:
        raise Damaged("nested too deeply to be a ledger", []) from None
    except (OSError, ValueError) as exc:
        raise Damaged(f"not a ledger ({exc})", []) from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list):
        raise Damaged("no list of runs in it", [])
    kept = [run for run in runs if _valid_run(run)]
    if len(kept) != len(runs):
        raise Damaged(f"{len(runs) - len(kept)} of its {len(runs)} runs are not ledger entries", kept)
    return kept


def _read(path: Path) -> list[dict[str, Any]]:
    """The runs of a ledger (under its lock). A damaged one is never dropped silently: it is
    moved aside to NAME.damaged-TIME.json, said in one line, and its readable runs kept."""
    try:
        return _parse(path)
    except Damaged as exc:
        aside = path.with_name(f"{path.stem}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json")
        try:
            os.replace(path, aside)
        except OSError as err:
            say(f"the ledger {path} is damaged ({exc}) and could not be moved aside ({err.strerror}); "
                "fresh is judged within this run and the runs still readable")
            return exc.kept
        if exc.kept:
            _write(path, path.stem, exc.kept)
        say(f"the ledger {path} was damaged ({exc}); kept as {aside.name}, {len(exc.kept)} readable "
            f"run{'s' * (len(exc.kept) != 1)} carried over")
        return exc.kept


def _write(path: Path, scenario: str, runs: list[dict[str, Any]]) -> None:
    """Replace the ledger file atomically (under its lock)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ledger-")
    os.fchmod(fd, FILE_MODE)              # private whatever the umask (mkstemp's 0600 already)
    with os.fdopen(fd, "w") as out:
        json.dump({"format": FORMAT, "scenario": scenario, "runs": runs}, out, indent=1)
        out.write("\n")
    os.replace(tmp, path)


def runs(cache_root: Path, scenario: str) -> list[dict[str, Any]]:
    """The scenario's recorded runs, oldest first: {"when", "id", "layers": {index: sha256}},
    and "seed_file": [sha256 before, after] for a boot through a boot loader's seed file."""
    path = _file(cache_root, scenario)
    with _locked(path):
        return _read(path)


def scenarios(cache_root: Path) -> list[str]:
    return sorted(p.stem for p in folder(cache_root).glob("*.json") if ".damaged-" not in p.name)


def annotate(facts: list[LayerFacts], earlier: list[dict[str, Any]]) -> None:
    """Fill each caught seed's `same_as`: the other layers of this run and the earlier
    runs' layers that were handed the same bytes."""
    caught = [(f.index, f.seed_in_flight) for f in facts
              if f.seed_in_flight is not None and f.seed_in_flight.caught]
    for index, seed in caught:
        same = [f"layer {other} of this run" for other, s in caught
                if other != index and s.sha256 == seed.sha256]
        for run in earlier:
            same += [f"layer {layer} of the run of {run.get('when', '?')}"
                     for layer, digest in sorted(run["layers"].items()) if digest == seed.sha256]
        seed.same_as = same
    seed_file = facts[0].seed_file if facts else None
    if seed_file is not None:
        ours = {d for d in (seed_file.before_sha256, seed_file.after_sha256) if d}
        seed_file.same_as = [f"the seed file of the run of {run.get('when', '?')}" for run in earlier
                             if ours & set(run.get("seed_file") or [])]


def _seed_file_digests(facts: list[LayerFacts]) -> list[str]:
    """The digests of the boot loader's seed file before and after the boot (layer 1)."""
    seed_file = facts[0].seed_file if facts else None
    if seed_file is None:
        return []
    return [d for d in (seed_file.before_sha256, seed_file.after_sha256) if d]


def record(cache_root: Path, scenario: str, run_id: str, facts: list[LayerFacts]) -> dict[str, Any]:
    """Enter a run's caught seeds and its boot loader's seed file digests; returns the
    entry (nothing is written when there is neither)."""
    entry = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": run_id,
             "layers": {str(f.index): f.seed_in_flight.sha256 for f in facts
                        if f.seed_in_flight is not None and f.seed_in_flight.caught}}
    if seed_files := _seed_file_digests(facts):
        entry["seed_file"] = seed_files
    if not entry["layers"] and not seed_files:
        return entry
    path = _file(cache_root, scenario)
    with _locked(path):
        _write(path, scenario, (_read(path) + [entry])[-KEEP_RUNS:])
    return entry


def clear(cache_root: Path, scenario: str | None = None) -> list[str]:
    """Forget one scenario's digests, or all; returns the scenarios cleared."""
    names = [scenario] if scenario else scenarios(cache_root)
    cleared = []
    for name in names:
        path = _file(cache_root, name)
        with _locked(path):
            if path.exists():
                path.unlink()
                cleared.append(name)
        path.with_suffix(".lock").unlink(missing_ok=True)
    return cleared


def lines(root: Path, scenario: str | None = None, newest: int = 20) -> list[str]:
    """`seedchain ledger show`: per scenario its last runs, oldest first, each with the
    digest of every layer's seed (and a boot loader's seed file before -> after the boot)."""
    names = [scenario] if scenario else scenarios(root)
    if not names:
        return [f"the ledger is empty ({folder(root)})"]
    out = []
    for name in names:
        path = _file(root, name)
        try:
            entries = _parse(path)      # read only: a damaged ledger is moved aside by the next run
        except Damaged as exc:
            out.append(f"{name}: the ledger {path} is damaged ({exc}); the next run keeps it aside and "
                       f"starts from its {len(exc.kept)} readable run{'s' * (len(exc.kept) != 1)}")
            continue
        out.append(f"{name}: {len(entries)} run{'s' * (len(entries) != 1)}")
        for entry in entries[-newest:]:
            layers = "  ".join(f"{k}:{v[:16]}" for k, v in sorted(entry["layers"].items()))
            seed_file = " -> ".join(d[:16] for d in entry.get("seed_file") or [])
            out.append(f"  {entry.get('when', '?')}  {layers}" + (f"  seed file {seed_file}" if seed_file else ""))
        if len(entries) > newest:
            out.append(f"  ({len(entries) - newest} older runs not shown)")
    return out
