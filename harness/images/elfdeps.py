# SPDX-License-Identifier: GPL-2.0-only
"""The shared libraries a program loads, read from the ELF files themselves (DT_NEEDED),
never by running them: another architecture's binaries cannot run on the host.

The search follows glibc's loader as it is run for a host-architecture userland
(`ld.so --inhibit-cache --library-path DIRS --list`): the staged library folders
first, then the object's own DT_RUNPATH (or DT_RPATH), no ld.so.cache; a file of another
machine or ELF class is passed over as the loader passes it over. pyelftools reads the
dynamic sections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from harness.errors import ImageError

Candidates = Callable[[str, "ElfInfo"], Iterable[Path]]   # (soname, who needs it) -> files to try


@dataclass(frozen=True)
class ElfInfo:
    path: Path
    machine: str                 # e.g. "EM_AARCH64"
    elfclass: int                # 32 or 64
    needed: tuple[str, ...]      # DT_NEEDED, in order
    runpath: tuple[str, ...]     # DT_RUNPATH, else DT_RPATH, as the file says ($ORIGIN unexpanded)


def read(path: Path) -> ElfInfo:
    """The dynamic-linking facts of one ELF file; ImageError for a file that is not one."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            needed: list[str] = []
            runpath: list[str] = []
            rpath: list[str] = []
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        runpath += tag.runpath.split(":")
                    elif tag.entry.d_tag == "DT_RPATH":
                        rpath += tag.rpath.split(":")
            dirs = tuple(d for d in (runpath or rpath) if d)
            return ElfInfo(Path(path), elf["e_machine"], elf.elfclass, tuple(needed), dirs)
    except (ELFError, OSError, ValueError) as err:
        raise ImageError(f"{Path(path).name} is not a readable ELF file ({type(err).__name__})",
                         where=str(path), hint="the package's layout changed: report this") from None


def closure(binary: Path, candidates: Candidates, loader: str) -> dict[str, Path]:
    """{soname: file} of every library `binary` loads, breadth first as the loader does;
    `candidates` says where a soname may be (in search order). The dynamic loader itself
    (`loader`, also a DT_NEEDED of libc) is left out: the caller installs it."""
    top = read(binary)
    found: dict[str, Path] = {}
    missing: list[str] = []
    queue = [(name, top) for name in top.needed]
    while queue:
        soname, parent = queue.pop(0)
        if soname in found or soname in missing or soname == loader:
            continue
        for path in candidates(soname, parent):
            info = read(path)
            if (info.machine, info.elfclass) == (top.machine, top.elfclass):
                found[soname] = path
                queue += [(name, info) for name in info.needed]
                break
        else:
            missing.append(soname)
    if missing:
        raise ImageError(f"{binary.name} needs {', '.join(missing)}, which no unpacked "
                         "package provides", where=str(binary),
                         hint="kexec-tools' dependencies changed: report this")
    return found


def interpreter(path: Path) -> str | None:
    """The program interpreter a dynamically linked executable names (PT_INTERP), e.g.
    /lib/ld-linux-aarch64.so.1; None for a static one."""
    try:
        with open(path, "rb") as f:
            for segment in ELFFile(f).iter_segments():
                if segment.header.p_type == "PT_INTERP":
                    return segment.get_interp_name()
    except (ELFError, OSError, ValueError) as err:
        raise ImageError(f"{Path(path).name} is not a readable ELF file ({type(err).__name__})",
                         where=str(path), hint="the package's layout changed: report this") from None
    return None
