# SPDX-License-Identifier: GPL-2.0-only
"""Kernels, their modules and the guest userland from Debian packages.

The packages come through harness.images.apt (a private apt configuration per
suite); what is extracted lands in content-addressed cache entries. What a
layer's userland holds is the recipe images/initramfs.yaml.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.images import elfdeps, kernel_source, recipes
from harness.images import kernel_builds
from harness.images.kernel_builds import fetch as _fetch_kernel
from harness.images.kernel_builds import abi_part
from harness.images.cache import Cache
from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.errors import ImageError

from harness.images.apt import (  # noqa: F401 (the Debian side of the images, in one place)
    DEFAULT_MIRROR, DEFAULT_SECURITY, HOST_ARCH, KEYRING, RELEASES, SUITES, Apt, Package,
    _cached_deb, _download, _run, _scan_deb)
from harness.images.debversion import compare_versions, upstream_version, version_key  # noqa: F401

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- data types

@dataclass(frozen=True)
class KernelImage:
    path: Path
    spec: str
    package: str
    version: str
    release: str  # uname -r, e.g. 6.1.0-41-amd64
    arch: str = DEFAULT  # the guest architecture (harness.arch), e.g. aarch64
    note: str = ""  # why this is not the newest build of the series (a fallback), if it is not


@dataclass(frozen=True)
class Userland:
    root: Path  # holds bin/busybox, sbin/kexec and the libraries kexec needs
    suite: str
    busybox_version: str
    kexec_tools_version: str
    arch: str = DEFAULT
    applets: tuple[str, ...] = ()   # busybox --list-full: where each applet's link goes


@dataclass(frozen=True)
class KernelSpec:
    suite: str
    series: str  # "6.1"


# ---------------------------------------------------------------- kernels

_SPEC = re.compile(r"debian:(?P<suite>[a-z-]+)/(?P<series>\d+\.\d+)")


def parse_kernel_spec(spec: str) -> KernelSpec:
    """'debian:bookworm/6.1' -> KernelSpec('bookworm', '6.1')."""
    m = _SPEC.fullmatch(spec.strip())
    if not m:
        raise ImageError(f"bad kernel spec {spec!r}", where=spec,
                         hint="write debian:SUITE/SERIES (e.g. debian:bookworm/6.1) "
                              "or the path of a bzImage file")
    if m["suite"] not in SUITES:
        raise ImageError(f"unknown Debian suite {m['suite']!r} in {spec!r}", where=spec,
                         hint=f"use one of: {', '.join(SUITES)}")
    return KernelSpec(m["suite"], m["series"])


def _pick_kernel(apt: Apt, ks: KernelSpec, arch: str = DEFAULT, fetch: bool = True) -> Package:
    """The newest generic kernel package of the series that the suite's index lists (from
    the backports archive itself for a -backports suite); the lists as they are when not
    `fetch`. Whether the mirror has its file is harness.images.kernel_builds.fetch's care."""
    return kernel_builds.indexed(apt, *kernel_builds.builds(apt, ks, arch, fetch)[0])


def _release_of(member: str) -> str | None:
    """uname -r from a kernel image's path in a package, or None if it is not one."""
    m = re.fullmatch(r"\.?/?(?:boot/vmlinuz-([^/]+)|(?:usr/)?lib/modules/([^/]+)/vmlinuz)", member)
    return (m[1] or m[2]) if m else None


