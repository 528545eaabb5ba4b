# SPDX-License-Identifier: GPL-2.0-only
"""Kernels built from Debian's own source: `debian-source:SUITE/SERIES`.

Where Debian ships no kernel that can do the job (its arm64 kernels lack
kexec_file_load), images/kernel/debian-source.yaml says how to make one: the suite's
binary package linux-source-SERIES is fetched through the private apt (harness.images.apt),
its tarball unpacked in a temporary folder inside the cache entry being built, configured
with `make allnoconfig` and the architecture's fragment as KCONFIG_ALLCONFIG, checked
(every option of the fragment must be in the final .config as written), built with
`make -j$(nproc)`, and only the image, its .config, System.map and what it was built from
kept. The entry is keyed by the package's SHA-256, the architecture, its recipe section
(the fragment's text and make's arguments) and the toolchain's versions, so a warm run
builds nothing; the build tree goes with the temporary folder whatever happens (an error,
Ctrl-C, SIGTERM; Cache.sweep takes what a SIGKILL left). Progress: download, unpack and
make's "  CC" lines counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import IO, cast
from pathlib import Path

from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.errors import ImageError
from harness.images import recipes
from harness.images.apt import SUITES, Apt, _cached_deb, _scan_deb
from harness.images.cache import Cache
from harness.images.kconfig import parse_config
from harness.progress import MILESTONE, Meter, say
from harness.proc import die_with_parent

PREFIX = "debian-source:"
BUILD_LAYOUT = "kernel-source/v1"   # bump when what an entry holds changes
INFO = "build.json"
_SPEC = re.compile(r"debian-source:(?P<suite>[a-z-]+)/(?P<series>\d+\.\d+)")
_OPTION = re.compile(r"^CONFIG_(\w+)=(.*)$|^# CONFIG_(\w+) is not set$")
_COMPILED = re.compile(rb"^  CC\s+(\S+)")


@dataclass(frozen=True)
class SourceSpec:
    suite: str
    series: str     # "6.1"

    @property
    def package(self) -> str:
        return recipe().data["source"]["package"].format(series=self.series)


@dataclass(frozen=True)
class Built:
    """A built kernel: what harness.images.debian makes a KernelImage of."""
    path: Path          # the image: arch/x86/boot/bzImage or arch/arm64/boot/Image
    config: Path        # its final .config
    package: str        # linux-source-6.1
    version: str        # the package's version, 6.1.192-3
    release: str        # uname -r of the built kernel, e.g. 6.1.192
    arch: str


def recipe() -> recipes.Recipe:
    return recipes.kernel_source()


ARCHES = tuple(recipe().data["arches"])      # the architectures the recipe has a section for


def parse_spec(spec: str) -> SourceSpec:
    """'debian-source:bookworm/6.1' -> SourceSpec('bookworm', '6.1'); an ImageError saying
    how to write one otherwise. No network."""
    m = _SPEC.fullmatch(spec.strip())
    if not m:
        raise ImageError(f"bad kernel spec {spec!r}", where=spec,
                         hint="write debian-source:SUITE/SERIES (e.g. debian-source:bookworm/6.1: "
                              "built from that suite's linux-source-6.1 package)")
    if m["suite"] not in SUITES:
        raise ImageError(f"unknown Debian suite {m['suite']!r} in {spec!r}", where=spec,
                         hint=f"use one of: {', '.join(SUITES)}")
    return SourceSpec(m["suite"], m["series"])


def section(arch: str) -> dict:
    """The recipe's part for one architecture (one of ARCHES)."""
    arches = recipe().data["arches"]
    if arch not in arches:
        raise ImageError(f"images/kernel/debian-source.yaml has no section for {arch}",
                         where=str(recipe().path),
                         hint=f"architectures it builds for: {', '.join(arches)}")
    return arches[arch]


def check(spec: str, arch: str = DEFAULT) -> None:
    """What can be known without the network: the spec, the recipe's section for the
    architecture and the build tools on this machine."""
    parse_spec(spec)
    _check_tools(section(arch))


def _check_tools(part: dict) -> None:
    missing = [tool for tool in (*part["commands"], *part["toolchain"]) if not shutil.which(tool)]
    missing += [header for header in part.get("headers", []) if not Path(header).is_file()]
    if missing:
        raise ImageError(f"building a kernel from source needs {', '.join(missing)}, not found here",
                         where="kernel", hint="apt-get install " + " ".join(part["build_depends"]))


