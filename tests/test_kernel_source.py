# SPDX-License-Identifier: GPL-2.0-only
"""Kernels built from Debian's linux-source package (images/kernel/debian-source.yaml):
the spec, the recipe's fragments against .config files recorded from real builds, the
cache key, the scenario front door; and one real arm64 build (network)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from harness.errors import ImageError
from harness.images import debian, kconfig, kernel_source
from harness.images.cache import Cache
from harness.scenario.load import load_text
from test_cli import seedchain
from test_preflight import scenario_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "kernel-source"
SPEC = "debian-source:bookworm/6.1"


def fragment(arch: str) -> str:
    return kernel_source.section(arch)["fragment"]


# ---------------------------------------------------------------- the spec

def test_a_spec_names_a_suite_and_a_series():
    assert kernel_source.parse_spec(SPEC) == kernel_source.SourceSpec("bookworm", "6.1")
    assert kernel_source.parse_spec("debian-source:trixie-backports/6.12").package == "linux-source-6.12"


@pytest.mark.parametrize("spec,what", [
    ("debian-source:bookworm", "bad kernel spec"),
    ("debian-source:bookworm/6", "bad kernel spec"),
    ("debian-source:/6.1", "bad kernel spec"),
    ("debian-source:buster/4.19", "unknown Debian suite 'buster'"),
])
def test_a_bad_spec_says_how_to_write_one(spec, what):
    with pytest.raises(ImageError) as info:
        kernel_source.parse_spec(spec)
    assert what in info.value.what
    assert "debian-source:SUITE/SERIES" in info.value.hint or "bookworm" in info.value.hint


def test_an_architecture_the_recipe_lacks_is_named_with_the_ones_it_has():
    with pytest.raises(ImageError) as info:
        kernel_source.check(SPEC, "riscv64")
    assert "no section for riscv64" in info.value.what
    assert info.value.hint.endswith("x86_64, aarch64")


def test_a_scenario_keeps_the_spec_instead_of_resolving_it_as_a_path(tmp_path):
    scenario = load_text(f"name: s\ndescription: d\nlayers:\n  - kernel: {SPEC}\n", tmp_path / "s.yaml")
    assert scenario.layers[0].kernel == SPEC


def test_check_accepts_the_spec_offline(tmp_path):
    path = scenario_file(tmp_path, kernel_line=f"kernel: {SPEC}")
    proc = seedchain("check", path, env={"SEEDCHAIN_OFFLINE": "1", "SEEDCHAIN_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "c").exists()        # nothing fetched, nothing built


@pytest.mark.parametrize("kernel,message", [
    ("debian-source:buster/6.1", "5: layer 1: unknown Debian suite 'buster'"),
    ("debian-source:bookworm", "5: layers[1].kernel: 'debian-source:bookworm' is not valid"),
])
def test_check_refuses_a_bad_spec_naming_file_and_line(tmp_path, kernel, message):
    path = scenario_file(tmp_path, kernel_line=f"kernel: {kernel}")
    proc = seedchain("check", path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"seedchain: error: {path}:{message}"), proc.stderr


def test_a_missing_build_tool_is_named_with_the_packages_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ImageError) as info:
        kernel_source.check(SPEC, "aarch64")
    assert "aarch64-linux-gnu-gcc" in info.value.what and "make" in info.value.what
    assert "gcc-aarch64-linux-gnu" in info.value.hint


def test_kernel_modules_of_a_source_kernel_is_none():
    assert debian.kernel_modules(SPEC, Cache(Path("/nonexistent"))) is None


# ---------------------------------------------------------------- the fragments

@pytest.mark.parametrize("arch", kernel_source.ARCHES)
def test_every_fragment_option_is_met_by_the_config_a_real_build_made(arch):
    config = (FIXTURES / f"{arch}.config").read_text()
    kernel_source.check_config(fragment(arch), config, arch)     # raises if one is dropped
    options = kconfig.parse_config(config).options
    assert options["KEXEC_FILE"] == "y" and options.get("MODULES", "n") == "n"


def test_options_kconfig_dropped_are_named_each_with_what_the_config_has():
    # Recorded: allnoconfig with the arm64 fragment minus SUSPEND and HOTPLUG_CPU.
    config = (FIXTURES / "aarch64-without-suspend.config").read_text()
    with pytest.raises(ImageError) as info:
        kernel_source.check_config(fragment("aarch64"), config, "aarch64")
    named = re.findall(r"CONFIG_(\w+)=y \(", info.value.what)
    assert named == ["SUSPEND", "HOTPLUG_CPU", "PM_SLEEP_SMP", "KEXEC"]
    assert "CONFIG_KEXEC=y (not in the .config: a dependency is not met)" in info.value.what
    assert "arches.aarch64.fragment" in info.value.where


def test_an_option_asked_off_but_on_and_a_changed_value_are_named():
    wrong = kernel_source.unmet({"MODULES": "n", "SERIAL_8250_NR_UARTS": "4", "PCI": "y"},
                                {"MODULES": "y", "SERIAL_8250_NR_UARTS": "1", "PCI": "y"})
    assert wrong == ["CONFIG_MODULES off (the .config: =y)",
                     "CONFIG_SERIAL_8250_NR_UARTS=4 (the .config: =1)"]


def test_a_fragment_line_that_is_no_option_is_named_by_its_line():
    with pytest.raises(ImageError) as info:
        kernel_source.parse_fragment("# why\nCONFIG_PCI=y\nPCI=y\n", "recipe")
    assert info.value.what.startswith("line 3 is not a Kconfig option")


@pytest.mark.parametrize("arch", kernel_source.ARCHES)
def test_every_fragment_option_has_a_comment_above_its_group(arch):
    previous = ""
    for line in fragment(arch).splitlines():
        if line.startswith("CONFIG_") or line.endswith(" is not set"):
            assert previous.startswith("#"), f"{arch}: {line} has no comment saying why"
        else:
            assert line.startswith("# "), line
        previous = line if not line.startswith("CONFIG_") else previous


def test_the_x86_fragment_has_what_the_harness_asks_of_a_kernel_file():
    options = kernel_source.parse_fragment(fragment("x86_64"), "x86_64")
    wanted = [name for name, _ in (*kconfig.EVERY_LAYER, *kconfig.KEXECD)] + list(kconfig.LOADS_NEXT.values())
    assert [name for name in wanted if options.get(name) != "y"] == []
    assert int(options["SERIAL_8250_NR_UARTS"]) >= 2 and int(options["SERIAL_8250_RUNTIME_UARTS"]) >= 2


def test_dev_installs_every_build_dependency():
    listed = set(re.search(r"DEBIAN_PACKAGES=\((.*?)\)", (ROOT / "dev").read_text(), re.S)[1].split())
    for arch in kernel_source.ARCHES:
        wanted = set(kernel_source.section(arch)["build_depends"])
        assert wanted <= listed, f"./dev does not install {sorted(wanted - listed)}"


# ---------------------------------------------------------------- the cache key

def test_the_key_changes_with_each_input_and_only_with_them():
    part = kernel_source.section("aarch64")
    tools = ["aarch64-linux-gnu-gcc: 12.2.0", "aarch64-linux-gnu-ld: 2.40"]
    base = kernel_source.cache_key("ab" * 32, "aarch64", part, tools)
    assert kernel_source.cache_key("ab" * 32, "aarch64", dict(part), list(tools)) == base
    changed = [
        kernel_source.cache_key("cd" * 32, "aarch64", part, tools),
        kernel_source.cache_key("ab" * 32, "x86_64", part, tools),
        kernel_source.cache_key("ab" * 32, "aarch64", {**part, "fragment": part["fragment"] + "CONFIG_X=y\n"}, tools),
        kernel_source.cache_key("ab" * 32, "aarch64", part, ["aarch64-linux-gnu-gcc: 13.1.0", tools[1]]),
    ]
    cache = Cache(Path("/nonexistent"))
    paths = {cache.path("kernel-source", key) for key in (base, *changed)}
    assert len(paths) == 5


def test_the_key_holds_the_toolchain_versions_as_the_tools_say_them():
    lines = kernel_source.toolchain(kernel_source.section("x86_64"))
    assert [line.split(":")[0] for line in lines] == ["gcc", "ld"]
    assert all(re.search(r"\d+\.\d+", line) for line in lines)


# ---------------------------------------------------------------- a real build

@pytest.mark.network
def test_a_real_arm64_build_is_an_image_with_its_config_and_a_warm_run_builds_nothing(monkeypatch):
    cache = Cache()
    image = debian.resolve_kernel(SPEC, cache, arch="aarch64")
    head = image.path.read_bytes()[:64]
    assert head[0x38:0x3c] == b"ARM\x64"            # the arm64 Image header's magic
    assert head[:2] == b"MZ"                         # EFI_STUB: a PE header in front
    assert image.package == "linux-source-6.1" and image.release.startswith("6.1.")
    assert sorted(p.name for p in image.path.parent.iterdir() if not p.name.startswith(".")) == \
        ["Image", "System.map", "build.json", "config"]
    kernel_source.check_config(fragment("aarch64"), (image.path.parent / "config").read_text(), "aarch64")

    def rebuild(*args):
        raise AssertionError("a warm run built the kernel again")
    monkeypatch.setattr(kernel_source, "_build", rebuild)
    assert debian.resolve_kernel(SPEC, cache, arch="aarch64") == image


# ---------------------------------------------------------------- interrupted builds

def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")      # killed; only its parent's reaping is left


def test_an_interrupted_make_is_killed_with_everything_it_started(tmp_path):
    """Ctrl-C or SIGTERM (KeyboardInterrupt in seedchain) while make runs: its whole
    process group goes before the build tree is removed."""
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! >{pids}; echo '  CC      init/main.o'; wait"

    def interrupt(*_):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            kernel_source._make(["sh", "-c", script], tmp_path, tmp_path / "log", "x86_64")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    child = int(pids.read_text())
    for _ in range(50):
        if _gone(child):
            break
        time.sleep(0.1)
    assert _gone(child), "make's child outlived the interrupt"
    assert "  CC      init/main.o" in (tmp_path / "log").read_text()


def test_a_failed_make_names_its_last_lines_and_keeps_the_log(tmp_path):
    with pytest.raises(ImageError) as info:
        kernel_source._make(["sh", "-c", "echo 'arch/x86/Makefile:1: *** no'; exit 2"], tmp_path,
                            tmp_path / "log", "x86_64")
    assert "failed (exit 2)" in info.value.what and "*** no" in info.value.what
    assert str(tmp_path / "log") in info.value.hint
