"""What every architecture module does the same way, with its own names filled in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import QemuError


def find_qemu(build: str, binary: str, package: str) -> str:
    """The QEMU binary to run: "system" means `binary` on PATH; else a path, or a name
    found on PATH as a shell would."""
    if build == "system":
        found = shutil.which(binary)
        if not found:
            raise QemuError(f"{binary} is not installed", where="qemu.build: system",
                            hint=f"apt-get install {package}, or give a binary with --qemu PATH")
        return found
    path = Path(build)
    if "/" not in build and not path.is_file() and shutil.which(build):
        return shutil.which(build)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise QemuError(f"{build} is not an executable file" + ("" if "/" in build else " nor a program on PATH"),
                        where="qemu.build", hint=f"give the path of a built {binary}")
    return str(path.resolve())
