# SPDX-License-Identifier: GPL-2.0-only
"""Boot the chain: one QEMU boot that kexecs down the layers, filling each layer's facts.

For each layer the runner waits, with the layer's timeout, for one of: the agent's
report (the layer booted), QEMU exiting (a panic or a reset), or the deadline (a
hang). After a report it reads the layer's setup_data from guest RAM before the
agent may go on. Everything recorded goes to the scenario's artifact folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from collections.abc import Callable

from qemu.qmp import QMPError

from harness.arch.fdt import DtbError
from harness.boot import gdb
from harness.boot import qemu as qemu_control
from harness.boot.rsp import ProtocolError, Timeout
from harness.boot import ram as guest_ram
from harness.boot.channel import AgentStream, Console, Fault, qemu_gone, wait_block
from harness.boot.capture import Watch, not_caught
from harness.images import qemu_builds
from harness.images.cache import Cache
from harness.arch import DEFAULT, carrier
from harness.arch import get as get_arch
from harness.facts.layer import SEED_SIZE, SETUP_HEADER_SIZE, DtbRam, EfiSeedRam, LayerFacts, RamEntry
from harness.images.esp import EspDisk
from harness.images.initramfs import CHAIN_DISK_SERIAL, LayerImage
from harness.private import write_file
from harness.scenario.model import Scenario
from harness.errors import QemuError
from harness.facts.report import ReportError, parse_loader, parse_report

Progress = Callable[[str], None]
LOADER_TIMEOUT = 120.0          # kexec -l of a large initramfs takes a few seconds under TCG
POWEROFF_TIMEOUT = 30.0
_FULL = re.compile(r"No space left on device")   # the guest's RAM-backed root file system is full
_COMPLAINT = re.compile(r"fail|error|cannot|can't|denied|not permitted|invalid|no such", re.I)
# What reading the guest or talking to QEMU may answer: the monitor's and the stub's
# complaints (QemuError, qemu.qmp's QMPError, a socket's OSError, the stub's framing and
# timeout) and a device tree that does not parse. These are facts about the guest or
# QEMU; anything else raised on the way is a bug of seedchain and goes up (exit 125).
MACHINE_ERRORS: tuple[type[Exception], ...] = (QemuError, QMPError, OSError, ProtocolError, Timeout)
GUEST_READ_ERRORS: tuple[type[Exception], ...] = (*MACHINE_ERRORS, DtbError)
_FAULT_OR_GONE: tuple[type[Exception], ...] = (Fault, *MACHINE_ERRORS)


def read_efi_seed(machine: qemu_control.Machine, address: int, arch: str = DEFAULT) -> EfiSeedRam:
    """The EFI RNG seed table in guest RAM, as the architecture lays it out."""
    size, data = get_arch(arch).read_efi_seed(machine.read_memory, address)
    return EfiSeedRam(address=address, size=size, data=data)


def read_setup_data(machine: qemu_control.Machine, head: int, arch: str = DEFAULT) -> list[RamEntry]:
    """The seed records in guest RAM, walked from the head the guest reported."""
    return [RamEntry.parse(address, raw)
            for address, raw in get_arch(arch).read_seed_records(machine.read_memory, head)]


def read_dtb_after(machine: qemu_control.Machine, caught, arch: str) -> DtbRam:
    """The DTB handed over, read again where it was: is its rng-seed (or its bytes) still
    there, and what does kaslr-seed hold now."""
    from harness.arch import fdt as dtb
    try:
        blob = get_arch(arch).read_dtb(machine.read_memory, caught.boot_params)
        chosen = dtb.chosen(blob)
    except dtb.DtbError as exc:
        return DtbRam(address=caught.boot_params, error=str(exc))
    except MACHINE_ERRORS as exc:  # the monitor's answer is diagnostic data, not a reason to stop
        return DtbRam(address=caught.boot_params, error=f"{type(exc).__name__}: {exc}")
    return DtbRam(address=caught.boot_params, size=len(blob), rng_seed=chosen.rng_seed is not None,
                  seed_bytes=bool(caught.data) and caught.data in blob,
                  kaslr_seed=None if chosen.kaslr_seed is None else chosen.kaslr_seed.hex())


def choose_accel(wanted: str, build: qemu_builds.QemuBuild, kernel: Path, cache: Cache,
                 workdir: Path) -> str:
    """TCG unless KVM is asked for, or "auto" and a probe boot proves KVM works."""
    if wanted in ("tcg", "kvm"):
        return wanted
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    binary = build.host_binary
    key = hashlib.sha256(f"{build.label}\0{binary}\0{os.stat(binary).st_mtime}\0{boot_id}".encode()).hexdigest()[:24]
    memo = cache.root / "kvm-probe" / key
    if memo.exists():
        return memo.read_text().strip()
    command = [*build.command(workdir, cache.root, [kernel]), *build.extra_args]
    accel = "kvm" if qemu_control.kvm_usable(command, kernel, workdir) else "tcg"
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(accel + "\n")
    return accel


def start_machine(command: list[str], args: list[str], outdir: Path,
                  arch: str = DEFAULT) -> qemu_control.Machine:
    """A started QEMU; one that did not come up is closed before the error goes on."""
    machine = qemu_control.Machine(command, args, outdir, agent_device=get_arch(arch).AGENT_DEVICE)
    try:
        machine.start()
    except BaseException:
        machine.close()
        raise
    return machine


def ram_folder(outdir: Path) -> Path:
    """The private folder of the guest's RAM on the host's tmpfs, one per run folder and user."""
    tag = hashlib.sha256(str(outdir.resolve()).encode()).hexdigest()[:16]
    return guest_ram.shm_folder() / f"seedchain-{os.geteuid()}-{tag}"


def ram_file(outdir: Path) -> Path:
    """The guest's RAM file (guest_ram.make_file makes it, in ram_folder)."""
    return ram_folder(outdir) / guest_ram.FILE


