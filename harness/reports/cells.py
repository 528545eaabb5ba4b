# SPDX-License-Identifier: GPL-2.0-only
"""The reports' shared vocabulary and the cells they are made of: reading result.json
files (merge), a layer's seed state, a result as a cell record, counting cells by status.

harness.reports.matrix writes matrix.json from these and harness.reports.render draws
matrix.md and matrix.html; harness.reports.kcidb reads the same results as KCIDB data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from harness import files
from harness.errors import SeedchainError
from harness.matrix.known_gaps import STATUSES, Classification, result_id
from harness.scenario.model import CHECKS

REPORT_FORMAT = 1
ARTIFACT_FILES = ("console.log", "agent.log", "result.json")
RESULT_NAME = "result.json"
MAX_RESULT_BYTES = 64 << 20     # a result.json is tens of KiB
MAX_RESULT_DEPTH = 32           # and nests 6 deep; deeper ones would fail whatever walks them
QEMU_AXIS, KERNEL_AXIS = "qemu", "kernel"

# The seed's state in a layer, as shown by the marks: (css class, label).
STATES = {
    "consumed": "consumed",
    "absent": "absent",
    "not-zeroed": "not zeroed",
    "exposed": "exposed",
    "stale": "not fresh",
    "lingering": "copy lingers",
    "did-not-boot": "did not boot",
    "unknown": "unknown",
}
STATE_MEANING = {
    "consumed": "a seed arrived and was zeroed (sysfs and RAM)",
    "absent": "no seed reached this layer",
    "not-zeroed": "a seed arrived and was left in place",
    "exposed": "a seed arrived and any user can read it in sysfs",
    "stale": "the seed caught in flight was all zero, seen before, or not the one the kernel kept",
    "lingering": "consumed, but a copy of a seed is still in the layer's RAM",
    "did-not-boot": "the layer did not report (panic, hang, load failure)",
    "unknown": "the checks could not tell",
}
STATUS_MEANING = {
    "pass": "every check as expected",
    "known-gap": "failed, but every failure is a known gap",
    "unexpected-pass": "a known gap did not happen: news, check the gap",
    "fail": "a failure no known gap explains",
    "error": "no verdict: the cell could not be set up or run (a download, a QEMU that did not start, the harness)",
}


# --- reading results ---------------------------------------------------------------------

def merge(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The results in result.json files, or in folders of them (searched recursively),
    in the order given; a later result with the same id replaces an earlier one
    (keeping its place). Each result gets "result_file": where it was read. A file
    that cannot be read becomes a result with `error` set, so it shows up as an error."""
    by_id: dict[str, dict] = {}
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(path.rglob(RESULT_NAME))
        elif path.exists():
            found = [path]          # not a regular file (a FIFO): an error cell, never waited on
        else:
            raise SeedchainError("no such file or folder", where=str(path),
                                 hint="give result.json files or folders holding them")
        for file in found:
            result = _read_result(file)
            by_id[result_id(result)] = result
    return list(by_id.values())


def _read_result(file: Path) -> dict:
    try:
        # A FIFO named result.json is refused at once, not waited on; a result is tens of KiB.
        data = json.loads(files.read_bytes(file, MAX_RESULT_BYTES, what="result file").decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("layers", []), list):
            raise ValueError("not a seedchain result (a JSON object with layers)")
        if files.depth(data) > MAX_RESULT_DEPTH:
            raise RecursionError
        if problem := _shape_problem(data):
            raise ValueError(f"not a seedchain result: {problem}")
    except SeedchainError as e:
        return _unreadable(file, e.what)
    except RecursionError:
        return _unreadable(file, "nested too deeply to be a seedchain result")
    except (OSError, ValueError) as e:
        return _unreadable(file, str(e))
    data["result_file"] = str(file)
    return data


# The fields a report reads with their types (None and absent are fine everywhere).
Kinds = dict[str, type | tuple[type, ...]]
_TOP: Kinds = {"id": str, "scenario": str, "description": str, "arch": str, "error": str, "artifacts": str,
               "cell": dict, "cell_values": dict, "qemu": dict, "layers": list}
_LAYER: Kinds = {"outcome": dict, "expect": dict, "seed_file": dict, "fault": (str, dict), "kernel": str,
                 "kernel_version": str, "kernel_spec": str, "loader": str, "kexec_tools": str}


def _shape_problem(data: dict) -> str:
    """What in a result's fields has a type no seedchain writes ('' when nothing)."""
    for key, kind in _TOP.items():
        if data.get(key) is not None and not isinstance(data[key], kind):
            return f"{key} is a {type(data[key]).__name__}"
    for n, layer in enumerate(data.get("layers") or [], start=1):
        if not isinstance(layer, dict):
            return f"layer {n} is a {type(layer).__name__}"
        for key, kind in _LAYER.items():
            if layer.get(key) is not None and not isinstance(layer[key], kind):
                return f"layer {n}: {key} is a {type(layer[key]).__name__}"
        if layer.get("index") is not None and (type(layer["index"]) is not int):
            return f"layer {n}: index is a {type(layer['index']).__name__}"
    return ""


