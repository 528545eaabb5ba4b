# SPDX-License-Identifier: GPL-2.0-only
"""The capture on a real QEMU 7.2.0: stopped at layer 1's hand-over through the real
gdbstub, the seed read there is in the guest's RAM file, and the RAM search finds it
(so a search that finds nothing after a report means something)."""

import dataclasses
from pathlib import Path

import pytest

from harness.boot import chain, gdb, ram
from harness.boot.capture import Catcher
from harness.images.initramfs import build_chain
from harness.pipeline import prepare_qemu
from harness.scenario.load import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"


@pytest.mark.vm
def test_a_dump_at_the_handover_holds_the_seed(seedchain, tmp_path):
    scenario = load_scenario(SCENARIOS / "qemu720-chain.yaml")
    scenario = dataclasses.replace(scenario, layers=scenario.layers[:1])
    images = build_chain(scenario, seedchain.cache)
    build = prepare_qemu(scenario, seedchain.cache, lambda message: None)
    args = chain.qemu_args(scenario, images, build, "tcg", tmp_path)
    assert "-S" in args and "memory-backend=seedchain-ram" in " ".join(args)
    command = build.command(tmp_path, seedchain.cache.root, [images[0].kernel.path, images[0].initrd])
    chain.make_ram_file(tmp_path)
    with chain.start_machine(command, args, tmp_path) as machine:
        catcher = Catcher(machine, "x86_64")
        guest = ram.GuestRam(chain.ram_file(tmp_path), scenario.qemu.machine, scenario.qemu.memory)
        try:
            catcher.stub.set_breakpoint(0x100000)
            catcher.stub.cont()
            stop = catcher.stub.wait(60)
            assert stop is not None and stop.signal == 5, stop and stop.text
            caught = catcher.read_handover(0x100000, "layer 1's entry")
            assert caught is not None and caught.caught and any(caught.data)
            hits = guest.find([caught.data])
            # At the hand-over the seed is in its entry and nowhere else yet.
            assert [(h.address, h.length) for h in hits] == [(caught.address + 16, 32)]
            assert machine.qmp.cmd("query-status")["status"] == "debug"
        finally:
            guest.close()
            catcher.close()
            chain.remove_ram(tmp_path)


@pytest.mark.vm
def test_gdbstub_listens_on_a_unix_socket_in_the_run_folder(seedchain, tmp_path):
    from harness.boot.qemu import Machine
    from harness.arch.x86_64 import find_qemu
    machine = Machine(find_qemu("system"), ["-nodefaults", "-display", "none", *gdb.qemu_args(tmp_path)], tmp_path)
    with machine:
        machine.start()
        chardevs = {d["label"]: d["filename"] for d in machine.qmp.cmd("query-chardev")}
        assert f"unix:{gdb.socket_path(tmp_path)}" in chardevs["gdbstub"]
        assert gdb.socket_path(tmp_path).is_socket()
        stub = gdb.Stub(gdb.socket_path(tmp_path))
        try:
            block = stub.registers()
            assert len(block) >= 17 * 8            # rax..r15, rip at least
            stub.set_breakpoint(0xfff0)
            stub.clear_breakpoint(0xfff0)
            stub.cont()
            stub.stop()                            # an interrupt gets a stop reply
            assert not stub.running
        finally:
            stub.close()
