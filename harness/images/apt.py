# SPDX-License-Identifier: GPL-2.0-only
"""Debian's archive under a private apt configuration: package lists, versions, downloads.

Only apt-get/apt-cache (under a private apt configuration per suite, kept in the
cache directory, so the host's apt state is never read or written) and dpkg-deb
are used. Every download lands in a content-addressed cache entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.images.cache import Cache, sha256_file
from harness.errors import ImageError
from harness.progress import Meter

log = logging.getLogger(__name__)

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
RELEASES = ("bullseye", "bookworm", "trixie")
SUITES = (*RELEASES, *(f"{r}-backports" for r in RELEASES), "sid")
REFRESH_SECONDS = 24 * 3600
ANSWERS = "answers"              # apt-cache answers kept per state of the lists (Apt.query)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
HOST_ARCH = "amd64"              # the Debian architecture of the machines seedchain runs on


# ---------------------------------------------------------------- packages

@dataclass(frozen=True)
class Package:
    name: str
    version: str
    sha256: str
    size: int
    archive: str  # e.g. "bookworm-security"


# ---------------------------------------------------------------- subprocess

_NO_SPACE = "No space left on device"       # strerror(ENOSPC), as apt-get and dpkg-deb say it


def _run(argv: Sequence[str], *, what: str, hint: str, env: dict | None = None,
         cwd: Path | None = None, meter: Meter | None = None, watch: Path | None = None,
         place: Path | None = None) -> str:
    """Run a tool; any failure becomes an ImageError carrying the tool's last words. With
    a meter, the bytes under `watch` (a download's folder) are its progress meanwhile. A
    full disk is said as such, naming `place` (where the tool writes), and not retried."""
    try:
        if meter is None:
            proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        else:
            proc = _metered(argv, env, cwd, meter, watch or Path(cwd or "."))
    except FileNotFoundError:
        package = {"dpkg-deb": "dpkg", "apt-get": "apt", "apt-cache": "apt"}.get(argv[0])
        raise ImageError(f"{argv[0]} was not found", where=argv[0],
                         hint=f"apt-get install {package}" if package else hint) from None
    if proc.returncode != 0 and _NO_SPACE in f"{proc.stderr}{proc.stdout}":
        folder = place or watch or cwd
        raise ImageError(f"{what} failed: no space left on the device"
                         + (f" holding {folder}" if folder else ""), where=str(folder or argv[0]),
                         hint="free some space there (or set SEEDCHAIN_CACHE to a folder with room) "
                              "and run again")
    if proc.returncode != 0:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise ImageError(f"{what} failed ({argv[0]} exit {proc.returncode}):\n    {tail}",
                         where=argv[0], hint=hint, transient=argv[0] == "apt-get")
    return proc.stdout


def _metered(argv: Sequence[str], env: dict | None, cwd: Path | None, meter: Meter,
             watch: Path) -> subprocess.CompletedProcess:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        while proc.poll() is None:
            time.sleep(0.25)
            meter.update(sum(f.stat().st_size for f in watch.rglob("*") if f.is_file()))
        meter.finish()
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())


def _short(packages: Sequence[Package]) -> str:
    names = [p.name for p in packages]
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} and {len(names) - 1} more packages"


# ---------------------------------------------------------------- private apt

def _atomic_write(path: Path, text: str) -> bool:
    """Write if different; True if the file changed."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


class Apt:
    """apt-get/apt-cache for one suite and Debian architecture with its own configuration
    under CACHE/apt/SUITE (amd64) or CACHE/apt/SUITE-ARCH (e.g. bookworm-arm64).

    Its own sources list, lists, archives and an empty dpkg status; APT_CONFIG
    points at its own apt.conf and Dir::Etc::Parts at an empty folder, so neither
    the host's sources nor its apt.conf.d snippets (proxies, Contents fetching,
    ...) nor its dpkg database come into play. Another architecture's packages are
    only downloaded and unpacked, never installed, so apt needs no foreign-architecture
    setup: its one architecture is that one.
    """

    def __init__(self, suite: str, cache: Cache, arch: str = HOST_ARCH):
        if suite not in SUITES:
            raise ImageError(f"unknown Debian suite {suite!r}", where=suite,
                             hint=f"use one of: {', '.join(SUITES)}")
        if not re.fullmatch(r"[a-z0-9]+", arch):
            raise ValueError(f"not a Debian architecture name: {arch!r}")
        self.suite = suite
        self.arch = arch
        self.dir = cache.root / "apt" / (suite if arch == HOST_ARCH else f"{suite}-{arch}")
        self.mirror = os.environ.get("SEEDCHAIN_DEBIAN_MIRROR") or DEFAULT_MIRROR
        self.security = os.environ.get("SEEDCHAIN_DEBIAN_SECURITY") or DEFAULT_SECURITY

    @property
    def label(self) -> str:
        """The suite, and its architecture when it is not the host's: for messages."""
        return self.suite if self.arch == HOST_ARCH else f"{self.suite} ({self.arch})"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.dir / "apt.conf"), "LC_ALL": "C"}

    def sources(self) -> str:
        opts = f"[signed-by={KEYRING} arch={self.arch}]"
        if self.suite == "sid":
            lines = [f"deb {opts} {self.mirror} sid main"]
        else:
            base = self.suite.removesuffix("-backports")
            lines = [f"deb {opts} {self.mirror} {base} main",
                     f"deb {opts} {self.mirror} {base}-updates main",
                     f"deb {opts} {self.security} {base}-security main"]
            if self.suite.endswith("-backports"):
                lines.append(f"deb {opts} {self.mirror} {self.suite} main")
        return "\n".join(lines) + "\n"

    def conf(self) -> str:
        d = self.dir
        lines = [
            f'Dir::Etc::main "{d}/apt.conf";',
            f'Dir::Etc::Parts "{d}/empty";',
            f'Dir::Etc::SourceList "{d}/sources.list";',
            f'Dir::Etc::SourceParts "{d}/empty";',
            f'Dir::Etc::Preferences "{d}/empty/preferences";',
            f'Dir::Etc::PreferencesParts "{d}/empty";',
            f'Dir::Etc::TrustedParts "{d}/empty";',
            f'Dir::State "{d}/state";',
            f'Dir::State::lists "{d}/lists";',
            f'Dir::State::status "{d}/status";',
            f'Dir::Cache "{d}/cache";',
            'Dir::Cache::srcpkgcache "";',  # a 50 MB copy of pkgcache.bin we never need
            f'APT::Architecture "{self.arch}";',
            f'APT::Architectures {{ "{self.arch}"; }};',
            'Acquire::Languages "none";',
            # As root apt would download as _apt, who cannot write into our cache.
            'APT::Sandbox::User "root";',
        ]
        if self.suite == "sid":
            # sid's Release file is served past its Valid-Until date.
            lines.append('Acquire::Check-Valid-Until "false";')
        return "\n".join(lines) + "\n"

    def _has_lists(self) -> bool:
        # "updated" is touched only after a complete `apt-get update`.
        return (self.dir / "updated").exists() and any((self.dir / "lists").glob("*_Packages*"))

    def _fresh(self) -> bool:
        try:
            age = time.time() - (self.dir / "updated").stat().st_mtime
        except OSError:
            return False
        return age < REFRESH_SECONDS and self._has_lists()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.dir / "seedchain.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def ensure_lists(self) -> None:
        """Fetch the package lists when missing or older than a day (once, under a lock)."""
        offline = os.environ.get("SEEDCHAIN_OFFLINE") == "1"
        if (self._fresh() or (offline and self._has_lists())) and self._config_current():
            return
        try:
            for sub in ("empty", "state", "lists/partial", "cache/archives/partial"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ImageError(f"cannot create {self.dir}: {err.strerror}", where="cache",
                             hint="set SEEDCHAIN_CACHE to a writable directory with free space"
                             ) from None
        with self._lock():
            changed = _atomic_write(self.dir / "sources.list", self.sources())
            changed |= _atomic_write(self.dir / "apt.conf", self.conf())
            (self.dir / "status").touch()  # an empty dpkg status: nothing is installed
            if changed:
                (self.dir / "updated").unlink(missing_ok=True)
            had_lists = self._has_lists()
            if self._fresh() or (offline and had_lists):
                return
            if offline:
                raise ImageError(f"no package lists for {self.suite} yet and SEEDCHAIN_OFFLINE=1",
                                 where=self.suite, hint="run once without SEEDCHAIN_OFFLINE=1")
            try:
                # --error-on=any: without it a mirror that cannot be reached is a mere warning.
                self.get("update", "--error-on=any", what=f"fetching the {self.label} package lists")
            except ImageError as err:
                if "does not have a Release file" in err.what:
                    err.hint = (f"the mirror {self.mirror} does not carry {self.suite} (any more): "
                                "old suites move to archive.debian.org; set "
                                "SEEDCHAIN_DEBIAN_MIRROR to a mirror that has it")
                if not had_lists:
                    raise
                # Keep working from the old lists rather than fail offline, and try
                # again in an hour, not on every call (apt's retries take seconds).
                log.warning("%s\nusing the %s package lists from before", err, self.suite)
                retry = time.time() - REFRESH_SECONDS + 3600
                os.utime(self.dir / "updated", (retry, retry))
                return
            (self.dir / "updated").touch()
            shutil.rmtree(self.dir / ANSWERS, ignore_errors=True)    # answers from the old lists

    def _config_current(self) -> bool:
        try:
            return ((self.dir / "sources.list").read_text() == self.sources()
                    and (self.dir / "apt.conf").read_text() == self.conf())
        except OSError:
            return False

    def get(self, *args: str, what: str, cwd: Path | None = None, hint: str | None = None,
            meter: Meter | None = None, watch: Path | None = None) -> str:
        return _run(["apt-get", "-q", *args], env=self.env, cwd=cwd, what=what, meter=meter, watch=watch,
                    place=cwd or self.dir,
                    hint=hint or (
            f"check the network and the mirror ({self.mirror}, {self.security}; "
            "set SEEDCHAIN_DEBIAN_MIRROR / SEEDCHAIN_DEBIAN_SECURITY to use another)"))

    def query(self, *args: str) -> str:
        """apt-cache's answer, kept until the lists are fetched again: a warm run asks none."""
        try:
            lists = (self.dir / "updated").stat().st_mtime_ns
        except OSError:
            lists = None
        kept = None
        if lists is not None:
            key = hashlib.sha256("\0".join((str(lists), self.sources(), self.conf(), *args)).encode())
            kept = self.dir / ANSWERS / key.hexdigest()[:32]
            try:
                return kept.read_text()
            except OSError:
                pass
        out = _run(["apt-cache", *args], env=self.env, what=f"apt-cache {args[0]} ({self.suite})",
                   hint=f"remove {self.dir} to fetch the package lists again")
        if kept is not None:
            try:
                kept.parent.mkdir(exist_ok=True)
                _atomic_write(kept, out)
            except OSError:
                pass            # a read-only or full cache: the answer is not kept, nothing else
        return out

    def show(self, *pins: str) -> dict[str, Package]:
        """Index records for `name=version` pins, keyed by name."""
        found: dict[str, Package] = {}
        for stanza in self.query("show", *pins).split("\n\n"):
            fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
            if "Package" in fields and fields["Package"] not in found:
                found[fields["Package"]] = Package(
                    fields["Package"], fields["Version"], fields.get("SHA256", ""),
                    int(fields.get("Size", 0)), "")
        return found

    def madison(self, names: Sequence[str]) -> list[tuple[str, str, str]]:
        """(name, version, archive) for every version of these packages in the lists."""
        rows = []
        for line in self.query("madison", *names).splitlines() if names else ():
            name, version, source = (f.strip() for f in line.split("|"))
            # source: "http://deb.debian.org/debian bookworm-backports/main amd64 Packages"
            rows.append((name, version, source.split()[1].split("/")[0]))
        return rows

    def candidates(self, names: Sequence[str]) -> dict[str, Package]:
        """The version apt would install of each package, with its index record."""
        pins = []
        for name in names:
            m = re.search(r"^  Candidate: (\S+)$", self.query("policy", name), re.M)
            if not m or m[1] == "(none)":
                raise ImageError(f"package {name} is not in {self.label}", where=self.suite,
                                 hint="pick another suite")
            pins.append(f"{name}={m[1]}")
        return self.show(*pins)

    def closure(self, names: Sequence[str]) -> list[Package]:
        """names plus everything they depend on, as apt's resolver picks it (pre-depends
        and depends, no recommends; one real package for each alternative or virtual
        name), computed against the empty dpkg status: a simulated install."""
        out = self.get("install", "--simulate", "--no-install-recommends", *names,
                       what=f"resolving the dependencies of {', '.join(names)} in {self.label}",
                       hint=f"{self.suite} may be in flux (sid); try again later or another suite")
        pins = [f"{n}={v}" for n, v in re.findall(r"^Inst (\S+) \((\S+) ", out, re.M)]
        return list(self.show(*pins).values())


# ---------------------------------------------------------------- downloads

class NotOnMirror(ImageError):
    """The archive's index names the package, but the mirror has no such file (HTTP 404:
    an index ahead of its pool, or a file already removed). Trying again does not help;
    another version may."""


# apt-get's words for a file the server does not have: "Err:1 URL ... 404  Not Found".
_NOT_FOUND = re.compile(r"^\s*(?:E: Failed to fetch|Err:\d+) .*\b404\s+Not Found", re.M)


def _download(apt: Apt, packages: Sequence[Package], dest: Path) -> dict[str, Path]:
    """`apt-get download` into dest; check each file against the index; {name: file}.
    A file the mirror does not have raises NotOnMirror."""
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    what = f"downloading {', '.join(p.name for p in packages)} from {apt.label}"
    try:
        apt.get("download", *(f"{p.name}={p.version}" for p in packages), cwd=dest, what=what,
                meter=Meter(f"downloading {_short(packages)}", sum(p.size for p in packages)),
                watch=dest)
    except ImageError as err:
        if not _NOT_FOUND.search(err.what):
            raise
        raise NotOnMirror(err.what, where=err.where,
                          hint=f"the mirror ({apt.mirror}, {apt.security}) is behind its index or "
                               "dropped the file; try again later, or set SEEDCHAIN_DEBIAN_MIRROR / "
                               "SEEDCHAIN_DEBIAN_SECURITY to another mirror") from None
    files = {f.name.split("_")[0]: f for f in dest.glob("*.deb")}
    for p in packages:
        f = files.get(p.name)
        if f is None or f.stat().st_size != p.size or sha256_file(f) != p.sha256:
            raise ImageError(f"{p.name} {p.version} downloaded from {apt.suite} does not match "
                             "its index (size or SHA256)", where=str(f or dest),
                             hint="check the mirror; run again to download it anew", transient=True)
    log.info("downloaded %d package(s) from %s in %.1f s", len(packages), apt.suite,
             time.monotonic() - t0)
    return files


def _cached_deb(apt: Apt, pkg: Package, cache: Cache) -> Path:
    """The .deb of one package, in its own cache entry keyed by name, version and SHA256."""
    entry = cache.build("deb", [pkg.name, pkg.version, pkg.sha256],
                        lambda d: _download(apt, [pkg], d))
    return next(entry.glob("*.deb"))


def _scan_deb(deb: Path, visit: Callable[[tarfile.TarFile, tarfile.TarInfo], bool]) -> None:
    """Stream the data tar of a .deb (dpkg-deb --fsys-tarfile) through `visit(tar, member)`,
    which returns True to stop early. Nothing but what visit extracts touches the disk."""
    try:
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise ImageError("dpkg-deb is not installed", where="dpkg-deb",
                         hint="apt-get install dpkg") from None
    stopped, tar_error = False, ""
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if visit(tar, member):
                    stopped = True
                    break
    except tarfile.TarError as err:
        tar_error = str(err)
    finally:
        if stopped:
            proc.kill()  # found what we wanted: no need to decompress the rest
        assert proc.stdout is not None and proc.stderr is not None      # both PIPE
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace").strip()
        proc.wait()
    if not stopped and (proc.returncode != 0 or tar_error):
        raise ImageError(f"dpkg-deb could not read {deb.name}: {stderr or tar_error}",
                         where=str(deb),
                         hint="remove its cache entry (the folder holding it) and run again")


