# SPDX-License-Identifier: GPL-2.0-only
"""The images stage for another architecture: apt per Debian architecture, the ELF NEEDED
closure (nothing executed), busybox's applets, build_chain and the QEMU builds by the
scenario's arch. The network-marked tests fetch Debian's real arm64 packages."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import arch
from harness.arch import aarch64
from harness.errors import ImageError, QemuError
from harness.images import debian, elfdeps, initramfs, qemu_builds
from harness.images.apt import Apt, Package
from harness.images.cache import Cache
from harness.images.recipes import Recipe
from harness.scenario.load import load_text

_LS = shutil.which("ls")
assert _LS is not None, "the ELF dependency tests read the host's ls: it must be on PATH"
LS = Path(_LS).resolve()
HOST_LIBDIR = Path("/lib/x86_64-linux-gnu")


@pytest.fixture
def aarch64_known(monkeypatch):
    """aarch64 joins harness.arch.ARCHES once its machine and device-tree sections exist (the
    interface test wants the whole of it); until then these tests put it there themselves."""
    monkeypatch.setitem(arch.ARCHES, aarch64.NAME, aarch64)


# ---------------------------------------------------------------- apt per architecture

def test_apt_has_a_folder_and_configuration_per_architecture(tmp_path):
    cache = Cache(tmp_path)
    host, arm = Apt("bookworm", cache), Apt("bookworm", cache, "arm64")
    assert host.dir == tmp_path / "apt/bookworm"                 # the warm amd64 lists stay where they were
    assert arm.dir == tmp_path / "apt/bookworm-arm64"
    assert 'APT::Architecture "amd64";' in host.conf() and 'APT::Architectures { "amd64"; };' in host.conf()
    assert 'APT::Architecture "arm64";' in arm.conf() and 'APT::Architectures { "arm64"; };' in arm.conf()
    assert "amd64" not in arm.conf() and "amd64" not in arm.sources()
    assert all(" arch=arm64]" in line for line in arm.sources().splitlines())
    assert arm.label == "bookworm (arm64)" and host.label == "bookworm"
    with pytest.raises(ValueError):
        Apt("bookworm", cache, "arm64; rm -rf")


# ---------------------------------------------------------------- the ELF NEEDED closure

def _ldd(binary: Path) -> dict[str, Path]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return {m[1]: Path(m[2]).resolve() for m in re.finditer(r"^\s*(\S+) => (\S+) \(", out, re.M)}


def _host_candidates(folder: Path):
    def candidates(soname, parent):
        if (folder / soname).exists():
            yield (folder / soname).resolve()
    return candidates


@pytest.mark.skipif(not HOST_LIBDIR.is_dir(), reason="not a Debian amd64 host")
def test_the_closure_read_from_the_files_is_what_the_loader_loads():
    found = elfdeps.closure(LS, _host_candidates(HOST_LIBDIR), "ld-linux-x86-64.so.2")
    assert {k: v.resolve() for k, v in found.items()} == _ldd(LS)
    assert elfdeps.interpreter(LS) == "/lib64/ld-linux-x86-64.so.2"
    assert elfdeps.read(LS).machine == "EM_X86_64"


@pytest.mark.skipif(not HOST_LIBDIR.is_dir(), reason="not a Debian amd64 host")
def test_a_library_of_another_machine_is_passed_over_and_a_missing_one_named(tmp_path):
    (wrong := tmp_path / "wrong").mkdir()
    libc = (HOST_LIBDIR / "libc.so.6").resolve()
    data = bytearray(libc.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")                         # e_machine: EM_AARCH64
    (wrong / "libc.so.6").write_bytes(bytes(data))

    def candidates(soname, parent):
        for folder in (wrong, HOST_LIBDIR):
            if (folder / soname).exists():
                yield (folder / soname).resolve()
    found = elfdeps.closure(LS, candidates, "ld-linux-x86-64.so.2")
    assert found["libc.so.6"] == libc
    with pytest.raises(ImageError) as info:
        elfdeps.closure(LS, _host_candidates(tmp_path / "empty"), "ld-linux-x86-64.so.2")
    assert "which no unpacked package provides" in info.value.what and "libc.so.6" in info.value.what


def test_a_file_that_is_not_elf_is_named_not_shown(tmp_path):
    path = tmp_path / "kexec"
    path.write_text("secret words\n" * 50)
    with pytest.raises(ImageError) as info:
        elfdeps.read(path)
    assert "kexec is not a readable ELF file" in info.value.what and "secret" not in str(info.value)


# ---------------------------------------------------------------- busybox's applets

class StubApt:
    suite, arch = "sid", "amd64"

    def __init__(self, versions):
        self.versions = versions

    def madison(self, names):
        return [(names[0], v, "sid") for v in self.versions]

    def show(self, pin):
        name, version = pin.split("=", 1)
        return {name: Package(name, version, "0" * 64, 1, "")}


def test_the_host_busybox_twin_is_the_same_source_version():
    arm = Package("busybox-static", "1:1.35.0-4+deb12u1+b1", "1" * 64, 1, "")
    assert debian._same_source_version(StubApt(["1:1.35.0-4+deb12u1+b1"]), arm).version == "1:1.35.0-4+deb12u1+b1"
    assert debian._same_source_version(StubApt(["1:1.35.0-4+deb12u1"]), arm).version == "1:1.35.0-4+deb12u1"
    with pytest.raises(ImageError) as info:
        debian._same_source_version(StubApt(["1:1.37.0-1"]), arm)
    assert "no amd64 build of the same version" in info.value.what and "1:1.37.0-1" in info.value.what


def test_applet_links_come_from_the_listing_not_from_running_busybox():
    links = initramfs._applet_links(["bin/sh", "sbin/ip", "usr/bin/env", "linuxrc"], {"bin", "sbin", "bin/sh"})
    # A folder before what is in it (the kernel's unpacker makes none); what is there already stays.
    assert [e.path for e in links] == ["usr/bin", "sbin/ip", "usr/bin/env"]


# ---------------------------------------------------------------- build_chain for aarch64

def test_build_chain_takes_the_scenarios_arch(tmp_path, monkeypatch, aarch64_known):
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.sh").write_text("#!/bin/sh\n# a placeholder agent\n")
    (tmp_path / "agent" / "aarch64.sh").write_text("# its arm64 part\n")
    monkeypatch.setattr(initramfs, "IMAGES", tmp_path)
    monkeypatch.setattr(aarch64, "machine_cmdline", lambda machine: f"machine={machine}", raising=False)
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"an arm64 Image" * 100)
    root = tmp_path / "userland"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"busybox")
    asked = []

    def resolve_kernel(spec, cache, arch):
        asked.append(("kernel", arch))
        return debian.KernelImage(kernel, spec, "linux-image-6.1.0-57-arm64-unsigned", "6.1.192-3",
                                  "6.1.0-57-arm64", arch)

    def userland(suite, cache, arch):
        asked.append(("userland", arch))
        return debian.Userland(root, suite, "1:1.35.0-4", "1:2.0.25-3", arch, ("bin/busybox", "sbin/ip"))
    monkeypatch.setattr(debian, "resolve_kernel", resolve_kernel)
    monkeypatch.setattr(debian, "userland", userland)
    scenario = load_text("name: t\ndescription: d\narch: aarch64\nlayers:\n  - kernel: debian:bookworm/6.1\n"
                         "  - kernel: debian:bookworm/6.1\n    loader: kexec_load\n", str(tmp_path / "t.yaml"))
    images = initramfs.build_chain(scenario, Cache(tmp_path / "cache"))
    assert set(asked) == {("kernel", "aarch64"), ("userland", "aarch64")}
    assert images[0].cmdline.split()[3] == "machine=virt"
    members = _cpio_members(images[0].initrd)
    assert members["init"] == b"#!/bin/sh\n# a placeholder agent\n"
    assert members["seedchain/arch.sh"] == b"# its arm64 part\n"
    assert members["sbin/ip"] == b"/bin/busybox" and "seedchain/next/bzImage" not in members
    assert kernel.read_bytes() in images[0].chain_disk.read_bytes()     # the next layer's, on the disk
    with pytest.raises(ImageError, match="names no guest agent for arch sparc"):
        initramfs.agent("sparc")
    (tmp_path / "agent" / "aarch64.sh").unlink()
    with pytest.raises(ImageError, match="the guest agent of arch aarch64, .* is missing"):
        initramfs.agent("aarch64")


def _cpio_members(path: Path) -> dict[str, bytes]:
    data, pos, out = path.read_bytes(), 0, {}
    while True:
        head = data[pos:pos + 110]
        size, namesize = int(head[54:62], 16), int(head[94:102], 16)
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos = (pos + namesize + 3) & ~3
        out[name] = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out


# ---------------------------------------------------------------- QEMU builds by arch

def test_debian_suite_roots_per_arch_and_firmware():
    x86 = qemu_builds.suite_qemu()
    old = Recipe(Path("-"), {k: qemu_builds._RECIPE.data[k] for k in ("package", "binary", "mmdebstrap")})
    assert (x86.package, x86.binary, x86.firmware, x86.digest) == \
        ("qemu-system-x86", "/usr/bin/qemu-system-x86_64", (), old.digest)     # the warm roots keep their keys
    arm = qemu_builds.suite_qemu("aarch64")
    uefi = qemu_builds.suite_qemu("aarch64", "uefi")
    assert (arm.package, arm.binary, arm.firmware) == ("qemu-system-arm", "/usr/bin/qemu-system-aarch64", ())
    assert uefi.firmware == ("qemu-efi-aarch64",) and len({x86.digest, arm.digest, uefi.digest}) == 3
    with pytest.raises(QemuError, match="names no QEMU package for arch sparc"):
        qemu_builds.suite_qemu("sparc")


def test_system_qemu_of_the_scenarios_arch(tmp_path, monkeypatch, aarch64_known):
    binary = tmp_path / "qemu-system-aarch64"
    binary.write_text("#!/bin/sh\necho 'QEMU emulator version 7.2.22'\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert qemu_builds.resolve("system", Cache(tmp_path / "cache"), arch="aarch64").binary == str(binary)
    qemu_builds.check("system", "aarch64")
    with pytest.raises(QemuError, match="qemu-system-x86_64 is not installed"):
        qemu_builds.check("system")
    with pytest.raises(QemuError, match="builds qemu-system-x86_64 only; this scenario's arch is aarch64"):
        qemu_builds.check("source:7.2.0", "aarch64")


# ---------------------------------------------------------------- Debian's real arm64 packages

@pytest.mark.network
def test_bookworm_arm64_userland_without_running_it(aarch64_known):
    u = debian.userland("bookworm", Cache(), arch="aarch64")
    assert u.arch == "aarch64" and debian.upstream_version(u.kexec_tools_version) == "2.0.25"
    libs = sorted(p.name for p in (u.root / aarch64.LIBDIR).iterdir())
    # docs/facts.md#kexec-tools: libxenctrl and seven other libxen*, zlib, libc and the loader.
    assert len([n for n in libs if n.startswith("libxen")]) == 8 and "libxenctrl.so.4.17" in libs
    assert "libz.so.1" in libs and "libc.so.6" in libs
    assert (u.root / "lib" / aarch64.LOADER).is_file()
    for path in [u.root / "sbin/kexec", u.root / "bin/busybox", *(u.root / aarch64.LIBDIR).iterdir()]:
        assert elfdeps.read(path).machine == "EM_AARCH64", path
    # The applets listed by the amd64 twin are the names in the arm64 busybox's own table.
    data = (u.root / "bin/busybox").read_bytes()
    names = []
    for word in data[data.index(b"[\0[[\0"):].split(b"\0"):
        if not re.fullmatch(rb"[a-z0-9_.\[-]+", word):
            break
        names.append(word.decode())
    assert sorted(p.rsplit("/", 1)[-1] for p in u.applets) == sorted(names) and len(names) > 200
    assert "sbin/kexec" not in u.applets and "bin/sh" in u.applets


@pytest.mark.network
def test_the_elf_closure_agrees_with_the_staged_loader_on_amd64(tmp_path):
    """The same kexec-tools for amd64, staged: what the files say is what ld.so --list says."""
    apt = Apt("bookworm", Cache())
    apt.ensure_lists()
    stage = tmp_path / "stage"
    for deb in debian._download(apt, apt.closure(["kexec-tools"]), tmp_path / "debs").values():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(stage)], check=True)
    x86 = arch.get("x86_64")
    kexec = debian._find(stage, "sbin/kexec", "usr/sbin/kexec")
    loader = debian._find(stage, f"{x86.LIBDIR}/{x86.LOADER}", f"usr/{x86.LIBDIR}/{x86.LOADER}")
    by_loader = debian._needed_libraries(stage, loader, kexec, x86)
    by_files = elfdeps.closure(kexec, debian._library_search(stage, debian._libdirs(stage, x86)), x86.LOADER)
    assert {k: v.resolve() for k, v in by_files.items()} == {k: v.resolve() for k, v in by_loader.items()}
    assert {"libxenctrl.so.4.17", "libc.so.6"} <= set(by_files)


def test_an_arch_without_its_module_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    from harness.errors import SeedchainError
    from harness.images.preflight import check_scenario
    monkeypatch.delitem(arch.ARCHES, aarch64.NAME, raising=False)
    scenario = load_text("name: t\ndescription: d\narch: aarch64\nlayers:\n  - kernel: debian:bookworm/6.1\n",
                         str(tmp_path / "t.yaml"))
    with pytest.raises(SeedchainError) as info:
        check_scenario(scenario)
    assert info.value.where == f"{tmp_path / 't.yaml'}: arch" and "arch aarch64 is not available" in info.value.what


def test_preflight_reads_a_real_arm64_image_by_the_scenarios_arch(tmp_path, aarch64_known):
    """A user's Image file is checked by aarch64's header rules: here one made by the test."""
    from harness.images.preflight import check_scenario
    from test_arch_aarch64 import fake_image
    fake_image(tmp_path / "Image")
    fake_image(tmp_path / "Image-old", image_size=0)
    text = ("name: t\ndescription: d\narch: aarch64\nlayers:\n  - kernel: Image\n"
            "  - kernel: Image-old\n    loader: kexec_file_load\n")
    with pytest.raises(ImageError) as info:
        check_scenario(load_text(text, str(tmp_path / "t.yaml")))
    assert "layer 2" in info.value.what and "image_size (offset 0x10) is 0" in info.value.what
    notes = check_scenario(load_text(text.replace("Image-old", "Image"), str(tmp_path / "t.yaml")))
    assert notes and all("option check skipped: it has no embedded configuration" in n for n in notes)