def make_ram_file(outdir: Path) -> Path:
    return guest_ram.make_file(ram_folder(outdir))


def remove_ram(outdir: Path) -> None:
    guest_ram.remove_folder(ram_folder(outdir))


def qemu_args(scenario: Scenario, images: list[LayerImage], build: qemu_builds.QemuBuild,
              accel: str, outdir: Path, esp: EspDisk | None = None) -> list[str]:
    """QEMU's options for the chain: the machine, the gdbstub and the RAM file when the
    seeds are caught in flight, the chain disk with the later layers' images, then
    layer 1's kernel, initramfs and command line (or, with a boot loader, the ESP disk
    that holds them)."""
    q = scenario.qemu
    args = qemu_control.base_args(machine=q.machine, cpu=q.cpu, memory=q.memory, accel=accel, rng=q.rng,
                                  arch=scenario.arch, firmware=q.firmware, workdir=outdir,
                                  vars_template=esp.vars_template if esp else None,
                                  boot_disk=esp.image if esp else None)
    if scenario.capture.seed_in_flight:
        args += gdb.qemu_args(outdir)
        if scenario.capture.ram_search:
            args += guest_ram.qemu_args(ram_file(outdir), q.memory)
    if images[0].chain_disk is not None:
        args += get_arch(scenario.arch).chain_disk_args(q.machine, images[0].chain_disk, CHAIN_DISK_SERIAL,
                                                        boot_disk=esp is not None)
    args += build.extra_args
    if esp is None:
        args += ["-kernel", str(images[0].kernel.path), "-initrd", str(images[0].initrd),
                 "-append", images[0].cmdline]
    args += q.extra_args
    return args