# ---------------------------------------------------------------- configuration

def parse_fragment(text: str, where: str) -> dict[str, str]:
    """{NAME: value} of a Kconfig fragment ('n' for '# CONFIG_X is not set'), read as
    kconfig.parse_config reads a .config; comment and blank lines are skipped, anything
    else is an error naming its line."""
    options: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if m := _OPTION.match(line):
            options[m[1] or m[3]] = m[2].strip('"') if m[1] else "n"
        elif line and not line.startswith("#"):
            raise ImageError(f"line {number} is not a Kconfig option: {line[:60]!r}", where=where,
                             hint="write CONFIG_NAME=VALUE or '# CONFIG_NAME is not set'")
    return options


def unmet(fragment: dict[str, str], config: dict[str, str]) -> list[str]:
    """The fragment's options the final .config does not have as asked, each with what it has."""
    wrong = []
    for name, wanted in fragment.items():
        got = config.get(name)
        if got == wanted or (got is None and wanted == "n"):
            continue
        asked = f"CONFIG_{name}=" + wanted if wanted != "n" else f"CONFIG_{name} off"
        has = ("not in the .config: a dependency is not met" if got is None
               else "the .config: is not set" if got == "n" else f"the .config: ={got}")
        wrong.append(f"{asked} ({has})")
    return wrong


def check_config(fragment_text: str, config_text: str, arch: str) -> None:
    """Fail naming every option of the fragment the configured tree dropped or changed
    (Kconfig silently drops an option whose dependencies are not met)."""
    where = f"{recipe().path}: arches.{arch}.fragment"
    wrong = unmet(parse_fragment(fragment_text, where), parse_config(config_text).options)
    if wrong:
        raise ImageError("the kernel's configuration lacks options the fragment asks for:\n    "
                         + "\n    ".join(wrong), where=where,
                         hint="each needs its dependencies in the fragment too (make menuconfig, "
                              "then search with '/', shows them)")


# ---------------------------------------------------------------- building

def toolchain(part: dict) -> list[str]:
    """The first line of each toolchain program's --version: part of the cache key."""
    _check_tools(part)
    lines = []
    for tool in part["toolchain"]:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
        lines.append(f"{tool}: {(out.splitlines() or ['?'])[0]}")
    return lines


def cache_key(deb_sha256: str, arch: str, part: dict, tools: list[str]) -> list[str]:
    return [BUILD_LAYOUT, deb_sha256, arch, json.dumps(part, sort_keys=True), *tools]


def build(spec: str, cache: Cache, arch: str = DEFAULT) -> Built:
    """The kernel image of `debian-source:SUITE/SERIES` for `arch`, built once and cached."""
    ss = parse_spec(spec)
    part = section(arch)
    tools = toolchain(part)
    apt = Apt(ss.suite, cache)
    apt.ensure_lists()
    known = apt.query("pkgnames", "linux-source-").split()
    if ss.package not in known:
        series = sorted(n.removeprefix("linux-source-") for n in known if re.fullmatch(r"linux-source-\d+\.\d+", n))
        raise ImageError(f"no {ss.package} in {ss.suite}", where=spec,
                         hint=f"series with a linux-source package in {ss.suite}: {', '.join(series) or 'none'}")
    pkg = apt.candidates([ss.package])[ss.package]
    deb = _cached_deb(apt, pkg, cache)
    started = time.monotonic()
    entry = cache.build("kernel-source", cache_key(pkg.sha256, arch, part, tools),
                        lambda d: _build(deb, pkg.name, pkg.version, ss, arch, part, d))
    info = json.loads((entry / INFO).read_text())
    if time.monotonic() - started > 1:
        say(f"Linux {info['release']} for {arch} built from {pkg.name} {pkg.version} "
            f"in {time.monotonic() - started:.0f} s")
    return Built(entry / Path(part["image"]).name, entry / "config", pkg.name, pkg.version,
                 info["release"], arch)


