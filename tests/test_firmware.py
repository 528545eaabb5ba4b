# SPDX-License-Identifier: GPL-2.0-only
"""Firmware, machine types, entropy sources and the crash-kernel loader: the QEMU
options, the images, the module closure, and the runner's crash hand-over."""

import lzma
import struct
from pathlib import Path
from typing import cast

import pytest

from harness.images import initramfs as images
from harness.images import kmod
from harness.arch import x86_64
from harness.boot import qemu
from harness.boot import channel
from harness.errors import ImageError, QemuError
from harness.scenario.model import Layer, QemuConfig, Scenario


def _base(**kw):
    args = dict(machine="q35", cpu="max", memory=2048, accel="tcg", rng="none")
    args.update(kw)
    return qemu.base_args(**args)


# ------------------------------------------------------------------ QEMU options

def test_ovmf_is_read_only_code_and_a_per_run_copy_of_the_variables(tmp_path, monkeypatch):
    firmware = tmp_path / "OVMF"
    firmware.mkdir()
    (firmware / x86_64.OVMF_CODE).write_bytes(b"code")
    (firmware / x86_64.OVMF_VARS).write_bytes(b"vars")
    monkeypatch.setattr(x86_64, "OVMF_DIR", firmware)
    run = tmp_path / "run"
    args = _base(firmware="ovmf", workdir=run)
    drives = [args[i + 1] for i, a in enumerate(args) if a == "-drive"]
    assert drives == [f"if=pflash,format=raw,unit=0,readonly=on,file={firmware / x86_64.OVMF_CODE}",
                      f"if=pflash,format=raw,unit=1,file={run / 'OVMF_VARS.fd'}"]
    assert (run / "OVMF_VARS.fd").read_bytes() == b"vars"


def test_missing_ovmf_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(x86_64, "OVMF_DIR", tmp_path / "nowhere")
    with pytest.raises(QemuError) as info:
        _base(firmware="ovmf", workdir=tmp_path)
    assert "apt-get install ovmf" in info.value.hint


def test_seabios_adds_no_firmware_options(tmp_path):
    assert "-drive" not in _base(firmware="seabios", workdir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_ovmf_cannot_boot_microvm(tmp_path):
    with pytest.raises(QemuError, match="microvm"):
        _base(machine="microvm,rtc=on", firmware="ovmf", workdir=tmp_path)


def test_microvm_gets_a_second_serial_port_for_the_agent():
    args = _base(machine="microvm,rtc=on")
    assert args[args.index("-device") + 1] == "isa-serial,chardev=agent,iobase=0x2f8,irq=3"
    assert "isa-serial,chardev=agent,iobase=0x2f8,irq=3" not in _base(machine="pc-i440fx-7.2")


@pytest.mark.parametrize("machine, device", [("q35", "virtio-rng-pci"), ("pc", "virtio-rng-pci"),
                                             ("pc-q35-7.1", "virtio-rng-pci"),
                                             ("microvm,rtc=on", "virtio-rng-device")])
def test_virtio_rng_device_fits_the_machine(machine, device):
    args = _base(machine=machine, rng="virtio")
    assert device in args
    assert "virtio-rng-pci" not in _base(machine=machine, rng="none")


def test_microvm_kernels_are_given_the_tsc_rate(monkeypatch):
    monkeypatch.setattr(x86_64, "host_tsc_khz", lambda: 2445000)
    assert x86_64.machine_cmdline("microvm,rtc=on") == "tsc_early_khz=2445000"
    assert x86_64.machine_cmdline("q35") == ""
    assert x86_64.machine_cmdline("pc-i440fx-7.2") == ""


def test_host_tsc_rate_is_known_here():
    khz = x86_64.host_tsc_khz()
    assert khz is None or 100_000 < khz < 10_000_000


# ------------------------------------------------------------------ command lines

def _layer(index, loader, cmdline=""):
    return Layer(index=index, kernel="debian:bookworm/6.1", loader=loader, cmdline=cmdline)


def test_a_crash_kernels_parent_reserves_memory_for_it():
    parent, child = _layer(1, "qemu"), _layer(2, "kexec_crash", "random.trust_cpu=off")
    assert images.cmdline_for(parent, child) == f"{images.BASE_CMDLINE} crashkernel=384M"
    assert images.cmdline_for(child) == (f"{images.BASE_CMDLINE} irqpoll nr_cpus=1 reset_devices "
                                         "random.trust_cpu=off")


def test_the_scenarios_own_crashkernel_and_crash_options_win():
    parent = _layer(1, "qemu", "crashkernel=512M")
    child = _layer(2, "kexec_crash", "nr_cpus=1 irqpoll")
    assert images.cmdline_for(parent, child) == f"{images.BASE_CMDLINE} crashkernel=512M"
    assert images.cmdline_for(child) == f"{images.BASE_CMDLINE} reset_devices nr_cpus=1 irqpoll"


def test_no_crashkernel_without_a_crash_kernel_next():
    parent, child = _layer(1, "qemu"), _layer(2, "kexec_file_load")
    assert "crashkernel" not in images.cmdline_for(parent, child)
    assert images.cmdline_for(parent) == images.BASE_CMDLINE        # the old one-argument call


def test_machine_options_go_before_the_scenarios():
    assert images.cmdline_for(_layer(1, "qemu", "quiet"), None, "tsc_early_khz=1") == \
        f"{images.BASE_CMDLINE} tsc_early_khz=1 quiet"


def test_layer_conf_lists_modules_only_when_there_are_some():
    layer, nxt = _layer(1, "qemu"), _layer(2, "kexec_crash")
    conf = images.layer_conf(layer, nxt, "console=ttyS0 irqpoll", ("/seedchain/modules/a.ko",
                                                                   "/seedchain/modules/b.ko"))
    assert conf.decode().splitlines() == ["LAYER=1", "NEXT_LOADER=kexec_crash",
                                          "NEXT_CMDLINE='console=ttyS0 irqpoll'",
                                          "MODULES='/seedchain/modules/a.ko /seedchain/modules/b.ko'"]
    assert b"MODULES" not in images.layer_conf(layer, None, None)


# ------------------------------------------------------------------ modules

def _module(depends: str, name: str = "x") -> bytes:
    """A minimal ELF64 object with a .modinfo section, as a .ko has."""
    modinfo = b"\0".join([b"license=GPL", f"depends={depends}".encode(), f"name={name}".encode()]) + b"\0"
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    shoff = 64 + len(modinfo) + len(shstrtab)
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)
    sections = bytes(64)
    sections += struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, 64, len(modinfo), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, 64 + len(modinfo), len(shstrtab), 0, 0, 1, 0)
    return bytes(header) + modinfo + shstrtab + sections