def boot_chain(scenario: Scenario, machine: qemu_control.Machine, facts: list[LayerFacts],
               outdir: Path, progress: Progress) -> None:
    """Follow the chain in a started QEMU, filling each layer's facts; a guest fault is
    recorded in the facts of the layer that showed it, never raised."""
    console = Console(machine.console_path)
    stream = AgentStream(machine, outdir / "agent.log")
    watch = None
    if scenario.capture.seed_in_flight:
        watch = _watch(scenario, machine, outdir)
    else:
        for f in facts:
            f.seed_in_flight = not_caught("capture: {seed_in_flight: false} in the scenario")
    try:
        for i, layer in enumerate(scenario.layers):
            f = facts[i]
            start = time.monotonic()
            failed = i
            try:
                deadline = start + layer.timeout
                if watch and i == 0:
                    watch.first_hop(f)
                if watch:
                    watch.hand_over(f, deadline, stream, console)
                    if f.seed_in_flight is not None and f.seed_in_flight.stopped:
                        _step(f, "entered", start)
                _boot_layer(layer.index, layer.timeout, machine, stream, console, f,
                            intended_panic=layer.loader == "kexec_crash", watch=watch, facts=facts,
                            deadline=max(deadline, time.monotonic() + 5.0), start=start)
                f.seconds = time.monotonic() - start
                progress(f"layer {layer.index}: booted {f.field('kernel_release')} "
                         f"in {f.seconds:.1f} s via {layer.loader}; {_seen(f)}"
                         + ("; an EFI seed table" if f.efi_rng_address is not None else ""))
                if i + 1 < len(scenario.layers):
                    # From here a fault is the child's to show: the parent itself booted.
                    failed = i + 1
                    _hand_over(machine, stream, console, f, scenario.layers[i + 1],
                               watch=watch, child=facts[i + 1], start=start)
            except _FAULT_OR_GONE as exc:
                # A Fault, or the stub's or the monitor's complaint because QEMU went away
                # (killed from outside): then the fault is QEMU's exit. Anything else is
                # seedchain's own bug and goes up as it is.
                fault = exc if isinstance(exc, Fault) else qemu_gone(machine, console, f"layer {failed + 1}")
                if fault is None:
                    raise
                facts[failed].fault, facts[failed].fault_detail = fault.kind, fault.detail
                facts[failed].console_tail = console.tail()
                f.seconds = f.seconds or time.monotonic() - start
                progress(f"layer {failed + 1}: {fault.kind}: {fault.detail}")
                for later in facts[failed + 1:]:
                    later.fault, later.fault_detail = "not-reached", f"layer {failed + 1} failed: {fault.kind}"
                return
        machine.wait_exit(POWEROFF_TIMEOUT)
    finally:
        try:
            stream.close()          # may raise (a full disk): the watch is closed all the same
        finally:
            if watch:
                watch.close()


def _step(f: LayerFacts, name: str, start: float, at: float | None = None) -> None:
    """A named step of the layer: seconds from its start (its hand-over) on the host's clock."""
    f.steps[name] = round((time.monotonic() if at is None else at) - start, 3)


def _seen(f: LayerFacts) -> str:
    """The progress line's word on the seed: setup_data entries, or the DTB's rng-seed."""
    if carrier(f.arch) == "setup_data":
        return f"{len(f.sysfs_seeds)} seed entr{'y' if len(f.sysfs_seeds) == 1 else 'ies'}"
    caught = f.seed_in_flight
    if caught is None or not caught.stopped:
        return "the DTB was not caught at the hand-over"
    return f"a {caught.len}-byte rng-seed in its DTB" if caught.caught else "no rng-seed in its DTB"


def _watch(scenario: Scenario, machine: qemu_control.Machine, outdir: Path) -> Watch:
    """The gdbstub connection (and the RAM file, opened and removed at once: it goes
    away with QEMU, whatever happens to this process)."""
    path = ram_file(outdir) if scenario.capture.ram_search else None
    try:
        return Watch(scenario, machine, path, scenario.arch)
    finally:
        if path is not None:
            remove_ram(outdir)


