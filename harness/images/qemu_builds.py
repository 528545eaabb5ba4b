# SPDX-License-Identifier: GPL-2.0-only
"""Which QEMU runs a scenario: the system's, a Debian suite's, or a user's own build.

`qemu.build` is one of:

- "system": qemu-system-x86_64 on PATH (for an aarch64 scenario qemu-system-aarch64:
  harness.arch says which, for the scenario's `arch`);
- "debian:SUITE": that suite's qemu-system-x86 (qemu-system-arm for aarch64, with
  qemu-efi-aarch64 for its uefi firmware), installed by mmdebstrap into a
  root file system of its own (a cache entry keyed by the package's version and
  SHA256 in the suite's index, so a new upload builds a new one) and run under
  bubblewrap. Only the root file system's /usr, /etc and the /bin, /lib...
  links or folders are visible, read-only; the host's /dev, a fresh /proc, an
  empty /tmp, the cache (read-only), the run's folder (read-write, for the
  sockets and the console file) and the host's /usr/share/OVMF (read-only)
  appear at their host paths, so the command line is the same as outside;
- a path to a qemu-system-x86_64, e.g. in a QEMU build tree: its pc-bios folder
  (next to the binary, or ../pc-bios) is passed with -L.

`resolve()` returns a QemuBuild; `QemuBuild.command(workdir, cache_root)` is the
argv prefix (wrapper and binary) for one run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import files
from harness.images import debian
from harness.images.cache import Cache
from harness.progress import say
from harness.errors import ImageError, QemuError
from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.images import qemu_source, recipes
from harness.proc import die_with_parent

log = logging.getLogger(__name__)

DEBIAN_SUITES = ("bullseye", "bookworm", "trixie", "sid")
PROBE_SECONDS = 5.0            # how long `BINARY --version` may take to say that it is a QEMU
_RECIPE = recipes.qemu_suite()       # images/qemu/debian-suite.yaml
PACKAGE = _RECIPE.data["package"]    # x86_64's; other arches' are under `arches:`
BINARY = _RECIPE.data["binary"]
OVMF_DIR = "/usr/share/OVMF"   # firmware comes from the host, bound in when present
ROOT_LAYOUT = "qemu-root/v1"   # bump when the root file system's recipe changes
INFO = "qemu-build.json"
# The parts of the root file system the sandbox sees (read-only); everything
# else there (/var, /root, /home, ...) stays out, so the host paths bound in
# below never need a mount point inside the cached tree.
SYSTEM_DIRS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Paths excluded from the packages: the root file system only has to run QEMU.
_DPKG_EXCLUDES = tuple(_RECIPE.data["mmdebstrap"]["dpkg_excludes"])


@dataclass(frozen=True)
class QemuBuild:
    label: str                          # "system", "debian:trixie" or the path given
    binary: str                         # as seen by the process that runs it
    prefix: tuple[str, ...] = ()        # bwrap and its fixed options; empty when none
    extra_args: tuple[str, ...] = ()    # options the binary always needs (-L DIR)
    package_version: str = ""           # Debian version of qemu-system-x86 in the root fs
    root: Path | None = None            # the root file system (debian:SUITE only)
    source: dict | None = None          # what a source:VERSION build was built from

    @property
    def host_binary(self) -> str:
        """The binary's path on the host (for stat(): changes when it is rebuilt)."""
        return str(self.root / self.binary.lstrip("/")) if self.root else self.binary

    def command(self, workdir: Path, cache_root: Path, ro_paths: Iterable[Path] = ()) -> list[str]:
        """Wrapper and binary for one run: the run's folder (read-write), the cache and
        ro_paths (files QEMU opens from elsewhere, e.g. a kernel given as a path,
        read-only) are bound at their host paths."""
        if not self.prefix:
            return [self.binary]
        binds = [(Path(cache_root).absolute(), "--ro-bind")]
        binds += [(Path(p).absolute(), "--ro-bind") for p in ro_paths]
        binds.append((Path(workdir).absolute(), "--bind"))
        # What is already visible need not be bound again; parents before children.
        fixed = [(Path(OVMF_DIR), "--ro-bind")] if OVMF_DIR in self.prefix else []
        kept: list[tuple[Path, str]] = list(fixed)
        for path, how in sorted(binds, key=lambda b: len(b[0].parts)):
            if any(path.is_relative_to(k) and (kh == "--bind" or how == "--ro-bind")
                   for k, kh in kept):
                continue
            self._check_mount_point(path)
            kept.append((path, how))
        argv = list(self.prefix)
        for path, how in kept[len(fixed):]:
            argv += [how, str(path), str(path)]
        return [*argv, "--", self.binary]

    def _check_mount_point(self, path: Path) -> None:
        top = path.parts[1] if len(path.parts) > 1 else ""
        if top in SYSTEM_DIRS and self.root and not (self.root / str(path).lstrip("/")).exists():
            raise QemuError(f"{path} cannot be shown inside the {self.label} sandbox: /{top} there "
                            "comes from the suite's root file system (read-only)",
                            where="qemu.build",
                            hint="keep the cache, the artifacts folder and kernel files outside "
                                 f"/{top} (e.g. SEEDCHAIN_CACHE, --artifacts)")