def unreadable(file: str | os.PathLike, why: str) -> dict:
    """A result that could not be read, as an error cell saying why."""
    return _unreadable(Path(file), why)


def _unreadable(file: Path, why: str) -> dict:
    return {"format": REPORT_FORMAT, "id": f"unreadable:{file}", "scenario": file.parent.name,
            "description": "", "cell": {}, "passed": False, "layers": [], "qemu": {},
            "artifacts": str(file.parent), "result_file": str(file),
            "error": f"cannot read {file}: {why}"}


# --- one cell ----------------------------------------------------------------------------

def layer_state(layer: dict) -> str:
    """consumed, absent, not-zeroed, exposed, stale, lingering, did-not-boot or unknown."""
    if not layer.get("booted"):
        return "did-not-boot"
    if layer.get("received") is False:
        return "absent"
    if layer.get("exposed"):
        return "exposed"
    if layer.get("zeroed_sysfs") is False or layer.get("zeroed_ram") is False:
        return "not-zeroed"
    if layer.get("fresh") is False:
        return "stale"
    if layer.get("lingering"):
        return "lingering"
    if layer.get("received"):
        return "consumed"
    return "unknown"


def artifacts_dir(result: dict) -> Path | None:
    """The result's `artifacts` folder when it exists here, else the folder its
    result.json was read from (results merged from other machines)."""
    candidates = [Path(p) for p in (result.get("artifacts"),) if p]
    if result.get("result_file"):
        candidates.append(Path(result["result_file"]).parent)
    for folder in candidates:
        if folder.is_dir():
            return folder.resolve()
    return candidates[0] if candidates else None


def cell_record(result: dict, classification: Classification, out_dir: Path) -> dict:
    """What the report shows of one cell (the entries of matrix.json's "cells")."""
    layers = [layer for layer in result.get("layers") or [] if isinstance(layer, dict)]
    records = []
    for i, layer in enumerate(layers):
        given = layer.get("index")
        index = given if isinstance(given, int) else i + 1
        explained, unexplained, news = classification.layer_findings(index)
        verdict = ("fail" if unexplained else "news" if news
                   else "known-gap" if explained else "ok")
        records.append({
            "index": index,
            "kernel": layer.get("kernel"),
            "kernel_version": layer.get("kernel_version") or "",
            "kernel_spec": layer.get("kernel_spec") or "",
            "kernel_note": layer.get("kernel_note") or "",
            "loader": layer.get("loader") or "",
            "kexec_tools": layer.get("kexec_tools") or "",
            "loaded_with_kexec_tools": (layers[i - 1].get("kexec_tools") or "") if i else "",
            "state": layer_state(layer),
            "verdict": verdict,
            "gaps": sorted({g for f in explained for g in f.gaps}),
            "observed": {name: layer.get(name) for name in CHECKS},
            "expect": layer.get("expect") or {},
            "outcome": layer.get("outcome") or {},
            "fault": layer.get("fault"),
        })
    folder = artifacts_dir(result)
    links = {}
    for name in ARTIFACT_FILES:
        if folder is None:
            continue
        target = folder / name
        links[name] = {"href": _href(target, out_dir), "present": target.is_file()}
    qemu = result.get("qemu") or {}
    return {
        "id": classification.id,
        "scenario": result.get("scenario") or "?",
        "arch": str(result.get("arch") or "x86_64"),
        "description": " ".join(str(result.get("description") or "").split()),
        "cell": dict(result.get("cell") or {}),
        "status": classification.status,
        "summary": classification.summary(),
        "passed": result.get("passed"),
        "error": result.get("error"),
        "qemu": {key: qemu.get(key) for key in ("version", "binary", "machine", "cpu", "accel")},
        "layers": records,
        "classification": classification.to_json(),
        "artifacts": None if folder is None else str(folder),
        "result_file": result.get("result_file"),
        "links": links,
    }


def _href(target: Path, out_dir: Path) -> str:
    base = Path(out_dir).resolve()
    target = target if target.is_absolute() else Path.cwd() / target
    return quote(Path(os.path.relpath(target, base)).as_posix())


# --- counting ------------------------------------------------------------------------------

def count(cells: Sequence[dict]) -> dict[str, int]:
    """The number of cells with each status (every status, zeros too)."""
    counts = dict.fromkeys(STATUSES, 0)
    for cell in cells:
        counts[cell["status"]] = counts.get(cell["status"], 0) + 1
    return counts