def _boot_layer(index: int, timeout: float, machine, stream, console, f: LayerFacts, *, start: float,
                intended_panic: bool = False, watch: Watch | None = None,
                facts: list[LayerFacts] | None = None, deadline: float | None = None) -> None:
    # The console's mark was set for layer 1 at the start, for the others at their hand-over.
    block = wait_block(machine, stream, console, b"@begin ", f"@end {index}".encode(),
                       timeout, f"report from layer {index}", intended_panic=intended_panic,
                       deadline=deadline)
    if stream.started_at is not None:
        _step(f, "report-begun", start, stream.started_at)
    _step(f, "reported", start)
    try:
        report = parse_report(block)
    except ReportError as exc:
        raise Fault("bad-report", f"layer {index}'s report is malformed: {exc}") from None
    if report.layer != index:
        raise Fault("bad-report", f"expected layer {index}'s report, got layer {report.layer}'s")
    f.booted, f.report = True, report
    try:
        f.ram_entries = read_setup_data(machine, report.setup_data_head, f.arch)
    except GUEST_READ_ERRORS as exc:  # the monitor's answer is diagnostic data, not a reason to stop
        f.ram_error = f"{type(exc).__name__}: {exc}"
    if f.efi_rng_address is not None:
        try:
            f.efi_seed_ram = read_efi_seed(machine, f.efi_rng_address, f.arch)
        except GUEST_READ_ERRORS as exc:  # as above
            f.ram_error = (f"{f.ram_error}; " if f.ram_error else "") + f"EFI seed: {type(exc).__name__}: {exc}"
    caught = f.seed_in_flight
    if carrier(f.arch) == "device_tree" and caught is not None and caught.stopped:
        f.dtb_after = read_dtb_after(machine, caught, f.arch)
    elif caught is not None and caught.caught and caught.address is not None:
        try:     # the cross-check: what became of the very entry that was handed over
            f.handed_entry_after = RamEntry.parse(
                caught.address, machine.read_memory(caught.address, SETUP_HEADER_SIZE + SEED_SIZE))
        except GUEST_READ_ERRORS as exc:  # as above
            f.ram_error = (f"{f.ram_error}; " if f.ram_error else "") + f"handed entry: {type(exc).__name__}: {exc}"
    if watch:
        watch.search_ram(f, facts)
    _step(f, "go", start)
    machine.answer_agent("go")


def _hand_over(machine, stream, console, f: LayerFacts, child_layer, *, start: float,
               watch: Watch | None = None, child: LayerFacts | None = None) -> None:
    next_index = child_layer.index
    console.mark()
    block = wait_block(machine, stream, console, b"@loader ", b"@end-loader",
                       LOADER_TIMEOUT, f"loader record from layer {f.index}")
    _step(f, "loaded", start)
    try:
        f.loader_record = parse_loader(block)
    except ReportError as exc:
        raise Fault("bad-report", f"layer {f.index}'s loader record is malformed: {exc}") from None
    if f.loader_record.rc == 0:
        if watch:
            watch.arm_next(f, child)
        if child_layer.loader != "kexec_crash":
            console.mark()   # the child's console starts here; a crash keeps the earlier mark
    _step(f, "exec", start)
    machine.answer_agent("go")
    if f.loader_record.rc != 0:
        console.refresh()
        full = console.out_of_memory or _FULL.search(f.loader_record.output)
        kind = "out-of-memory" if full else "load-failed"
        raise Fault(kind, f"{f.loader_record.loader} of layer {next_index} failed in layer "
                          f"{f.index} (rc {f.loader_record.rc}): {_gist(f.loader_record.output)}")


def _gist(output: str) -> str:
    """The lines of a tool's output that say what went wrong (kexec -d prints pages)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    telling = [line for line in lines if _COMPLAINT.search(line)]
    return " / ".join((telling or lines)[-3:])[:400] or "(no output)"


def save_facts(outdir: Path, facts: list[LayerFacts]) -> None:
    for f in facts:
        write_file(outdir / f"layer-{f.index}.json", json.dumps(f.to_json(), indent=2) + "\n")
