# SPDX-License-Identifier: GPL-2.0-only
"""Layer 1 through a boot loader: an ESP disk image and a per-run OVMF variable store.

The recipe is images/bootloader/NAME.yaml. The boot loader's EFI binary comes from
the Debian package of the scenario's `bootloader.suite` through the private apt, like
the kernels, and is kept in the cache. Everything else is made per run in the run's
folder, as a user (no loop mounts): the FAT image with `mkfs.vfat -C` and mtools, the
seed file from the host's random bytes, and the variable store from OVMF's template,
with LoaderSystemToken set by virt-fw-vars when the scenario asks for it. After the
boot the host reads the seed file back from the image with mtools.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness.arch import DEFAULT
from harness.arch import get as get_arch
from harness.errors import ImageError
from harness.images import recipes
from harness.images.apt import Apt, _cached_deb, _scan_deb
from harness.images.cache import Cache
from harness.scenario.model import BootLoader, Scenario

ESP_NAME = "esp.img"
VARS_TEMPLATE = "OVMF_VARS-template.fd"
SLACK_KIB = 8 << 10             # room on the FAT file system beyond the files themselves
MIN_KIB = 64 << 10              # FAT32 wants at least about 33 MiB; keep clear of that edge


@dataclass(frozen=True)
class EspDisk:
    """What prepare() made for one boot: the ESP image, the variable store template
    the firmware's per-run copy starts from, and the seed file written (b"" for none)."""

    image: Path
    loader: str                  # its name, e.g. systemd-boot
    vars_template: Path
    seed_path: str               # inside the ESP, e.g. loader/random-seed
    seed_before: bytes
    loader_version: str          # the boot loader's Debian package version
    token: bool


def _where(loader: BootLoader, scenario: Scenario) -> str:
    return f"{scenario.path}:{loader.line}: bootloader"


def _suite(loader: BootLoader) -> str:
    return loader.suite.split(":", 1)[1]


def loader_binary(loader: BootLoader, cache: Cache) -> tuple[Path, str]:
    """The boot loader's EFI binary from its Debian package (cached), and the package's version."""
    recipe = recipes.bootloader(loader.name)
    apt = Apt(_suite(loader), cache)
    apt.ensure_lists()
    pkg = apt.candidates([recipe.data["package"]])[recipe.data["package"]]
    deb = _cached_deb(apt, pkg, cache)
    member = "./" + recipe.data["binary"]

    def extract(dest: Path) -> None:
        def visit(tar: tarfile.TarFile, item: tarfile.TarInfo) -> bool:
            src = tar.extractfile(item) if item.name == member and item.isfile() else None
            if src is None:
                return False
            with src, open(dest / Path(member).name, "wb") as out:
                shutil.copyfileobj(src, out)
            return True
        _scan_deb(deb, visit)
        if not (dest / Path(member).name).is_file():
            raise ImageError(f"{deb.name} holds no {recipe.data['binary']}", where=str(recipe.path),
                             hint="the package's layout changed: fix `binary` in the recipe")

    entry = cache.build("bootloader", [recipe.digest, pkg.name, pkg.version, pkg.sha256], extract)
    return entry / Path(member).name, pkg.version


def _tool(argv: list[str], what: str, hint: str, env: dict | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    except FileNotFoundError:
        raise ImageError(f"{argv[0]} is not installed ({what})", where=argv[0], hint=hint) from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{argv[0]} took over 120 s ({what})", where=argv[0], hint=hint) from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        raise ImageError(f"{what} failed (status {proc.returncode}): {' / '.join(said[-3:]) or 'no output'}",
                         where=" ".join(argv[:1]), hint=hint)
    return proc.stdout


_MTOOLS = "apt-get install mtools dosfstools"


def _mtools(tool: str, image: Path, *args: str, what: str) -> str:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"}
    return _tool([tool, "-i", str(image), *args], what, _MTOOLS, env)