def _tree(tmp_path: Path, builtin: list[str] | None = None) -> Path:
    tree = tmp_path / "lib/modules/6.1.0-test-amd64"
    virtio = tree / "kernel/drivers/virtio"
    hw = tree / "kernel/drivers/char/hw_random"
    virtio.mkdir(parents=True)
    hw.mkdir(parents=True)
    (virtio / "virtio_ring.ko").write_bytes(_module(""))
    (virtio / "virtio.ko.xz").write_bytes(lzma.compress(_module("virtio_ring"), format=lzma.FORMAT_XZ))
    (virtio / "virtio_pci.ko").write_bytes(_module("virtio_ring,virtio,virtio_pci_modern_dev"))
    (virtio / "virtio_pci_modern_dev.ko").write_bytes(_module(""))
    (hw / "virtio-rng.ko").write_bytes(_module("virtio,virtio_ring,rng_core"))
    if builtin is not None:
        (tree / "modules.builtin").write_text("".join(f"kernel/{b}.ko\n" for b in builtin))
    return tree


def test_modules_come_after_their_dependencies_and_decompressed(tmp_path):
    tree = _tree(tmp_path)
    modules = kmod.closure(tree, ["virtio_pci", "virtio_rng"])
    names = [m.name for m in modules]
    assert names == ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci", "virtio_rng"]
    assert all(m.data.startswith(b"\x7fELF") for m in modules)      # virtio.ko.xz decompressed
    assert modules[-1].depends == ("virtio", "virtio_ring", "rng_core")   # rng_core: built in


def test_modinfo_reads_the_section():
    assert kmod.modinfo(_module("a,b", "virtio_rng")) == {
        "license": ["GPL"], "depends": ["a,b"], "name": ["virtio_rng"]}


def test_a_module_neither_present_nor_built_in_is_an_error(tmp_path):
    tree = _tree(tmp_path, builtin=["drivers/char/hw_random/rng-core"])
    assert kmod.closure(tree, ["rng_core"]) == []                 # built in: nothing to load
    with pytest.raises(ImageError, match="virtio_balloon"):
        kmod.closure(tree, ["virtio_balloon"])


def test_modules_only_when_the_scenario_has_a_virtio_rng(tmp_path, monkeypatch):
    tree = _tree(tmp_path)
    monkeypatch.setattr(images.debian, "kernel_modules", lambda spec, cache, arch="x86_64": tree)
    layer = _layer(1, "qemu")

    def scenario(**qemu_options):
        return Scenario(name="s", description="", path="s.yaml", qemu=QemuConfig(**qemu_options),
                        layers=(layer,))
    assert images.rng_modules(scenario(rng="none"), layer, None) == []
    pci = [m.name for m in images.rng_modules(scenario(rng="virtio"), layer, None)]
    assert pci[-2:] == ["virtio_pci", "virtio_rng"]
    (tree / "kernel/drivers/virtio/virtio_mmio.ko").write_bytes(_module("virtio,virtio_ring"))
    mmio = [m.name for m in images.rng_modules(scenario(rng="virtio", machine="microvm,rtc=on"), layer, None)]
    assert mmio == ["virtio_ring", "virtio", "virtio_mmio", "virtio_rng"]


