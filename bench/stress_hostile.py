# SPDX-License-Identifier: GPL-2.0-only
"""Stress, hostile section: scenario and matrix files written to make seedchain run code or
touch host files, fed to `seedchain check`, `seedchain run` and pytest.

Every case lives in a fresh folder with three bait files beside it:

  payload.sh   an executable script that, when anything runs it, writes RAN-<case>
  evil.so      a file named like a QEMU plugin (a plugin that QEMU loaded would run)
  canary       a 0600 host file holding a random secret: its bytes must never be written
               over, and its secret must never appear in anything seedchain prints or writes

Counted over all cases and front doors: executions (RAN files), canaries changed,
secrets echoed (in stdout, stderr or any file under the artifacts), tracebacks, hangs
(a command still running after TIMEOUT seconds), an escape character printed raw (a file's
text reaching the terminal unescaped), and exit statuses other than the ones
for bad input (125 for run, 2 for check, 1..4 for pytest; `seedchain matrix` only lists
cells and may say 0). The goal is 0 for each, with
every case refused before anything boots.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bench._env import ROOT
from bench.common import say, table

TIMEOUT = 60.0
KERNEL = "debian:bookworm/6.1"


def _scenario(name: str, qemu: str = "{machine: q35}", kernel: str = KERNEL, extra: str = "") -> str:
    return (f"name: {name}\ndescription: a hostile file\n{extra}qemu: {qemu}\n"
            f"layers:\n  - kernel: {kernel}\n    expect: {{seed: absent}}\n")


def _matrix(name: str, axes: str) -> str:
    return f"matrices:\n  evil:\n    description: d\n    groups:\n      - scenarios: [{name}]\n        axes:\n{axes}"


# (case, what the file says); CANARY, PAYLOAD and EVIL are replaced by the bait's paths.
SCENARIOS = {
    "plugin": _scenario("plugin", "{machine: q35, extra_args: ['-plugin', 'file=EVIL']}"),
    "chardev-file": _scenario("chardev-file", "{machine: q35, extra_args: ['-chardev', 'file,id=x,path=CANARY']}"),
    "fw-cfg-file": _scenario("fw-cfg-file", "{machine: q35, extra_args: ['-fw_cfg', 'name=opt/x,file=CANARY']}"),
    "drive-file": _scenario("drive-file", "{machine: q35, extra_args: ['-drive', 'file=CANARY,format=raw']}"),
    "monitor-tcp": _scenario("monitor-tcp", "{machine: q35, extra_args: ['-monitor', 'tcp:127.0.0.1:4444,server']}"),
    "global-romfile": _scenario("global-romfile",
                                "{machine: q35, extra_args: ['-global', 'virtio-rng-pci.romfile=CANARY']}"),
    "machine-dumpdtb": _scenario("machine-dumpdtb", "{machine: 'q35,dumpdtb=CANARY'}"),
    "machine-spaces": _scenario("machine-spaces", "{machine: 'q35 -plugin EVIL'}"),
    "qemu-payload": _scenario("qemu-payload", "{machine: q35, build: ./payload.sh}"),
    "qemu-absolute": _scenario("qemu-absolute", "{machine: q35, build: PAYLOAD}"),
    "kernel-canary": _scenario("kernel-canary", kernel="CANARY"),
    "kernel-outside": _scenario("kernel-outside", kernel="../../../../../../etc/passwd"),
    "kernel-device": _scenario("kernel-device", kernel="/dev/zero"),
    "escape-name": _scenario("escape-name", extra="tags: [\"\\e]0;owned\\a\\e[2J\"]\n"),
}
MATRICES = {
    "matrix-machine": _matrix("base", "          machine: ['q35 -plugin EVIL']\n"),
    "matrix-qemu": _matrix("base", "          qemu: [./payload.sh]\n"),
    "matrix-kernel": _matrix("base", "          kernel: [CANARY]\n"),
}


def _bait(folder: Path, case: str) -> dict[str, Path | str]:
    folder.mkdir(parents=True)
    payload = folder / "payload.sh"
    payload.write_text(f"#!/bin/sh\ntouch '{folder}/RAN-{case}'\necho QEMU emulator version 7.2.0\n")
    payload.chmod(0o755)
    (folder / "evil.so").write_bytes(b"\x7fELF not really")
    secret = secrets.token_hex(16)
    canary = folder / "canary"
    canary.write_text(secret + "\n")
    canary.chmod(0o600)
    return {"payload": payload, "canary": canary, "secret": secret}


def _fill(text: str, bait: dict) -> str:
    return (text.replace("CANARY", str(bait["canary"])).replace("PAYLOAD", str(bait["payload"]))
            .replace("EVIL", str(Path(bait["payload"]).parent / "evil.so")))


def _command(door: str, folder: Path, file: Path) -> tuple[list[str], set[int]]:
    """The command line of a front door over one file, and the exit statuses for bad input."""
    if door == "check":
        return [sys.executable, "-m", "harness.cli", "check", str(file)], {2}
    if door == "run":
        return ([sys.executable, "-m", "harness.cli", "run", str(file), "--artifacts", str(folder / "out")],
                {125})
    if door == "matrix":     # listing the cells names a path and touches nothing: 0 is fine
        return [sys.executable, "-m", "harness.cli", "matrix", "evil", "--file", str(file)], {0, 2}
    # pytest: the matrix of the folder, each cell collected and run
    return ([sys.executable, "-m", "pytest", "-p", "harness.pytest_session", "-p", "no:cacheprovider", "-q",
             "--matrix", "evil", "--artifacts", str(folder / "out"), str(folder)], {1, 2, 3, 4})


def _one(case: str, door: str, folder: Path, text: str, matrix: bool, env: dict) -> dict:
    bait = _bait(folder, case)
    if matrix:
        (folder / "base.yaml").write_text(_scenario("base"))
        (folder / "schema.json").write_bytes((ROOT / "scenarios" / "schema.json").read_bytes())
        target = folder / "matrix.yaml"
    else:
        target = folder / f"{case}.yaml"
    target.write_text(_fill(text, bait))
    before = hashlib.sha256(Path(bait["canary"]).read_bytes()).hexdigest()
    argv, expected = _command(door, folder, target)
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TIMEOUT)
        status, out, hung = proc.returncode, proc.stdout + proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        status, hung = None, True
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
    written = b"".join(p.read_bytes() for p in (folder / "out").rglob("*") if p.is_file()) \
        if (folder / "out").is_dir() else b""
    secret = str(bait["secret"])
    return {"case": case, "door": door, "status": status, "seconds": round(time.monotonic() - started, 2),
            "ran": any(folder.glob("RAN-*")),
            "canary_changed": hashlib.sha256(Path(bait["canary"]).read_bytes()).hexdigest() != before,
            "secret_echoed": secret in out or secret.encode() in written,
            "traceback": "Traceback" in out, "hung": hung, "raw_escape": "\x1b" in out,
            "unexpected_status": not hung and status not in expected,
            "said": out.strip().splitlines()[-1][:160] if out.strip() else ""}


def run(folder: Path, env: dict, cases: list[str] | None = None) -> dict:
    """Every case through its front doors; `cases` picks some by name."""
    plan = [(c, d, t, False) for c, t in SCENARIOS.items() for d in ("check", "run")]
    plan += [(c, d, t, True) for c, t in MATRICES.items() for d in ("matrix", "pytest")]
    if cases:
        plan = [p for p in plan if p[0] in cases]
    results = []
    for number, (case, door, text, matrix) in enumerate(plan, 1):
        result = _one(case, door, folder / f"{number:03d}-{case}-{door}", text, matrix, env)
        say(f"hostile {number}/{len(plan)} {case} via {door}: exit {result['status']}")
        results.append(result)
    return {"cases": results}


BAD = ("ran", "canary_changed", "secret_echoed", "raw_escape", "traceback", "hung", "unexpected_status")


def summarize(data: dict) -> dict:
    return {"cases": len(data["cases"]), **{k: sum(bool(r[k]) for r in data["cases"]) for k in BAD}}


def report(data: dict, summary: dict) -> str:
    rows = [[r["case"], r["door"], r["status"], *("YES" if r[k] else "-" for k in BAD)] for r in data["cases"]]
    return "\n".join([
        f"Hostile files: {summary['cases']} (file, front door) cases",
        table(["case", "door", "exit", *BAD], rows),
        "totals: " + ", ".join(f"{k} {summary[k]}" for k in BAD)])


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory(prefix="seedchain-hostile-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        found = run(Path(tmp), env, sys.argv[1:] or None)
        print(report(found, summarize(found)))