@dataclass(frozen=True)
class SuiteQemu:
    """What a debian:SUITE root file system holds for one guest arch and firmware."""
    package: str                        # the QEMU package, e.g. qemu-system-arm
    binary: str                         # its binary, e.g. /usr/bin/qemu-system-aarch64
    firmware: tuple[str, ...]           # packages the firmware needs there, e.g. qemu-efi-aarch64
    digest: str                         # of just this part of the recipe, for the cache key


def suite_qemu(arch: str = DEFAULT, firmware: str = "") -> SuiteQemu:
    """The recipe's QEMU package and binary for a guest arch, and a firmware's packages.
    The digest covers this arch's part only, so x86_64's roots keep their keys."""
    data = _RECIPE.data
    entry = data if arch == DEFAULT else data.get("arches", {}).get(arch)
    if entry is None:
        raise QemuError(f"{_RECIPE.path} names no QEMU package for arch {arch}", where="qemu.build",
                        hint=f"add {arch} under arches:, or use qemu.build: system")
    extra = tuple(entry.get("firmware", {}).get(firmware, ()))
    view = {"package": entry["package"], "binary": entry["binary"], "mmdebstrap": data["mmdebstrap"]}
    if extra:
        view["firmware"] = list(extra)
    digest = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]
    return SuiteQemu(entry["package"], entry["binary"], extra, digest)


def check(build: str, arch: str = DEFAULT) -> list[str]:
    """What can be known of a `qemu.build` string without fetching, building or running
    anything: a known Debian suite, a source release with a recipe (x86_64 only), or an
    executable ELF binary or script (resolve() asks it `--version`, at run time); notes."""
    text = _text(build)
    if text.startswith("debian:"):
        _known_suite(text.removeprefix("debian:"))
        suite_qemu(arch)
    elif text.startswith("source:"):
        _source_arch(text, arch)
        qemu_source.recipe_of(text.removeprefix("source:"))
    else:
        binary = get_arch(arch).find_qemu(text)
        if text != "system":
            kind = files.executable_kind(binary, error=QemuError, where="qemu.build",
                                         hint="give a QEMU system emulator (a path, or a name on PATH)")
            return [f"QEMU {binary} ({kind}) is asked `--version` when the scenario runs, not before"]
    return []


def _source_arch(text: str, arch: str) -> None:
    if arch != DEFAULT:
        raise QemuError(f"qemu.build {text} builds qemu-system-x86_64 only; this scenario's arch is {arch}",
                        where="qemu.build", hint="use system, debian:SUITE or a QEMU binary's path")


def check_option(value: str) -> None:
    """`--qemu VALUE` (run and pytest): a build string as in qemu.build; an empty one is
    refused, not ignored. Errors name the option."""
    try:
        if not value.strip():
            raise QemuError("names no QEMU", hint="give a QEMU binary's path or name, "
                                                  "debian:SUITE or source:VERSION; or leave --qemu out")
        check(value)
        if value.strip() != "system" and not value.startswith(("debian:", "source:")):
            is_qemu(get_arch(DEFAULT).find_qemu(value.strip()))   # the user's own: asked now
    except QemuError as exc:
        exc.where = "--qemu"
        raise


def _text(build: str) -> str:
    text = build.strip()
    if not text:
        raise QemuError("qemu.build is empty", where="qemu.build",
                        hint="use system, debian:SUITE or the path of a QEMU binary")
    return text


def is_qemu(binary: str) -> str:
    """The binary, once `BINARY --version` said it is a QEMU (asked once per build of it):
    anything else would only be started, fail, and be started again."""
    info = os.stat(binary)
    _probe(binary, info.st_mtime_ns, info.st_size)
    return binary