def _make_fat(image: Path, files: dict[str, Path | bytes]) -> None:
    """A FAT32 image holding `files` (ESP path -> a host file or bytes), folders made first."""
    size = sum(v.stat().st_size if isinstance(v, Path) else len(v) for v in files.values())
    kib = max(MIN_KIB, size // 1024 + SLACK_KIB)
    image.unlink(missing_ok=True)
    _tool(["mkfs.vfat", "-F", "32", "-n", "SEEDCHAIN", "-C", str(image), str(kib)],
          f"making the ESP image {image}", _MTOOLS)
    folders = sorted({str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parents) - 1)},
                     key=lambda d: d.count("/"))
    if folders:
        _mtools("mmd", image, *(f"::/{d}" for d in folders), what="making folders on the ESP")
    staging = image.parent / ".esp-files"
    staging.mkdir(exist_ok=True)
    try:
        for path, content in files.items():
            if isinstance(content, bytes):
                src = staging / Path(path).name
                src.write_bytes(content)
                content = src
            _mtools("mcopy", image, "-o", str(content), f"::/{path}", what=f"copying {path} onto the ESP")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_seed_file(image: Path, seed_path: str) -> bytes | None:
    """The seed file's bytes as they are in the image now (None: there is none)."""
    listing = _mtools("mdir", image, "-b", f"::/{Path(seed_path).parent}", what="listing the ESP's loader folder")
    if not any(line.rstrip("/").lower().endswith("/" + Path(seed_path).name.lower())
               for line in listing.splitlines()):
        return None
    out = image.parent / ".seed-file-after"
    try:
        _mtools("mcopy", image, "-n", f"::/{seed_path}", str(out), what="reading the seed file from the ESP")
        return out.read_bytes()
    finally:
        out.unlink(missing_ok=True)


def _vars_template(recipe: recipes.Recipe, outdir: Path, token: bool, cache: Cache,
                   arch: str = DEFAULT) -> Path:
    """OVMF's variable store template, copied into the run's folder; with LoaderSystemToken
    set (random bytes from the host) when asked for. (A boot loader is x86_64's only: the
    scenario loader refuses one elsewhere.)"""
    firmware = get_arch(arch)
    source = firmware.OVMF_DIR / firmware.OVMF_VARS
    if not source.is_file():
        raise ImageError(f"OVMF's variable store {source} is missing", where="qemu.firmware: ovmf",
                         hint="apt-get install ovmf")
    target = outdir / VARS_TEMPLATE
    shutil.copyfile(source, target)
    if not token:
        return target
    spec, tool = recipe.data["system_token"], recipe.data["vars_tool"]
    variables = {"version": 2, "variables": [{"name": spec["name"], "guid": spec["guid"], "attr": spec["attributes"],
                                              "data": os.urandom(spec["bytes"]).hex()}]}
    listing = outdir / ".system-token.json"
    listing.write_text(json.dumps(variables))
    root = _vars_tool(tool, cache)
    env = {**os.environ, "PYTHONPATH": str(root / tool["python_path"])}
    try:
        _tool(["/usr/bin/python3", "-m", tool["module"], "--inplace", str(target), "--set-json", str(listing)],
              f"setting {spec['name']} in {target} with {tool['package']} ({tool['suite']})",
              "apt-get install python3-pefile python3-importlib-resources python3-cryptography", env)
    finally:
        listing.unlink(missing_ok=True)        # the token's bytes stay in the store only
    return target


def _vars_tool(tool: dict, cache: Cache) -> Path:
    """The unpacked virt-fw-vars package (cached), run with the host's python3."""
    apt = Apt(tool["suite"], cache)
    apt.ensure_lists()
    pkg = apt.candidates([tool["package"]])[tool["package"]]
    deb = _cached_deb(apt, pkg, cache)
    return cache.build("vars-tool", [pkg.name, pkg.version, pkg.sha256],
                       lambda d: _tool(["dpkg-deb", "-x", str(deb), str(d)], f"unpacking {deb.name}",
                                       "apt-get install dpkg"))


def prepare(scenario: Scenario, kernel: Path, initrd: Path, cmdline: str, cache: Cache,
            outdir: Path) -> EspDisk | None:
    """The ESP image and the variable store template for one boot of the scenario (None:
    no boot loader, QEMU starts layer 1 itself)."""
    loader = scenario.bootloader
    if loader is None:
        return None
    recipe = recipes.bootloader(loader.name)
    binary, version = loader_binary(loader, cache)
    esp, data = recipe.data["esp"], recipe.data
    entry = data["entry"].format(kernel=esp["kernel"], initrd=esp["initrd"], cmdline=cmdline)
    seed = os.urandom(data["seed_file_bytes"]) if loader.seed_file else b""
    files: dict[str, Path | bytes] = {esp["binary"]: binary, esp["kernel"]: kernel, esp["initrd"]: initrd,
                                      esp["loader_conf"]: data["loader_conf"].encode(),
                                      esp["entry"]: entry.encode()}
    if seed:
        files[esp["seed_file"]] = seed
    outdir.mkdir(parents=True, exist_ok=True)
    image = outdir / ESP_NAME
    try:
        _make_fat(image, files)
        template = _vars_template(recipe, outdir, loader.system_token, cache, scenario.arch)
    except ImageError as exc:
        exc.where = f"{_where(loader, scenario)} ({exc.where})"
        raise
    return EspDisk(image=image, loader=loader.name, vars_template=template, seed_path=esp["seed_file"],
                   seed_before=seed, loader_version=version, token=loader.system_token)


def digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()
