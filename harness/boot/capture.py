# SPDX-License-Identifier: GPL-2.0-only
"""Catch each seed in flight: stop the guest where the next kernel is entered and read
the seed its loader handed over, before that kernel can mix it in and zero it.

The stop point is a breakpoint at the receiving kernel's entry (harness/arch names it:
QEMU's -kernel entry for layer 1, the load address a kexec loader reports + 0x200 for
the others). At the stop the boot_params pointer is in a register; the seed records
are walked from its hdr.setup_data through QMP, while the guest stands still. A stop
that is no hand-over (no boot_params where the register points) is stepped over.
"""

from __future__ import annotations

import time

from harness.arch import get as get_arch
from harness.boot import gdb
from harness.errors import QemuError
from harness.facts.layer import SeedInFlight

MAX_FALSE_STOPS = 8          # stops at the address that were no hand-over, before giving up


class Catcher:
    """The gdbstub connection of one run, and the breakpoint armed for the next hand-over."""

    def __init__(self, machine, arch: str):
        self.machine = machine
        self.arch = get_arch(arch)
        self.stub = gdb.Stub(gdb.socket_path(machine.workdir))
        self.armed: tuple[int, str] | None = None
        self.efi_table: int | None = None    # the parent's EFI seed table, read at the next stop too

    def arm(self, address: int, how: str) -> None:
        """Set the breakpoint for the next hand-over (stops the guest for a moment)."""
        self.stub.stop()
        if self.armed:
            self.stub.clear_breakpoint(self.armed[0])
        self.stub.set_breakpoint(address)
        self.armed = (address, how)

    def resume(self) -> None:
        """Let a stopped guest go on (nothing to do when it runs)."""
        if not self.stub.running:
            try:
                self.stub.cont()
            except Exception:  # the stub's own complaint; what matters is whether QEMU is there
                if self.machine.wait_exit(1.0) is None:
                    raise
                # QEMU went (killed, or its stop reply said goodbye): the layer's wait reads why

    def wait(self, deadline: float, stream, console) -> SeedInFlight:
        """Wait for the armed hand-over; read the seed there, disarm and let the guest go.
        Gives up (with the reason) when QEMU exits, the layer reports first, or at the deadline."""
        if self.armed is None:
            return SeedInFlight(reason="no breakpoint was armed")
        address, how = self.armed
        false_stops = 0
        while True:
            if not self.machine.running():
                return self._missed(f"QEMU exited before the hand-over at {address:#x}")
            stream.poll(0)
            console.refresh()       # a console flood ends the wait (a Fault)
            if b"@begin " in stream.buffer:
                return self._missed(f"the layer reported without passing {address:#x} "
                                    f"({how}): the kernel was entered elsewhere")
            if time.monotonic() > deadline:
                return self._missed(f"no stop at {address:#x} before the layer's timeout")
            reply = self.stub.wait(gdb.POLL)
            if reply is None:
                continue
            stopped_at = time.monotonic()
            if reply.exited:
                return self._missed(f"the gdbstub reported the guest gone ({reply.text})")
            caught = self.read_handover(address, how)
            if caught is not None:
                caught.stopped_seconds = time.monotonic() - stopped_at
                self.stub.clear_breakpoint(address)
                self.armed = None
                self.stub.cont()
                return caught
            false_stops += 1
            if false_stops > MAX_FALSE_STOPS:
                return self._missed(f"{false_stops} stops at {address:#x} held no boot_params")
            self.stub.clear_breakpoint(address)      # step over the breakpoint, then re-arm it
            self.stub.step()
            self.stub.set_breakpoint(address)
            self.stub.cont()

    def read_handover(self, address: int, how: str) -> SeedInFlight | None:
        """The seed at a stop at `address`; None when the stop is no hand-over."""
        block = self.stub.registers()

        def register(name: str) -> int:
            at, size = self.arch.GDB_REGISTERS[name]
            return int.from_bytes(block[at:at + size], "little")

        if register(self.arch.PC_REGISTER) != address:
            return None
        pointer = register(self.arch.BOOT_PARAMS_REGISTER)
        try:
            head, seeds, extra = self.arch.read_handover(self.machine.read_memory, pointer)
        except ValueError:
            return None
        found = SeedInFlight(stopped=True, stop_address=address, stop_how=how, boot_params=pointer,
                             setup_data_head=head, entries=len(seeds),
                             kaslr_seed=extra.get("kaslr_seed"), dtb_size=extra.get("dtb_size", 0))
        if seeds:
            found.address, found.len, found.data = seeds[0]
        if self.efi_table is not None:
            # What the child will find at the parent's RNG= address, before it can touch it.
            try:
                found.efi_size, found.efi_data = self.arch.read_efi_seed(self.machine.read_memory,
                                                                         self.efi_table)
                found.efi_address = self.efi_table
            except (QemuError, ValueError):
                pass    # left unread: the checks then do not count the inherited table
        return found

    def _missed(self, reason: str) -> SeedInFlight:
        address, how = self.armed or (None, "")
        if self.armed and self.machine.running():
            try:
                self.stub.stop()
                self.stub.clear_breakpoint(self.armed[0])
                self.stub.cont()
            except QemuError:
                pass    # the run goes on; the layer's own wait sees what became of QEMU
        self.armed = None
        return SeedInFlight(reason=reason, stop_address=address, stop_how=how)

    def close(self) -> None:
        self.stub.close()


