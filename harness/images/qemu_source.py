# SPDX-License-Identifier: GPL-2.0-only
"""QEMU built from a Debian source package's upstream tarball (images/qemu/*.yaml).

`source:7.2.0` names images/qemu/qemu-7.2.0.yaml: the tarball is fetched with
`apt-get source --download-only` under a private apt configuration that has only
deb-src lines, unpacked without Debian's patches, edited as the recipe says,
configured and built with ninja, and the binary kept in a cache entry keyed by
the recipe and the tarball's SHA-256 (built once, under the cache's lock, so
parallel workers wait for one build). Progress is ninja's step count.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from collections.abc import Callable

from harness.progress import say
from harness.errors import ImageError, QemuError
from harness.images import recipes
from harness.images.apt import KEYRING, Apt
from harness.images.cache import Cache, sha256_file
from harness.paths import IMAGES
from harness.proc import die_with_parent

INFO = "build.json"
BUILD_LAYOUT = "qemu-source/v1"     # bump when what the entry holds changes
_STEP = re.compile(rb"^\[(\d+)/(\d+)\]")

Progress = Callable[[str], None]


class SourceApt(Apt):
    """A suite's source package lists only (deb-src), in a folder of their own."""

    def __init__(self, suite: str, cache: Cache):
        super().__init__(suite, cache)
        self.dir = cache.root / "apt" / f"{suite}-src"

    def sources(self) -> str:
        base = self.suite.removesuffix("-backports")
        return f"deb-src [signed-by={KEYRING}] {self.mirror} {base} main\n"

    def _has_lists(self) -> bool:
        return (self.dir / "updated").exists() and any((self.dir / "lists").glob("*_Sources*"))


def versions() -> dict[str, Path]:
    """The source builds the recipes in images/qemu/ describe: version -> recipe file."""
    return {p.stem.removeprefix("qemu-"): p for p in sorted((IMAGES / "qemu").glob("qemu-*.yaml"))}


def recipe_of(version: str) -> Path:
    """The recipe file of `source:VERSION`; a QemuError naming the known ones if none."""
    known = versions()
    if version not in known:
        raise QemuError(f"no recipe for a QEMU source build {version!r}", where="qemu.build",
                        hint=f"known: {', '.join('source:' + v for v in known) or 'none'} "
                             "(images/qemu/qemu-VERSION.yaml)")
    return known[version]


def build(version: str, cache: Cache, progress: Progress = lambda m: None) -> tuple[Path, dict]:
    """(the built binary, what it was built from) for `source:VERSION`."""
    recipe = recipes.qemu_source(recipe_of(version).name)
    data = recipe.data
    _check_build_depends(data)
    src = data["source"]
    apt = SourceApt(src["suite"], cache)
    apt.ensure_lists()
    version = _source_version(apt, src["package"])
    tarball_entry = cache.build("qemu-tarball", ["orig", src["suite"], src["package"], version],
                                lambda d: _download(apt, src["package"], d))
    info = json.loads((tarball_entry / INFO).read_text())
    key = [BUILD_LAYOUT, recipe.digest, info["sha256"]]
    started = time.monotonic()
    entry = cache.build("qemu-source", key,
                        lambda d: _build(data, tarball_entry / info["tarball"], info, d, progress))
    if time.monotonic() - started > 1:
        progress(f"QEMU {version} built from {info['package']} {info['version']} "
                 f"in {time.monotonic() - started:.0f} s")
    return entry / data["target"], json.loads((entry / INFO).read_text())


def _check_build_depends(data: dict) -> None:
    missing = [tool for tool in ("meson", "ninja", "cc", "pkg-config") if not shutil.which(tool)]
    if not missing:
        probe = subprocess.run(["pkg-config", "--exists", "glib-2.0", "pixman-1", "zlib"])
        if probe.returncode != 0 or not Path("/usr/include/libfdt.h").is_file():   # libfdt has no .pc
            missing = ["the glib-2.0, pixman-1, libfdt and zlib development files"]
    if missing:
        raise ImageError(f"building QEMU {data['version']} needs {', '.join(missing)}",
                         where="qemu.build", hint="apt-get install " + " ".join(data["build_depends"]))