# ------------------------------------------------------------------ the crash hand-over

class _FakeMachine:
    """Enough of qemu.Machine for wait_block: the agent's bytes arrive after a while."""

    def __init__(self, console: Path, chunks: list[bytes]):
        self.console_path = console
        self.chunks = chunks
        self.exit_code = None

    def running(self) -> bool:
        return True

    def read_agent(self, wait: float) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def _fake_machine(console: Path, chunks: list[bytes]) -> qemu.Machine:
    """A _FakeMachine where the channel takes a qemu.Machine (it uses no more than the fake has)."""
    return cast(qemu.Machine, _FakeMachine(console, chunks))


_PARENT_PANIC = ("seedchain-agent: starting layer 2 with kexec_crash\n"
                 "[   13.258128] sysrq: Trigger a crash\n"
                 "[   13.258429] Kernel panic - not syncing: sysrq triggered crash\n"
                 "[   13.261379]  sysrq_handle_crash+0x16/0x20\n")


def _wait(tmp_path, console_text: str, intended: bool, monkeypatch):
    monkeypatch.setattr(channel, "PANIC_GRACE", 0.0)
    console = tmp_path / "console.log"
    console.write_text("")
    report = b"@begin 2\n@field kernel_release\n|6.1.0-56-amd64\n@end 2\n"
    machine = _fake_machine(console, [b"", b"", report])
    watcher = channel.Console(console)
    watcher.mark()                       # the hand-over's mark, before the parent panics
    console.write_text(console_text)
    stream = channel.AgentStream(machine, tmp_path / "agent.log")
    try:
        return channel.wait_block(machine, stream, watcher, b"@begin ", b"@end 2", 30.0,
                                  "report from layer 2", intended_panic=intended)
    finally:
        stream.close()


def test_the_parents_intended_panic_is_not_a_fault(tmp_path, monkeypatch):
    block = _wait(tmp_path, _PARENT_PANIC + "[    0.000000] Linux version 6.1.0-56-amd64\n",
                  True, monkeypatch)
    assert block.startswith(b"@begin 2")


def test_the_same_panic_is_a_fault_for_any_other_loader(tmp_path, monkeypatch):
    with pytest.raises(channel.Fault) as info:
        _wait(tmp_path, _PARENT_PANIC, False, monkeypatch)
    assert info.value.kind == "panic"


def test_a_crash_kernel_that_panics_itself_is_still_a_fault(tmp_path, monkeypatch):
    own = _PARENT_PANIC + "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n"
    with pytest.raises(channel.Fault) as info:
        _wait(tmp_path, own, True, monkeypatch)
    assert info.value.kind == "panic"


def test_skip_past_waits_for_the_whole_line(tmp_path):
    path = tmp_path / "console.log"
    path.write_text("boot\nKernel panic - not sync")
    console = channel.Console(path)
    assert not console.skip_past("Kernel panic")
    path.write_text("boot\nKernel panic - not syncing: sysrq triggered crash\nnext kernel\n")
    assert console.skip_past("Kernel panic")
    assert console.since_mark() == "next kernel\n"


def test_a_blocks_start_is_timed_when_its_first_bytes_come(tmp_path, monkeypatch):
    """The report-begun step is when "@begin" arrived, not when the block was complete."""
    clock = iter([10.0, 11.0, 12.5, 13.0, 14.0, 15.0])
    monkeypatch.setattr(channel.time, "monotonic", lambda: next(clock))
    machine = _fake_machine(tmp_path / "console.log", [b"@begin 1\n@field a\n", b"|x\n", b"@end 1\n@loa",
                                                      b"der kexec_load 0 yes\n", b"@end-loader\n"])
    stream = channel.AgentStream(machine, tmp_path / "agent.log")
    try:
        for _ in range(3):
            stream.poll(0)
        assert stream.take(b"@begin ", b"@end 1") is not None
        assert stream.started_at == 10.0               # the first chunk's arrival
        assert stream.take(b"@loader ", b"@end-loader") is None    # "@loa" is no start yet
        for _ in range(2):
            stream.poll(0)
        assert stream.take(b"@loader ", b"@end-loader") is not None
        assert stream.started_at == 13.0               # the marker split over two reads
    finally:
        stream.close()


def test_layer_steps_survive_the_facts_json(tmp_path):
    from harness.facts.layer import LayerFacts
    f = LayerFacts(index=2, loader="kexec_file_load",
                   steps={"entered": 1.2, "report-begun": 4.0, "reported": 4.6, "go": 4.7})
    again = LayerFacts.from_json(f.to_json())
    assert again.steps == f.steps and list(again.steps) == ["entered", "report-begun", "reported", "go"]
