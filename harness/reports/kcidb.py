# SPDX-License-Identifier: GPL-2.0-only
"""Results as KCIDB I/O data, the report format of KernelCI's common database.

    seedchain report --kcidb OUT.json [--kcidb-url-base URL] RESULTS...

reads result.json files (or folders of them, as `seedchain report` does) and writes
one KCIDB data set (schema v5.3, validated with kcidb-io before it is written):

  checkouts  one per kernel: a Debian package and its version (or a bzImage's path and
             release), with the Debian suite as tree_name. seedchain builds no kernel,
             so there is no git data and no build status.
  builds     one per kernel and QEMU version: that kernel as run under that QEMU
             (architecture x86_64); the comment names both, misc has the QEMU version
             and, for a QEMU built from source, what it was built from.
  tests      one per layer and check the result has, path
             `seedchain.<scenario>.layer<N>.<check>`, attached to the build of that
             layer's kernel; the environment is the QEMU machine, misc the result
             id, the matrix cell and the values.

A test's status comes from the layer's `outcome` (the verdict) and the observed value:

  outcome "pass"                 PASS  observed what the scenario expected
  outcome "fail"                 FAIL  it did not; an expected check observed as n/a
                                       is a failure too (the verdict says so: n/a is
                                       not the value that was expected)
  not expected, a value observed DONE  the check ran and its answer is kept (comment,
                                       misc.observed), but the scenario claims nothing
                                       about it, so it says nothing about the code:
                                       KCIDB's "completed without a verdict", ranked
                                       below PASS, so it never colours a summary
  not expected, n/a observed     SKIP  the check did not apply (nothing received, so
                                       nothing to zero; a layer that did not boot)
  the harness failed (`error`)   MISS  one more test, `seedchain.<scenario>`: the run
                                       did not finish, nothing is known of the code

A result without `outcome` (older files) is judged from `expect` the same way.

Ids are "seedchain:" and 32 hex digits of a SHA-256: a checkout's over its kernel, a
build's over its checkout and QEMU, so runs of the same versions share them; a test's
over the whole result record, the layer and the check, so exporting the same
result.json again gives the same ids, and every other run (fresh seed bytes, other
timings) new ones.

Links: a test's log_url is the cell's console.log, its output_files agent.log, the
layer's layer-N.json, qemu.log and the result file, those present in the result's
artifacts folder (harness.reports.matrix.artifacts_dir). Without --kcidb-url-base they
are file:// URLs (the schema takes only absolute URLs, so no relative paths); with it,
URL followed by the file's path relative to the folder OUT.json is written in, so
write OUT.json into the folder that is published at URL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from collections.abc import Sequence
from urllib.parse import quote

import jsonschema

from harness.private import write_file
from harness.errors import SeedchainError
from harness import text
from harness.reports.cells import RESULT_NAME, artifacts_dir, merge, unreadable
from harness.scenario.model import CHECKS

SCHEMA_VERSION = (5, 3)
ORIGIN = "seedchain"
# A result names its guest architecture ("arch"); older ones do not: then a QEMU binary
# named qemu-system-<arch> says, else x86_64.
DEFAULT_ARCH = "x86_64"
LOG_EXCERPT_MAX = 16384             # the schema's limit
OUTPUT_FILES = ("agent.log", "layer-{index}.json", "qemu.log")
WORDS = {True: "yes", False: "no", None: "n/a"}



def kcidb_schema() -> Any:
    """kcidb-io's schema v5.3, which validates what is written; None where kcidb-io is not
    installed. It is optional: its jsonschema[format] requirement brings in rfc3987
    (GPL-3.0-or-later) and arrow (Apache-2.0), which GPL-2.0-only seedchain must not require."""
    try:
        import kcidb_io
    except ImportError:
        return None
    return kcidb_io.schema.V5_3

def kcidb_data(results: Sequence[dict], out_dir: Path, url_base: str | None = None) -> dict:
    """The KCIDB data set of the results (merge()'s dicts), validated."""
    if url_base is not None and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url_base):
        raise SeedchainError(f"--kcidb-url-base {url_base!r} is not an absolute URL",
                             hint="give the URL the folder of the KCIDB file is published at, "
                                  "e.g. https://ci.example.org/run/42/")
    links = _Links(Path(out_dir), url_base)
    objects: dict[str, dict[str, dict]] = {"checkouts": {}, "builds": {}, "tests": {}}
    for result in results:
        try:
            found = list(_objects(result, links))
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:
            # a value of a shape no seedchain writes: the result is reported as unreadable
            bad = unreadable(str(result.get("result_file") or "?"), f"not a seedchain result ({type(e).__name__})")
            found = list(_objects(bad, links))
        for kind, obj in found:
            objects[kind].setdefault(obj["id"], obj)
    data = _plain({"version": {"major": SCHEMA_VERSION[0], "minor": SCHEMA_VERSION[1]},
                   **{kind: list(found.values()) for kind, found in objects.items()}})
    schema = kcidb_schema()
    if schema is None:
        return data
    try:
        schema.validate(data)
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path))
        raise SeedchainError(f"the KCIDB data does not validate at {where}: {e.message}",
                             hint="a result field seedchain did not expect; please report it") from None
    return data