def _source_version(apt: Apt, package: str) -> str:
    out = apt.query("showsrc", "--only-source", package)
    found = re.findall(r"^Version: (\S+)", out, re.M)
    if not found:
        raise ImageError(f"no source package {package} in {apt.suite}", where="qemu.build",
                         hint="check the suite in the recipe")
    return found[0]


def _download(apt: Apt, package: str, dest: Path) -> None:
    apt.get("source", "--download-only", package, cwd=dest,
            what=f"fetching the {package} source package from {apt.suite}")
    dsc = next(dest.glob("*.dsc"))
    tarball = next(dest.glob("*.orig.tar.*"))
    for other in dest.iterdir():
        if other not in (dsc, tarball):
            other.unlink()      # Debian's patches are not used: keep only what is
    found = re.search(r"^Version: (\S+)", dsc.read_text(errors="replace"), re.M)
    if found is None:
        raise ImageError(f"{dsc.name} names no Version", where=str(dsc),
                         hint="report this: the source package is unusual")
    version = found[1]
    (dest / INFO).write_text(json.dumps({"package": package, "version": version, "suite": apt.suite,
                                         "tarball": tarball.name, "sha256": sha256_file(tarball)}))


def _build(data: dict, tarball: Path, source: dict, dest: Path, progress: Progress) -> None:
    work = dest / "work"
    with tarfile.open(tarball) as tar:
        tar.extractall(work, filter="data")
    (tree,) = [p for p in work.iterdir() if p.is_dir()]
    found = (tree / "VERSION").read_text().strip()
    if found != data["version"]:
        raise ImageError(f"{tarball.name} is QEMU {found}, not {data['version']}", where="qemu.build",
                         hint="the recipe's source suite no longer has this release")
    for edit in data.get("edits", []):
        path = tree / edit["file"]
        text = path.read_text()
        if edit["replace"] not in text:
            raise ImageError(f"the recipe's edit of {edit['file']} does not apply", where="qemu.build",
                             hint="update images/qemu/ for this tarball")
        path.write_text(text.replace(edit["replace"], edit["with"]))
    out = tree / "build"
    out.mkdir()
    log = dest.parent / f"{dest.name}.log"      # kept when the build fails: the entry is not
    log.unlink(missing_ok=True)
    progress(f"QEMU {data['version']}: configuring ({' '.join(data['configure'])})")
    _step(["../configure", *data["configure"]], out, log, "configure", progress)
    _step(["ninja", f"-j{os.cpu_count() or 1}", data["target"]], out, log, "ninja", progress)
    shutil.move(out / data["target"], dest / data["target"])
    shutil.rmtree(work)
    shutil.move(log, dest / "build.log")
    version = subprocess.run([str(dest / data["target"]), "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    (dest / INFO).write_text(json.dumps({
        "kind": "source", "version": data["version"], "reports": version,
        "package": source["package"], "package_version": source["version"],
        "suite": source["suite"], "tarball": source["tarball"], "tarball_sha256": source["sha256"],
        "patches": "none (the upstream tarball only)", "edits": [e["file"] for e in data.get("edits", [])],
        "configure": data["configure"]}, indent=2))


def _step(argv: list[str], cwd: Path, log: Path, what: str, progress: Progress) -> None:
    """Run a build step, its output to the log, ninja's [N/M] as progress every 10%."""
    shown = -1
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)
        assert proc.stdout is not None         # stdout=PIPE
        for line in proc.stdout:
            out.write(line)
            if m := _STEP.match(line):
                done, total = int(m[1]), int(m[2])
                if done * 10 // total > shown:
                    shown = done * 10 // total
                    progress(f"building QEMU: {done}/{total} steps")
                else:
                    say(f"building QEMU: {done}/{total} steps", transient=True)
        rc = proc.wait()
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise ImageError(f"QEMU {what} failed (exit {rc}): {' / '.join(tail)[:400]}",
                         where="qemu.build", hint=f"the whole log is {log}")