def _build(deb: Path, package: str, version: str, ss: SourceSpec, arch: str, part: dict,
           dest: Path) -> None:
    log = dest.parent / f"{dest.name.split('.tmp-')[0].lstrip('.')}.log"   # kept if it fails
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=dest) as work:
        tree = _unpack(deb, ss, Path(work))
        make = ["make", *part["make"], "KBUILD_BUILD_USER=seedchain", "KBUILD_BUILD_HOST=seedchain"]
        fragment = Path(work, "fragment.config")
        fragment.write_text(part["fragment"])
        say(f"Linux {ss.series} for {arch}: {recipe().data['base']} with the recipe's fragment")
        _make([*make, f"KCONFIG_ALLCONFIG={fragment}", recipe().data["base"]], tree, log, arch)
        check_config(part["fragment"], (tree / ".config").read_text(), arch)
        _make([*make, f"-j{os.cpu_count() or 1}", part["target"]], tree, log, arch)
        image = tree / part["image"]
        problem = image_problem(image, arch)
        if problem:
            raise ImageError(f"the build made no usable kernel image: {problem}", where=str(log),
                             hint="report this, with the build log")
        release = (tree / "include/config/kernel.release").read_text().strip()
        shutil.copy2(image, dest / image.name)
        shutil.copy2(tree / ".config", dest / "config")
        shutil.copy2(tree / "System.map", dest / "System.map")
    (dest / INFO).write_text(json.dumps({
        "package": package, "version": version, "suite": ss.suite, "arch": arch,
        "release": release, "base": recipe().data["base"], "make": part["make"],
        "target": part["target"]}, indent=2))
    log.unlink(missing_ok=True)


def _unpack(deb: Path, ss: SourceSpec, work: Path) -> Path:
    """The source tree from the package's tarball (only that member is read)."""
    member = "./" + recipe().data["source"]["tarball"].format(series=ss.series)
    tarball = work / Path(member).name

    def visit(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bool:
        src = tar.extractfile(info) if info.name == member else None
        if src is None:
            return False
        with src, open(tarball, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return True
    _scan_deb(deb, visit)
    if not tarball.is_file():
        raise ImageError(f"{deb.name} holds no {member}", where=str(deb),
                         hint="the package's layout changed: report this")
    meter = Meter(f"unpacking {tarball.name}", tarball.stat().st_size)
    with open(tarball, "rb") as raw, tarfile.open(fileobj=cast(IO[bytes], _Counted(raw, meter)), mode="r|xz") as tar:
        tar.extractall(work / "src", filter="data")
    meter.finish()
    tarball.unlink()
    (tree,) = [p for p in (work / "src").iterdir() if p.is_dir()]
    return tree


class _Counted:
    """A file object whose reads drive a Meter (bytes of the compressed tarball)."""

    def __init__(self, raw, meter: Meter):
        self.raw, self.meter = raw, meter

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.meter.update(self.raw.tell())
        return data


def _make(argv: list[str], tree: Path, log: Path, arch: str) -> None:
    """Run make in its own process group (killed with everything it started if this
    process is interrupted), its output to the log, its "  CC" lines counted."""
    what = argv[-1]
    compiled, started = 0, time.monotonic()
    last_line = started
    env = {**os.environ, "LC_ALL": "C"}
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(argv, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=env, process_group=0, preexec_fn=die_with_parent)
        except OSError as err:
            raise ImageError(f"cannot run make: {err.strerror}", where="kernel",
                             hint="apt-get install make") from None
        assert proc.stdout is not None         # stdout=PIPE
        try:
            for line in proc.stdout:
                out.write(line)
                if m := _COMPILED.match(line):
                    compiled += 1
                    now = time.monotonic()
                    text = (f"building Linux for {arch}: {compiled} files compiled "
                            f"({now - started:.0f} s; now {m[1].decode(errors='replace')})")
                    if now - last_line >= MILESTONE:
                        last_line = now
                        say(text)
                    else:
                        say(text, transient=True)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if compiled:
        say(f"building Linux for {arch}: {compiled} files compiled in {time.monotonic() - started:.0f} s")
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise ImageError(f"make {what} for {arch} failed (exit {rc}): {' / '.join(tail)[:400]}",
                         where="kernel", hint=f"the whole log is {log}")


def image_problem(path: Path, arch: str) -> str | None:
    """Why this file is not a kernel image of the architecture's boot format (the
    architecture's own reader says), or None."""
    try:
        get_arch(arch).read_kernel(path)
    except ImageError as exc:
        return exc.what
    return None