def _plain(value):
    """Every string of the data with its control characters escaped (text.terminal): the guest's
    strings reach dashboards and terminals that read KCIDB data. HTML is left to whoever renders
    it, as KCIDB's fields are plain text."""
    if isinstance(value, str):
        return text.terminal(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_kcidb(data: dict, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_file(out, (json.dumps(data, indent=2) + "\n").encode("utf-8"), follow=True)
    except OSError as e:
        raise SeedchainError(f"cannot write: {e.strerror}", where=str(out),
                             hint="give --kcidb a file in a folder you can write to") from None


# --- one result --------------------------------------------------------------------------

def layer_checks(layer: dict) -> list[str]:
    """The checks a layer's record answers: the known ones it has, in CHECKS order, then
    any other its outcome names (a result written by another seedchain version)."""
    outcome = layer.get("outcome") or {}
    known = [check for check in CHECKS if check in outcome or check in layer]
    return known + [check for check in outcome if check not in known]


def check_status(layer: dict, check: str) -> str:
    """PASS, FAIL, DONE or SKIP for one check of one layer (see the module's table)."""
    observed = layer.get(check)
    outcome = (layer.get("outcome") or {}).get(check)
    if outcome not in ("pass", "fail", "-"):
        expected = (layer.get("expect") or {}).get(check)
        outcome = "-" if expected is None else "pass" if observed == expected else "fail"
    if outcome != "-":
        return outcome.upper()
    return "SKIP" if observed is None else "DONE"


def _objects(result: dict, links: _Links):
    """(kind, object) pairs of one result: its checkouts, builds and tests."""
    qemu = result.get("qemu") or {}
    layers = [la for la in result.get("layers") or [] if isinstance(la, dict)]
    record = {k: v for k, v in result.items() if k != "result_file"}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    scenario = _path_part(result.get("scenario") or "unknown")
    folder = artifacts_dir(result)
    environment = _environment(qemu)
    builds = []
    for position, layer in enumerate(layers):
        checkout = _checkout(layer)
        build = _build(layer, checkout, qemu, result.get("arch"))
        builds.append(build)
        yield "checkouts", checkout
        yield "builds", build
        parent = layers[position - 1] if position else None
        given = layer.get("index")
        index = given if isinstance(given, int) else position + 1
        blame = _blame(layer, index, parent, qemu)
        files = links.files(folder, result, index)
        for check in layer_checks(layer):
            status = check_status(layer, check)
            test = {
                "id": _id("test", digest, str(index), check),
                "build_id": build["id"],
                "origin": ORIGIN,
                "path": f"{ORIGIN}.{scenario}.layer{index}.{_path_part(check)}",
                "status": status,
                "comment": f"{check}: {_says(layer, check, status)}; {blame}",
                "environment": environment,
                "misc": _test_misc(result, layer, index, check),
                **files,
            }
            excerpt = _excerpt(layer) if status == "FAIL" else ""
            if excerpt:
                test["log_excerpt"] = excerpt
            yield "tests", test
    if result.get("error"):
        if not builds:          # failed before any layer: the kernel the cell names, if any
            spec = str((result.get("cell") or {}).get("kernel") or "unknown")
            stand_in = {"kernel_spec": spec}
            checkout = _checkout(stand_in)
            builds.append(_build(stand_in, checkout, qemu, result.get("arch")))
            yield "checkouts", checkout
            yield "builds", builds[0]
        yield "tests", {
            "id": _id("test", digest, "run"),
            "build_id": builds[0]["id"],
            "origin": ORIGIN,
            "path": f"{ORIGIN}.{scenario}",
            "status": "MISS",
            "comment": f"the harness did not finish the run: {result['error']}",
            "log_excerpt": _clip(str(result["error"])),
            "environment": environment,
            "misc": {"result": str(result.get("id") or result.get("scenario") or ""),
                     "cell": _strings(result.get("cell") or {})},
            **links.files(folder, result, None),
        }


def _checkout(layer: dict) -> dict:
    package, version = layer.get("kernel_package") or "", layer.get("kernel_version") or ""
    spec = layer.get("kernel_spec") or ""
    identity = [package, version, spec] if package else [spec, layer.get("kernel") or ""]
    checkout: dict[str, Any] = {"id": _id("checkout", *identity), "origin": ORIGIN, "valid": True,
                "comment": _kernel_words(layer),
                "misc": {k: v for k, v in (("kernel_package", package), ("kernel_version", version),
                                           ("kernel_spec", spec)) if v}}
    if spec.startswith("debian:"):
        checkout["tree_name"] = spec.split("/", 1)[0]          # debian:bookworm
    elif not package and layer.get("kernel"):
        checkout["misc"]["kernel"] = layer["kernel"]
    return checkout


def _build(layer: dict, checkout: dict, qemu: dict, arch_name: str | None = None) -> dict:
    version = str(qemu.get("version") or "unknown")
    arch = re.search(r"qemu-system-([a-z0-9_]+)", str(qemu.get("binary") or ""))
    arch_name = arch_name if isinstance(arch_name, str) and arch_name else (arch.group(1) if arch else DEFAULT_ARCH)
    misc = {"qemu_version": version}
    if qemu.get("source"):
        misc["qemu_source"] = qemu["source"]
    return {"id": _id("build", checkout["id"], json.dumps(misc, sort_keys=True)),
            "checkout_id": checkout["id"], "origin": ORIGIN,
            "architecture": arch_name,
            "comment": f"{_kernel_words(layer)} under QEMU {version}",
            "misc": misc}


def _environment(qemu: dict) -> dict:
    fields = {k: qemu[k] for k in ("machine", "cpu", "accel", "memory", "rng", "firmware", "binary")
              if qemu.get(k) not in (None, "")}
    words = ", ".join(f"{k} {v}" for k, v in fields.items())
    return {"comment": f"QEMU {qemu.get('version') or 'unknown'}" + (f": {words}" if words else ""),
            "misc": fields}


def _kernel_words(layer: dict) -> str:
    """6.1.0-56-amd64 (linux-image-6.1.0-56-amd64-unsigned 6.1.192-2, debian:bookworm/6.1)."""
    name = layer.get("kernel") or layer.get("kernel_spec") or "unknown kernel"
    details = [f"{layer['kernel_package']} {layer.get('kernel_version') or ''}".strip()
               if layer.get("kernel_package") else "", layer.get("kernel_spec") or ""]
    details = [d for d in details if d and d != name]
    return f"{name} ({', '.join(details)})" if details else str(name)


def _blame(layer: dict, index: int, parent: dict | None, qemu: dict) -> str:
    """layer 2 kernel 5.10.0-46-amd64 (...) started by kexec_file_load with kexec-tools
    1:2.0.25-3+deb12u3, QEMU 7.2.22 (...): who was tested, as in the verdict's lines."""
    loader = layer.get("loader") or "?"
    words = f"layer {index} kernel {_kernel_words(layer)} started by {loader}"
    if loader.startswith("kexec") and parent is not None:
        words += f" with kexec-tools {parent.get('kexec_tools') or '?'}"   # the parent ran the load
    return f"{words}, QEMU {qemu.get('version') or 'unknown'}"


def _says(layer: dict, check: str, status: str) -> str:
    observed = WORDS.get(layer.get(check), str(layer.get(check)))
    expected = _expected(layer, check)
    return {"PASS": f"{observed}, as expected",
            "FAIL": f"expected {expected}, observed {observed}",
            "DONE": f"{observed} (not checked by the scenario)",
            "SKIP": "n/a (does not apply)"}[status]


def _expected(layer: dict, check: str) -> str:
    """yes, no, or "-" for a check the scenario does not make."""
    expected = (layer.get("expect") or {}).get(check)
    return "-" if expected is None else WORDS[expected]


def _test_misc(result: dict, layer: dict, index: int, check: str) -> dict:
    misc = {"result": str(result.get("id") or result.get("scenario") or ""),
            "cell": _strings(result.get("cell") or {}),
            "layer": index, "check": check,
            "observed": WORDS.get(layer.get(check), str(layer.get(check))),
            "expected": _expected(layer, check),
            "loader": layer.get("loader") or "",
            "kexec_tools": layer.get("kexec_tools") or ""}
    if layer.get("fault"):
        misc["fault"] = str(layer["fault"])
    return misc


def _excerpt(layer: dict) -> str:
    """A failing layer's fault and last console lines."""
    lines = []
    if layer.get("fault"):
        lines.append(f"fault: {layer['fault']}: {layer.get('fault_detail') or ''}".rstrip())
    lines += [str(line) for line in layer.get("console_tail") or []]
    return _clip("\n".join(lines))


def _clip(text: str) -> str:
    text = text.replace("\0", "")
    return text if len(text) <= LOG_EXCERPT_MAX else text[-LOG_EXCERPT_MAX:]


def _strings(mapping: dict) -> dict:
    return {str(k): str(v) for k, v in mapping.items()}


def _path_part(name: str) -> str:
    """A scenario name as one component of a KCIDB path ([A-Za-z0-9_-]+)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "unknown"


def _id(*parts: str) -> str:
    return f"{ORIGIN}:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class _Links:
    """URLs of the artifacts: file:// URLs, or url_base + the path relative to out_dir."""

    def __init__(self, out_dir: Path, url_base: str | None):
        self.out_dir = Path(os.path.abspath(out_dir))
        self.base = None if url_base is None else url_base.rstrip("/") + "/"

    def url(self, path: Path) -> str:
        path = Path(os.path.abspath(path))
        if self.base is None:
            return path.as_uri()
        relative = Path(os.path.relpath(path, self.out_dir))
        if relative.parts[:1] == ("..",):
            raise SeedchainError(f"{path} is not inside {self.out_dir}, the KCIDB file's folder",
                                 hint="with --kcidb-url-base, write the KCIDB file into a folder that "
                                      "holds the results: links are relative to it")
        return self.base + quote(relative.as_posix())

    def files(self, folder: Path | None, result: dict, index: int | None) -> dict:
        """log_url and output_files for a layer's tests (index None: the whole run)."""
        found: dict[str, Any] = {}
        if folder is not None and folder.is_dir():
            if (folder / "console.log").is_file():
                found["log_url"] = self.url(folder / "console.log")
            names = [n.format(index=index) for n in OUTPUT_FILES if index is not None or "{" not in n]
            outputs = [folder / n for n in names if (folder / n).is_file()]
        else:
            outputs = []
        if result.get("result_file") and Path(result["result_file"]).is_file():
            outputs.append(Path(result["result_file"]))
        if outputs:
            found["output_files"] = [{"name": p.name, "url": self.url(p)} for p in outputs]
        return found


# --- command line ------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="seedchain report",
        description="Write the results as KCIDB I/O data (KernelCI's report format): a checkout "
                    "per kernel, a build per kernel and QEMU, a test per layer and check.")
    parser.add_argument("--kcidb", type=Path, required=True, metavar="OUT.json",
                        help="the KCIDB file to write")
    parser.add_argument("--kcidb-url-base", metavar="URL",
                        help="where OUT.json's folder is published: artifact links become URL + "
                             "their path relative to it (default: file:// URLs)")
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="result.json files or folders holding them (searched recursively)")
    args = parser.parse_args(argv)
    try:
        results = merge(args.results)
        if not results:
            raise SeedchainError(f"no {RESULT_NAME} under {' '.join(args.results)}",
                                 hint="give result.json files or folders holding them (seedchain run --artifacts)")
        data = kcidb_data(results, args.kcidb.parent, args.kcidb_url_base)
        write_kcidb(data, args.kcidb)
    except SeedchainError as e:
        print(f"error: {text.terminal(e)}", file=sys.stderr)
        return 2
    statuses = Counter(t["status"] for t in data["tests"])
    print(f"{len(results)} results: {len(data['checkouts'])} checkouts, {len(data['builds'])} builds, "
          f"{len(data['tests'])} tests (" + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ")")
    how = ("validated with kcidb-io" if kcidb_schema() is not None else
           "not validated: kcidb-io is not installed; pip install 'seedchain[kcidb]' to validate")
    print(f"wrote {args.kcidb} (KCIDB schema v{SCHEMA_VERSION[0]}.{SCHEMA_VERSION[1]}, {how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