def not_caught(reason: str) -> SeedInFlight:
    return SeedInFlight(reason=reason)


class Watch:
    """What the runner sees of one run besides the agent: each seed at its hand-over,
    and the guest's RAM after each report. The chain runner calls it at those points."""

    def __init__(self, scenario, machine, ram_file, arch: str):
        self.scenario = scenario
        self.machine = machine
        self.arch = get_arch(arch)
        self.catcher = Catcher(machine, arch)
        self.ram = None
        if ram_file is not None and scenario.capture.ram_search:
            from harness.boot.ram import GuestRam
            self.ram = GuestRam(ram_file, scenario.qemu.machine, scenario.qemu.memory,
                                base=getattr(self.arch, "RAM_BASE", 0))

    def _arm(self, f, entry: int | None, how: str) -> None:
        """Arm the layer's hand-over, or record why it cannot be; the guest runs on."""
        if entry is None:
            f.seed_in_flight = not_caught(how)
        else:
            self.catcher.arm(entry, how)
        self.catcher.resume()

    def first_hop(self, f) -> None:
        """Arm the breakpoint for layer 1 (QEMU started stopped) and let the guest run."""
        loader = self.scenario.bootloader
        self._arm(f, *self.arch.first_entry(self.scenario.qemu.machine, self.scenario.qemu.firmware,
                                            loader.name if loader else "", read=self.machine.read_memory))

    def arm_next(self, parent, child) -> None:
        """After the parent loaded the child: arm the child's entry, from the loader's words,
        and have the stop read the parent's EFI seed table too (kexec hands it on)."""
        self.catcher.efi_table = parent.efi_rng_address
        self._arm(child, *self.arch.next_entry(parent.loader_record.output, parent.loader_record.dmesg))

    def hand_over(self, f, deadline: float, stream, console) -> None:
        """Wait for the layer's hand-over, if armed, and record the seed found there."""
        if f.seed_in_flight is None:
            f.seed_in_flight = self.catcher.wait(deadline, stream, console)

    def search_ram(self, f, facts) -> None:
        """With the guest stopped, search its RAM for every seed caught so far."""
        if self.ram is None:
            return
        seeds = [(g.index, g.seed_in_flight) for g in facts[:f.index]
                 if g.seed_in_flight is not None and g.seed_in_flight.caught]
        if not seeds:
            f.ram_search_error = "no seed was caught in flight so far: nothing to search for"
            return
        from harness.facts.layer import RamCopy
        started = time.monotonic()
        self.catcher.stub.stop()
        # Resumed only after a search that ended, found or failed: on an interrupt (a Ctrl-C
        # reaches QEMU too, which then says goodbye on the stub) the guest is left stopped
        # and nothing more is asked of the stub; the run unwinds and QEMU is quit.
        try:
            hits = self.ram.find([s.data for _, s in seeds])
        except (OSError, ValueError) as exc:
            self.catcher.resume()
            f.ram_search_error = f"{type(exc).__name__}: {exc}"
            return
        self.catcher.resume()
        entries = {s.address + self.arch.SEED_VALUE_OFFSET for _, s in seeds}
        f.ram_copies = [RamCopy(address=h.address, seed_layer=seeds[h.seed][0], offset=h.offset,
                                length=h.length, context=h.context)
                        for h in hits if h.address - h.offset not in entries]
        f.ram_searched = True
        f.ram_search_seconds = time.monotonic() - started

    def close(self) -> None:
        if self.ram is not None:
            self.ram.close()
        self.catcher.close()