@functools.lru_cache(maxsize=16)
def _probe(binary: str, mtime_ns: int, size: int) -> None:
    hint = "give a QEMU system emulator (a path, or a name on PATH), or the scenario's own with no --qemu"
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen([binary, "--version"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=die_with_parent)
        except OSError as err:
            raise QemuError(f"cannot run {binary}: {err.strerror}", where="qemu.build", hint=hint) from None
        try:
            status = proc.wait(PROBE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise QemuError(f"{binary} did not answer `{binary} --version` within {PROBE_SECONDS:g} s: "
                            "it is not a QEMU, or a hung one", where="qemu.build", hint=hint) from None
        out.seek(0)
        said = out.read(4096).decode(errors="replace")
    if "QEMU emulator version" not in said:
        # What it printed is not shown: a binary that is not QEMU may print anything.
        raise QemuError(f"{binary} is not a QEMU: `{binary} --version` did not print 'QEMU emulator "
                        f"version' (exit status {status})", where="qemu.build", hint=hint)


def resolve(build: str, cache: Cache, progress=lambda message: None, arch: str = DEFAULT,
            firmware: str = "") -> QemuBuild:
    """The QEMU a `qemu.build` string names for a guest arch, built (debian:SUITE, with
    what `firmware` needs there) if need be."""
    text = _text(build)
    target = get_arch(arch)
    if text == "system":
        return QemuBuild(label="system", binary=is_qemu(target.find_qemu("system")))
    if text.startswith("debian:"):
        return _debian(text.removeprefix("debian:"), cache, arch, firmware)
    if text.startswith("source:"):
        _source_arch(text, arch)
        built, source = qemu_source.build(text.removeprefix("source:"), cache, progress)
        dirs = [d for d in recipes.qemu_source(f"qemu-{source['version']}.yaml").data["firmware"]["dirs"]]
        missing = [d for d in dirs if not Path(d).is_dir()]
        if missing:
            raise QemuError(f"firmware folders for {text} are missing: {', '.join(missing)}",
                            where="qemu.build", hint="apt-get install seabios qemu-system-data")
        return QemuBuild(label=text, binary=str(built), source=source,
                         extra_args=tuple(a for d in dirs for a in ("-L", d)))
    binary = is_qemu(target.find_qemu(text))
    return QemuBuild(label=text, binary=binary, extra_args=_pc_bios_args(Path(binary)))


def _pc_bios_args(binary: Path) -> tuple[str, ...]:
    """-L for a build tree's firmware: DIR/pc-bios next to the binary, or ../pc-bios."""
    for candidate in (binary.parent / "pc-bios", binary.parent.parent / "pc-bios"):
        if candidate.is_dir():
            return ("-L", str(candidate))
    return ()


# ---------------------------------------------------------------- debian:SUITE

def _known_suite(suite: str) -> None:
    if suite not in DEBIAN_SUITES:
        raise QemuError(f"unknown Debian suite {suite!r} in qemu.build 'debian:{suite}'", where="qemu.build",
                        hint=f"use one of: {', '.join('debian:' + s for s in DEBIAN_SUITES)}")


def _debian(suite: str, cache: Cache, arch: str = DEFAULT, firmware: str = "") -> QemuBuild:
    label = f"debian:{suite}"
    _known_suite(suite)
    want = suite_qemu(arch, firmware)
    bwrap = shutil.which("bwrap")
    if not bwrap:
        raise QemuError(f"bwrap (bubblewrap) is needed to run {label}'s QEMU and is not installed",
                        where="qemu.build", hint="apt-get install bubblewrap")
    apt = debian.Apt(suite, cache)      # the host's architecture: this QEMU runs here
    apt.ensure_lists()
    found = apt.candidates([want.package, *want.firmware])
    pkg = found[want.package]
    key = [ROOT_LAYOUT, want.digest, suite] + [f"{p.name}={p.version}:{p.sha256}" for p in found.values()]
    entry = cache.build("qemu-root", key, lambda d: _build_root(apt, pkg, d, want))
    info = json.loads((entry / INFO).read_text())
    root = entry / "root"
    return QemuBuild(label=label, binary=want.binary, prefix=_sandbox(bwrap, root),
                     package_version=info["version"], root=root)


def _sandbox(bwrap: str, root: Path) -> tuple[str, ...]:
    """bwrap's options that do not depend on the run: the root fs, /dev, /proc, /tmp."""
    argv = [bwrap, "--die-with-parent", "--unshare-pid"]
    for name in SYSTEM_DIRS:
        path = root / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), f"/{name}"]
    argv += ["--dev-bind", "/dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    if Path(OVMF_DIR).is_dir():
        argv += ["--ro-bind", OVMF_DIR, OVMF_DIR]
    return tuple(argv)


def _mmdebstrap(argv: list[str], env: dict, label: str) -> subprocess.CompletedProcess:
    """Run mmdebstrap, its "I:" lines shown as progress (it prints a dozen or two)."""
    say(f"{label}: building a root file system with mmdebstrap")
    started, lines = time.monotonic(), []
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)
    assert proc.stdout is not None         # stdout=PIPE
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("I: "):
            say(f"{label}: mmdebstrap ({time.monotonic() - started:.0f} s): {line[3:].strip()[:100]}",
                transient=True)
    rc = proc.wait()
    say(f"{label}: mmdebstrap {'done' if rc == 0 else 'failed'} in {time.monotonic() - started:.0f} s")
    return subprocess.CompletedProcess(argv, rc, "".join(lines), "")


