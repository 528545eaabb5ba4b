"""Kernels, their modules and the guest userland from Debian packages.

The packages come through harness.images.apt (a private apt configuration per
suite); what is extracted lands in content-addressed cache entries. What a
layer's userland holds is the recipe images/initramfs.yaml.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.images import kernel_source, recipes
from harness.images.cache import Cache
from harness.arch import x86_64 as X86  # the amd64 archive; arm64 beside it later
from harness.errors import ImageError

from harness.images.apt import (  # noqa: F401 (the Debian side of the images, in one place)
    DEFAULT_MIRROR, DEFAULT_SECURITY, KEYRING, RELEASES, SUITES, Apt, Package, _cached_deb,
    _download, _run, _scan_deb, compare_versions, upstream_version, version_key)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- data types

@dataclass(frozen=True)
class KernelImage:
    path: Path
    spec: str
    package: str
    version: str
    release: str  # uname -r, e.g. 6.1.0-41-amd64


@dataclass(frozen=True)
class Userland:
    root: Path  # holds bin/busybox, sbin/kexec and the libraries kexec needs
    suite: str
    busybox_version: str
    kexec_tools_version: str


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


def _kernel_abi(name: str) -> re.Match | None:
    for pattern in X86.KERNEL_PACKAGES:
        if m := pattern.fullmatch(name):
            return m
    return None


def _pick_kernel(apt: Apt, ks: KernelSpec) -> Package:
    """The newest generic kernel package of the series (from the backports archive
    itself for a -backports suite)."""
    apt.ensure_lists()
    names = [n for n in apt.query("pkgnames", "linux-").split() if _kernel_abi(n)]
    rows = [r for r in apt.madison(names)
            if not ks.suite.endswith("-backports") or r[2] == ks.suite]
    ours = [r for r in rows if _kernel_abi(r[0])["series"] == ks.series]
    if not ours:
        series = sorted({_kernel_abi(r[0])["series"] for r in rows}, key=version_key)
        raise ImageError(f"no Debian kernel of series {ks.series} in {ks.suite}",
                         where=f"debian:{ks.suite}/{ks.series}",
                         hint=f"series in {ks.suite}: {', '.join(series) or 'none'}")
    name, version, archive = max(ours, key=lambda r: version_key(r[1]))
    pkg = apt.show(f"{name}={version}")[name]
    return Package(pkg.name, pkg.version, pkg.sha256, pkg.size, archive)


def _release_of(member: str) -> str | None:
    """uname -r from a kernel image's path in a package, or None if it is not one."""
    m = re.fullmatch(r"\.?/?(?:boot/vmlinuz-([^/]+)|(?:usr/)?lib/modules/([^/]+)/vmlinuz)", member)
    return (m[1] or m[2]) if m else None


