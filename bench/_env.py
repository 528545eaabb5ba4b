# SPDX-License-Identifier: GPL-2.0-only
"""Run the benchmarks under a Python that has the harness's dependencies.

`python bench/run.py` may start under an interpreter without qemu.qmp, PyYAML and
jsonschema (a system or pyenv Python). Then the script starts itself again under
the project's virtual environment: $SEEDCHAIN_VENV, $VIRTUAL_ENV, ROOT/.venv
(what ./dev creates), a `venv` folder beside the checkout, or the interpreter
named in the shebang of a `seedchain` command on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_GUARD = "SEEDCHAIN_BENCH_REEXEC"


def _usable() -> bool:
    try:
        import jsonschema  # noqa: F401
        import qemu.qmp  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        return False
    return True


def _candidates() -> list[Path]:
    found = [Path(os.environ[v]) / "bin" / "python" for v in ("SEEDCHAIN_VENV", "VIRTUAL_ENV")
             if os.environ.get(v)]
    found += [ROOT / ".venv" / "bin" / "python", ROOT.parent / "venv" / "bin" / "python"]
    script = shutil.which("seedchain")
    if script:
        try:
            first = Path(script).read_bytes()[:200].split(b"\n", 1)[0]
        except OSError:
            first = b""
        if first.startswith(b"#!"):
            found.append(Path(first[2:].decode(errors="replace").strip().split()[0]))
    return found


def ensure_python() -> None:
    """Put the checkout on sys.path; re-exec under the project's venv if need be."""
    sys.dont_write_bytecode = True     # leave no __pycache__ behind in the shared tree
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if _usable():
        return
    if not os.environ.get(_GUARD):
        # A venv's python is a symlink to its base interpreter: compare the paths as
        # given, not resolved (the guard variable stops any loop).
        me = os.path.abspath(sys.executable)
        for python in _candidates():
            if python.is_file() and os.access(python, os.X_OK) and os.path.abspath(python) != me:
                os.environ[_GUARD] = "1"
                os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
                os.execv(str(python), [str(python), *sys.orig_argv[1:]])
    raise SystemExit("bench: this Python lacks the harness's dependencies (qemu.qmp, PyYAML, "
                     "jsonschema) and no project venv was found; run ./dev setup, or start "
                     "the script with the venv's python, or set SEEDCHAIN_VENV")
