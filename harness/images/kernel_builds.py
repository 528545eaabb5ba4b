# SPDX-License-Identifier: GPL-2.0-only
"""Which build of a Debian kernel series a layer gets: the newest its suite's index lists
that the mirror has.

An index can name a package the mirror does not have (HTTP 404: bullseye's security
archive listed arm64 5.10.262-1 while its file was missing). Then an older build of the
same series is taken (an older ABI, or the main archive's build), the layer's kernel
record says which and why (KernelImage.note, kernel_note in the result), and only when
none of the newest few can be had does the set-up fail.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.errors import ImageError
from harness.images.apt import Apt, NotOnMirror, Package, _cached_deb
from harness.images.cache import Cache
from harness.images.debversion import version_key
from harness.progress import say


def kernel_abi(name: str, arch: str = DEFAULT) -> re.Match[str] | None:
    for pattern in get_arch(arch).KERNEL_PACKAGES:
        if m := pattern.fullmatch(name):
            return m
    return None


def abi_part(name: str, part: str, arch: str = DEFAULT) -> str:
    """One part ("abi", "series") of a name known to be a kernel package's."""
    found = kernel_abi(name, arch)
    if found is None:
        raise ValueError(f"{name} is not a {arch} kernel package name")
    return found[part]


def builds(apt: Apt, ks, arch: str = DEFAULT, fetch: bool = True) -> list[tuple[str, str, str]]:
    """(name, version, archive) of the generic kernel packages of the series in the
    suite's index, newest first, one per name and version (from the backports archive
    itself for a -backports suite); the lists as they are when not `fetch`."""
    if fetch:
        apt.ensure_lists()
    names = [n for n in apt.query("pkgnames", "linux-").split() if kernel_abi(n, arch)]
    rows = [r for r in apt.madison(names)
            if not ks.suite.endswith("-backports") or r[2] == ks.suite]
    ours = [r for r in rows if abi_part(r[0], "series", arch) == ks.series]
    if not ours:
        series = sorted({abi_part(r[0], "series", arch) for r in rows}, key=version_key)
        raise ImageError(f"no Debian {get_arch(arch).DEBIAN_ARCH} kernel of series {ks.series} in {ks.suite}",
                         where=f"debian:{ks.suite}/{ks.series}",
                         hint=f"series in {ks.suite}: {', '.join(series) or 'none'}")
    builds: dict[tuple[str, str], str] = {}
    for name, version, archive in sorted(ours, key=lambda r: version_key(r[1]), reverse=True):
        builds.setdefault((name, version), archive)
    return [(name, version, archive) for (name, version), archive in builds.items()]


def indexed(apt: Apt, name: str, version: str, archive: str) -> Package:
    pkg = apt.show(f"{name}={version}")[name]
    return Package(pkg.name, pkg.version, pkg.sha256, pkg.size, archive)


# Older builds of a series tried when the newest is not on the mirror, before giving up (bullseye
# arm64 5.10, 2026-12: the security archive's last four builds all missing, the main archive's there).
FALLBACKS = 8
# (name, version, sha256) of packages found missing on the mirror by this process, so the
# several calls of one run for a layer's kernel (image, modules) ask the mirror once.
MISSING: dict[tuple[str, str, str], str] = {}


def fetch(apt: Apt, ks, cache: Cache, arch: str) -> tuple[Package, Path, str]:
    """The newest build of the series that the mirror has, its .deb and a note that says
    which builds were passed over and why (empty for the newest). Where the index names
    a package the mirror does not have (HTTP 404), an older build of the same series (an
    older ABI, the main archive's build under the security archive's) is taken instead."""
    found = builds(apt, ks, arch)
    skipped: list[str] = []
    for row in found[:1 + FALLBACKS]:
        pkg = indexed(apt, *row)
        key = (pkg.name, pkg.version, pkg.sha256)
        if key not in MISSING:
            try:
                deb = _cached_deb(apt, pkg, cache)
            except NotOnMirror as err:
                MISSING[key] = err.what
            else:
                note = ""
                if skipped:
                    note = (f"{pkg.name} {pkg.version} ({pkg.archive}) instead of the newest "
                            f"{', '.join(skipped)}: not on the mirror {apt.mirror} / {apt.security} "
                            "(HTTP 404), though the index lists it")
                    say(f"debian:{ks.suite}/{ks.series}: {note}")
                return pkg, deb, note
        skipped.append(f"{pkg.name} {pkg.version} ({pkg.archive})")
    tried = found[:1 + FALLBACKS]
    raise ImageError(f"no build of Debian's {get_arch(arch).DEBIAN_ARCH} {ks.series} kernel in "
                     f"{apt.label} could be downloaded: the mirror has none of the {len(tried)} newest "
                     f"its index lists ({', '.join(skipped)}: HTTP 404)",
                     where=f"debian:{ks.suite}/{ks.series}",
                     hint=f"the mirror ({apt.mirror}, {apt.security}) is behind its index; try again "
                          "later, or set SEEDCHAIN_DEBIAN_MIRROR / SEEDCHAIN_DEBIAN_SECURITY to another mirror")