def _extract_kernel(deb: Path, dest: Path) -> None:
    def visit(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bool:
        release = _release_of(member.name)
        if release is None or not member.isfile():
            return False
        with tar.extractfile(member) as src, open(dest / f"vmlinuz-{release}", "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return True
    _scan_deb(deb, visit)
    if not any(dest.glob("vmlinuz-*")):
        raise ImageError(f"{deb.name} holds no kernel image (/boot/vmlinuz-* or "
                         "/usr/lib/modules/*/vmlinuz)", where=str(deb),
                         hint="pick another kernel series or package")


def _debian_kernel(spec: str, cache: Cache) -> tuple[KernelImage, Apt, Package]:
    ks = parse_kernel_spec(spec)
    apt = Apt(ks.suite, cache)
    pkg = _pick_kernel(apt, ks)
    deb = _cached_deb(apt, pkg, cache)
    t0 = time.monotonic()
    entry = cache.build("kernel", [pkg.name, pkg.version, pkg.sha256],
                        lambda d: _extract_kernel(deb, d))
    log.debug("kernel of %s ready in %.1f s", pkg.name, time.monotonic() - t0)
    image = next(entry.glob("vmlinuz-*"))
    release = image.name.removeprefix("vmlinuz-")
    return KernelImage(image, spec, pkg.name, pkg.version, release), apt, pkg


def resolve_kernel(spec: str, cache: Cache | None = None, arch: str = "x86_64") -> KernelImage:
    """A kernel from `debian:SUITE/SERIES` (downloaded, cached), `debian-source:SUITE/SERIES`
    (built for `arch` from that suite's linux-source-SERIES, cached) or a bzImage path."""
    cache = cache or Cache()
    if spec.startswith("debian:"):
        return _debian_kernel(spec, cache)[0]
    if spec.startswith(kernel_source.PREFIX):
        built = kernel_source.build(spec, cache, arch)
        return KernelImage(built.path, spec, built.package, built.version, built.release)
    path = Path(spec).expanduser().absolute()
    release, version = X86.read_kernel(path)
    return KernelImage(path, spec, "(file)", version, release)


# ---------------------------------------------------------------- modules

def kernel_modules(spec: str, cache: Cache | None = None) -> Path | None:
    """The extracted lib/modules/RELEASE (or usr/lib/modules/RELEASE) tree of a Debian
    kernel spec; None for a bzImage path, for a kernel built from source (everything is
    built in: images/kernel/debian-source.yaml has no modules) or when the suite has no
    modules for it.

    Note: Debian runs depmod at install time, so there is no modules.dep in the tree.
    """
    cache = cache or Cache()
    if not spec.startswith("debian:"):
        return None
    image, apt, pkg = _debian_kernel(spec, cache)
    sources = [pkg]
    if pkg.name.startswith("linux-binary-"):
        # sid-style: the image package carries no modules; linux-modules-ABI-amd64 does.
        abi = _kernel_abi(pkg.name)["abi"]
        name = f"linux-modules-{abi}-amd64"
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


def userland(suite: str, cache: Cache | None = None) -> Userland:
    """A tree with bin/busybox, sbin/kexec and what kexec needs to run, from `suite`."""
    cache = cache or Cache()
    apt = Apt(suite, cache)
    apt.ensure_lists()
    recipe = recipes.initramfs().data["userland"]
    wanted = apt.candidates(recipe["packages"])
    kexec, busybox = wanted["kexec-tools"], wanted["busybox-static"]
    # Keyed by the two packages; the libraries come with the suite's lists when built.
    key = [_USERLAND_LAYOUT, recipes.initramfs().digest, suite] + [f"{p.name}={p.version}:{p.sha256}" for p in (kexec, busybox)]
    root = cache.build("userland", key, lambda d: _build_userland(apt, cache, d))
    return Userland(root, suite, busybox.version, kexec.version)


def _build_userland(apt: Apt, cache: Cache, root: Path) -> None:
    # The work folder inside the entry being built: the cache's file system (where room was
    # asked for), and if the build is killed it goes with the entry's folder (Cache.sweep).
    with tempfile.TemporaryDirectory(prefix=".userland-", dir=root) as work:
        stage = Path(work, "stage")
        recipe = recipes.initramfs().data["userland"]
        packages = apt.closure(recipe["packages"])
        for deb in _download(apt, packages, Path(work, "debs")).values():
            _run(["dpkg-deb", "-x", str(deb), str(stage)], what=f"unpacking {deb.name}",
                 hint="apt-get install dpkg; or remove the cache entry and run again")
        for target, candidates in recipe["files"].items():
            _install(_find(stage, *candidates), root / target)
        loader = _find(stage, f"{X86.LIBDIR}/{X86.LOADER}", f"usr/{X86.LIBDIR}/{X86.LOADER}",
                       f"lib64/{X86.LOADER}", f"usr/lib64/{X86.LOADER}")
        _install(loader, root / "lib64" / X86.LOADER)
        for binary in recipe["libraries_of"]:
            found = _find(stage, *recipe["files"][binary])
            for soname, path in _needed_libraries(stage, loader, found).items():
                _install(path, root / X86.LIBDIR / soname)


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


def _needed_libraries(stage: Path, loader: Path, binary: Path) -> dict[str, Path]:
    """{soname: file} of what binary loads, as the staged loader itself resolves it
    (only from the staged library folders, never from the host's)."""
    libdirs = [str(stage / d) for d in (X86.LIBDIR, f"usr/{X86.LIBDIR}", "lib", "usr/lib")
               if (stage / d).is_dir()]
    argv = [str(loader), "--inhibit-cache", "--library-path", ":".join(libdirs),
            "--list", str(binary)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except OSError as err:
        raise ImageError(f"cannot run the staged {X86.LOADER}: {err}", where=str(loader),
                         hint="report this, with the suite you asked for") from None
    missing = re.findall(r"^\s*(\S+) => not found", proc.stdout, re.M)
    if missing:
        raise ImageError(f"{binary.name} needs {', '.join(missing)}, which no unpacked "
                         "package provides", where=str(binary),
                         hint="kexec-tools' dependencies changed: report this")
    if proc.returncode != 0:
        raise ImageError(f"the staged {X86.LOADER} could not list the libraries of "
                         f"{binary.name}: {proc.stderr.strip()}", where=str(loader),
                         hint="report this, with the suite you asked for")
    needed: dict[str, Path] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$", line)
        if not m or m[1].endswith(X86.LOADER):
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