def _build_root(apt: debian.Apt, pkg: debian.Package, entry: Path, want: SuiteQemu | None = None) -> None:
    """mmdebstrap a root file system holding the suite's QEMU package (qemu-system-x86, or
    another arch's with its firmware packages) into entry/root."""
    want = want or suite_qemu()
    package, binary = want.package, want.binary
    label = f"debian:{apt.suite}"
    mmdebstrap = shutil.which("mmdebstrap")
    if not mmdebstrap:
        raise ImageError(f"mmdebstrap is needed to build {label}'s QEMU and is not installed",
                         where="qemu.build", hint="apt-get install mmdebstrap")
    root = entry / "root"
    argv = [mmdebstrap, f"--variant={_RECIPE.data['mmdebstrap']['variant']}",
            f"--include={','.join((package, *want.firmware))}", f"--architectures={apt.arch}",
            # Only Debian's keyring: neither the host's trusted.gpg nor trusted.gpg.d.
            f"--keyring={debian.KEYRING}", f"--keyring={apt.dir / 'empty'}",
            '--aptopt=Acquire::Languages "none"',
            *(f"--dpkgopt=path-exclude={p}" for p in _DPKG_EXCLUDES)]
    if apt.suite == "sid":
        argv.append('--aptopt=Acquire::Check-Valid-Until "false"')  # sid's Release is past it
    argv += [apt.suite, str(root), *apt.sources().splitlines()]
    if os.geteuid() == 0:
        # mmdebstrap (root mode) mounts /dev, /proc and /sys into the tree while it
        # installs; in a mount namespace of its own, a killed run leaves no mount
        # behind for the cache's clean-up to walk into.
        argv = ["unshare", "--mount", "--propagation", "private", *argv]
    env = {k: v for k, v in os.environ.items() if k != "APT_CONFIG"}
    env["LC_ALL"] = "C"
    started = time.monotonic()
    log.info("building a %s root file system with %s %s", apt.suite, package, pkg.version)
    proc = _mmdebstrap(argv, env, label)
    if proc.returncode != 0:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise ImageError(f"mmdebstrap could not build {label}'s root file system "
                         f"(exit {proc.returncode}):\n    {tail}", where="qemu.build",
                         hint=f"check the network and the mirror ({apt.mirror}; "
                              "SEEDCHAIN_DEBIAN_MIRROR / SEEDCHAIN_DEBIAN_SECURITY set others)")
    _tidy(root)
    if not os.access(root / binary.lstrip("/"), os.X_OK):
        raise ImageError(f"{label}'s root file system has no {binary}", where="qemu.build",
                         hint=f"{package}'s layout changed in {apt.suite}: report this")
    version = installed_version(root, package)
    if version != pkg.version:
        # The suite moved on since our package lists were fetched: the tree holds
        # the newer upload, and says so; the next lists refresh keys it right.
        log.warning("%s: the index said %s %s, mmdebstrap installed %s",
                    label, package, pkg.version, version)
    (root / OVMF_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)  # its mount point
    (entry / INFO).write_text(json.dumps({
        "suite": apt.suite, "package": package, "version": version,
        "index_version": pkg.version, "index_sha256": pkg.sha256,
        "build_seconds": round(time.monotonic() - started, 1)}, indent=1) + "\n")


def _tidy(root: Path) -> None:
    """Make the tree safe to walk and hash from the host: no device nodes, fifos or
    sockets (the sandbox gets the host's /dev), and no absolute symlinks (which
    would lead to the host's files); those become relative ones inside the tree."""
    dev = root / "dev"
    if dev.is_dir() and not dev.is_symlink():
        shutil.rmtree(dev)
        dev.mkdir()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(path)
                if target.startswith("/"):
                    inside = root / target.lstrip("/")
                    path.unlink()
                    path.symlink_to(os.path.relpath(inside, path.parent))
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                path.unlink()


def installed_version(root: Path, package: str) -> str:
    """The version of an installed package in a root file system's dpkg status."""
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    for stanza in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M) and \
                re.search(r"^Status: install ok installed$", stanza, re.M):
            m = re.search(r"^Version: (\S+)$", stanza, re.M)
            if m:
                return m[1]
    raise ImageError(f"{package} is not installed in {root}", where="qemu.build",
                     hint="remove that cache entry and run again")