def _extract_kernel(deb: Path, dest: Path) -> None:
    def visit(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bool:
        release = _release_of(member.name)
        src = tar.extractfile(member) if release is not None and member.isfile() else None
        if src is None:
            return False
        with src, open(dest / f"vmlinuz-{release}", "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return True
    _scan_deb(deb, visit)
    if not any(dest.glob("vmlinuz-*")):
        raise ImageError(f"{deb.name} holds no kernel image (/boot/vmlinuz-* or "
                         "/usr/lib/modules/*/vmlinuz)", where=str(deb),
                         hint="pick another kernel series or package")


def _debian_kernel(spec: str, cache: Cache, arch: str = DEFAULT) -> tuple[KernelImage, Apt, Package]:
    ks = parse_kernel_spec(spec)
    apt = Apt(ks.suite, cache, get_arch(arch).DEBIAN_ARCH)
    pkg, deb, note = _fetch_kernel(apt, ks, cache, arch)
    t0 = time.monotonic()
    entry = cache.build("kernel", [pkg.name, pkg.version, pkg.sha256],
                        lambda d: _extract_kernel(deb, d))
    log.debug("kernel of %s ready in %.1f s", pkg.name, time.monotonic() - t0)
    image = next(entry.glob("vmlinuz-*"))
    release = image.name.removeprefix("vmlinuz-")
    return KernelImage(image, spec, pkg.name, pkg.version, release, arch, note), apt, pkg


def resolve_kernel(spec: str, cache: Cache | None = None, arch: str = DEFAULT) -> KernelImage:
    """A kernel from `debian:SUITE/SERIES` (the arch's Debian package, downloaded, cached),
    `debian-source:SUITE/SERIES` (built for `arch` from that suite's linux-source-SERIES,
    cached) or a kernel file's path (a bzImage, an arm64 Image)."""
    cache = cache or Cache()
    if spec.startswith("debian:"):
        return _debian_kernel(spec, cache, arch)[0]
    if spec.startswith(kernel_source.PREFIX):
        built = kernel_source.build(spec, cache, arch)
        return KernelImage(built.path, spec, built.package, built.version, built.release)
    path = Path(spec).expanduser().absolute()
    release, version = get_arch(arch).read_kernel(path)
    return KernelImage(path, spec, "(file)", version, release, arch)


# ---------------------------------------------------------------- modules

def kernel_modules(spec: str, cache: Cache | None = None, arch: str = DEFAULT) -> Path | None:
    """The extracted lib/modules/RELEASE (or usr/lib/modules/RELEASE) tree of a Debian
    kernel spec; None for a bzImage path, for a kernel built from source (everything is
    built in: images/kernel/debian-source.yaml has no modules) or when the suite has no
    modules for it.

    Note: Debian runs depmod at install time, so there is no modules.dep in the tree.
    """
    cache = cache or Cache()
    if not spec.startswith("debian:"):
        return None
    image, apt, pkg = _debian_kernel(spec, cache, arch)
    sources = [pkg]
    if pkg.name.startswith("linux-binary-"):
        # sid-style: the image package carries no modules; linux-modules-ABI-ARCH does.
        abi = abi_part(pkg.name, "abi", arch)
        name = f"linux-modules-{abi}-{apt.arch}"
        versions = [v for n, v, _ in apt.madison([name]) if n == name]
        if not versions:
            return None
        version = pkg.version if pkg.version in versions else max(versions, key=version_key)
        sources.append(apt.show(f"{name}={version}")[name])
    debs = [_cached_deb(apt, p, cache) for p in sources]

    def extract(dest: Path) -> None:
        for deb in debs:
            _extract_modules(deb, image.release, dest)

    key = [image.release] + [f"{p.name}={p.version}:{p.sha256}" for p in sources]
    entry = cache.build("modules", key, extract)
    for tree in (entry / "lib/modules" / image.release, entry / "usr/lib/modules" / image.release):
        if (tree / "kernel").is_dir():
            return tree
    return None


def _extract_modules(deb: Path, release: str, dest: Path) -> None:
    prefixes = (f"./lib/modules/{release}/", f"./usr/lib/modules/{release}/")

    def visit(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bool:
        if member.name.startswith(prefixes) and _release_of(member.name) is None:
            # build/ and source/ are links to absolute paths of the build host: skipped.
            with contextlib.suppress(tarfile.FilterError):
                tar.extract(member, dest, filter="data")
        return False
    _scan_deb(deb, visit)


# ---------------------------------------------------------------- userland

_USERLAND_LAYOUT = "userland-1"  # bump when the tree's layout changes


def userland(suite: str, cache: Cache | None = None, arch: str = DEFAULT) -> Userland:
    """A tree with bin/busybox, sbin/kexec and what kexec needs to run, from `suite`'s
    packages of the architecture, and the list of busybox's applets."""
    cache = cache or Cache()
    apt = Apt(suite, cache, get_arch(arch).DEBIAN_ARCH)
    apt.ensure_lists()
    recipe = recipes.initramfs().data["userland"]
    wanted = apt.candidates(recipe["packages"])
    kexec, busybox = wanted["kexec-tools"], wanted["busybox-static"]
    # Keyed by the two packages; the libraries come with the suite's lists when built.
    key = [_USERLAND_LAYOUT, recipes.initramfs().digest, suite,
           *(f"{p.name}={p.version}:{p.sha256}" for p in (kexec, busybox))]
    if apt.arch != HOST_ARCH:
        key.append(apt.arch)        # the amd64 trees keep the keys they had before there were others
    root = cache.build("userland", key, lambda d: _build_userland(apt, cache, d, arch))
    return Userland(root, suite, busybox.version, kexec.version, arch,
                    _applets(root, busybox, suite, cache, arch))


def _runs_here(arch: str) -> bool:
    """Whether the host can run the architecture's binaries (the same machine; this
    project assumes no binfmt emulation)."""
    return platform.machine() == get_arch(arch).NAME


def _build_userland(apt: Apt, cache: Cache, root: Path, arch: str = DEFAULT) -> None:
    # The work folder inside the entry being built: the cache's file system (where room was
    # asked for), and if the build is killed it goes with the entry's folder (Cache.sweep).
    target = get_arch(arch)
    with tempfile.TemporaryDirectory(prefix=".userland-", dir=root) as work:
        stage = Path(work, "stage")
        recipe = recipes.initramfs().data["userland"]
        packages = apt.closure(recipe["packages"])
        for deb in _download(apt, packages, Path(work, "debs")).values():
            _run(["dpkg-deb", "-x", str(deb), str(stage)], what=f"unpacking {deb.name}",
                 hint="apt-get install dpkg; or remove the cache entry and run again")
        for target_path, candidates in recipe["files"].items():
            _install(_find(stage, *candidates), root / target_path)
        for binary in recipe["libraries_of"]:
            found = _find(stage, *recipe["files"][binary])
            # The loader goes where the program asks for it (PT_INTERP: /lib64/ld-linux-x86-64.so.2,
            # /lib/ld-linux-aarch64.so.1), from wherever the package put it.
            interp = elfdeps.interpreter(found) or f"/{target.LIBDIR}/{target.LOADER}"
            loader = _find(stage, interp, f"usr/{interp}", f"{target.LIBDIR}/{target.LOADER}",
                           f"usr/{target.LIBDIR}/{target.LOADER}")
            _install(loader, root / interp.lstrip("/"))
            if _runs_here(arch):
                needed = _needed_libraries(stage, loader, found, target)
            else:
                needed = elfdeps.closure(found, _library_search(stage, _libdirs(stage, target)), target.LOADER)
            for soname, path in needed.items():
                _install(path, root / target.LIBDIR / soname)


def _libdirs(stage: Path, target) -> list[str]:
    """The staged folders the loader searches (Debian's multiarch ones first), relative to the stage."""
    return [d for d in (target.LIBDIR, f"usr/{target.LIBDIR}", "lib", "usr/lib") if (stage / d).is_dir()]


def _library_search(stage: Path, libdirs: list[str]) -> elfdeps.Candidates:
    """Where the loader looks for a soname: the library folders, then the needing object's
    own RUNPATH, every path resolved inside the stage (never the host's files)."""
    def candidates(soname: str, parent: elfdeps.ElfInfo):
        origin = "/" + str(parent.path.parent.relative_to(stage)) if parent.path.is_relative_to(stage) else "/"
        for folder in [*libdirs, *(d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin) for d in parent.runpath)]:
            if (found := _resolve_in(stage, f"{folder.strip('/')}/{soname}")) is not None:
                yield found
    return candidates


def _applets(root: Path, busybox: Package, suite: str, cache: Cache, arch: str) -> tuple[str, ...]:
    """busybox's applets with their paths (`busybox --list-full`). Another architecture's
    busybox cannot run here: the host architecture's busybox-static of the same version
    lists them instead. Debian builds every architecture's busybox-static from one source
    package with one configuration (debian/config/pkg/static), so both have the same
    applets; a binNMU (+bN) is a rebuild of that same source."""
    if _runs_here(arch):
        return _list_applets(root / "bin" / "busybox")
    host = Apt(suite, cache)
    host.ensure_lists()
    twin = _same_source_version(host, busybox)
    entry = cache.build("busybox-applets", ["applets/v1", twin.name, twin.version, twin.sha256],
                        lambda d: _write_applets(host, twin, cache, d))
    return tuple((entry / "applets").read_text().split())


def _same_source_version(host: Apt, pkg: Package) -> Package:
    base = re.sub(r"\+b\d+$", "", pkg.version)
    rows = [v for n, v, _ in host.madison([pkg.name]) if n == pkg.name]
    same = [v for v in rows if v == pkg.version] or [v for v in rows if re.sub(r"\+b\d+$", "", v) == base]
    if not same:
        raise ImageError(f"{pkg.name} {pkg.version} ({host.suite}) has no {host.arch} build of the same "
                         f"version to list its applets with (there: {', '.join(rows) or 'none'})",
                         where=host.suite, hint="the suite is between uploads (sid?): try again later "
                                                "or use another userland suite")
    return host.show(f"{pkg.name}={same[0]}")[pkg.name]


def _write_applets(host: Apt, twin: Package, cache: Cache, entry: Path) -> None:
    deb = _cached_deb(host, twin, cache)
    recipe = recipes.initramfs().data["userland"]
    with tempfile.TemporaryDirectory(prefix=".busybox-", dir=entry) as work:
        _run(["dpkg-deb", "-x", str(deb), work], what=f"unpacking {deb.name}",
             hint="apt-get install dpkg; or remove the cache entry and run again")
        listing = _list_applets(_find(Path(work), *recipe["files"]["bin/busybox"]))
    (entry / "applets").write_text("\n".join(listing) + "\n")


def _list_applets(busybox: Path) -> tuple[str, ...]:
    try:
        listing = subprocess.run([str(busybox), "--list-full"], capture_output=True,
                                 text=True, check=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageError(f"cannot list the applets of {busybox}: {exc}", where=str(busybox),
                         hint="report this, with the suite you asked for") from None
    return tuple(sorted(set(listing)))


def _find(stage: Path, *candidates: str) -> Path:
    """The first of these paths that exists in the stage (symlinks resolved inside it)."""
    for rel in candidates:
        if (path := _resolve_in(stage, rel)) is not None:
            return path
    raise ImageError(f"none of {', '.join(candidates)} is in the unpacked packages",
                     where=str(stage), hint="the suite's package layout changed: report this")


def _resolve_in(stage: Path, rel: str) -> Path | None:
    """Resolve rel as if stage were /: absolute symlinks (libc6's /lib64/ld-linux...)
    must not escape to the host's files."""
    parts, path, hops = list(Path(rel).parts), stage, 0
    while parts:
        part = parts.pop(0)
        if part in ("", "/", "."):
            continue
        if part == "..":
            path = path.parent if path != stage else stage
            continue
        path = path / part
        if path.is_symlink():
            hops += 1
            target = os.readlink(path)
            if hops > 40:
                return None
            parts = list(Path(target).parts) + parts
            path = stage if target.startswith("/") else path.parent
    return path if path.is_file() else None


def _needed_libraries(stage: Path, loader: Path, binary: Path, target) -> dict[str, Path]:
    """{soname: file} of what binary loads, as the staged loader itself resolves it
    (only from the staged library folders, never from the host's): for the host's
    architecture, whose loader runs here."""
    libdirs = [str(stage / d) for d in _libdirs(stage, target)]
    argv = [str(loader), "--inhibit-cache", "--library-path", ":".join(libdirs),
            "--list", str(binary)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except OSError as err:
        raise ImageError(f"cannot run the staged {target.LOADER}: {err}", where=str(loader),
                         hint="report this, with the suite you asked for") from None
    missing = re.findall(r"^\s*(\S+) => not found", proc.stdout, re.M)
    if missing:
        raise ImageError(f"{binary.name} needs {', '.join(missing)}, which no unpacked "
                         "package provides", where=str(binary),
                         hint="kexec-tools' dependencies changed: report this")
    if proc.returncode != 0:
        raise ImageError(f"the staged {target.LOADER} could not list the libraries of "
                         f"{binary.name}: {proc.stderr.strip()}", where=str(loader),
                         hint="report this, with the suite you asked for")
    needed: dict[str, Path] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$", line)
        if not m or m[1].endswith(target.LOADER):
            continue  # linux-vdso.so.1 and the loader itself
        if not Path(m[2]).is_relative_to(stage):
            raise ImageError(f"{binary.name} would load {m[2]} from the host", where=str(binary),
                             hint="kexec-tools' dependencies changed: report this")
        found = _resolve_in(stage, str(Path(m[2]).relative_to(stage)))
        if found is None:
            raise ImageError(f"{m[2]} (needed by {binary.name}) leads out of the unpacked "
                             "packages", where=str(binary), hint="report this")
        needed[m[1]] = found
    return needed


def _install(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)  # copies the file a symlink points at, with its mode
