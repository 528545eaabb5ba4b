# SPDX-License-Identifier: GPL-2.0-only
"""One scenario through the whole pipeline: scenario -> images -> boot -> facts -> checks.

`run` reads like the pipeline, a line a step; each step is a function of one stage's
subpackage, and data only flows down the stages. The CLI, the pytest plugin and the
benchmarks all call `run`.
"""

from __future__ import annotations

import errno
import json
import os
import time
import traceback
from pathlib import Path
from collections.abc import Callable

from harness import runfolder
from harness.boot.chain import (boot_chain, choose_accel, make_ram_file, qemu_args, remove_ram, save_facts,
                                start_machine)
from harness.boot.channel import INFRASTRUCTURE
from harness.boot.qemu import check_socket_room
from harness.checks.verdict import RunResult, judge
from harness.errors import SeedchainError
from harness.facts import ledger
from harness.facts.layer import Component, LayerFacts, SeedFile
from harness.images import esp, qemu_builds
from harness.images.cache import Cache
from harness.images.initramfs import LayerImage, build_chain
from harness.images.preflight import check_scenario
from harness.private import make_folder, write_file
from harness.progress import TRANSIENT, reporting
from harness.scenario.model import Scenario

Progress = Callable[[str], None]
MAX_INFRA_ATTEMPTS = 3
RETRY_PAUSE = 2.0
ERROR_LOG = "error.log"     # a bug's traceback, in the run folder



def run(scenario: Scenario, *, cache: Cache, artifacts: Path,
        progress: Progress = lambda message: None) -> RunResult:
    """Run the scenario and judge it. Setup problems raise SeedchainError; guest faults
    are recorded per layer and become part of the verdict. A run that ends before its
    verdict (a failed download, a QEMU that did not start, a bug) still leaves a
    result.json, marked with its error, so a report over the results shows the cell."""
    started, held = time.monotonic(), False
    try:
        with reporting(_sink(scenario, progress)):      # long steps deep in a stage report here
            notes = check_scenario(scenario, cache)       # suites, QEMU, kernel files: before anything is built
            outdir = artifacts / scenario.slug
            for folder in (outdir, *(outdir / f"boot-{n}" for n in range(1, scenario.repeat))):
                check_socket_room(folder)                 # a too long path is told before images are built
            swept = cache.sweep()                         # what killed builds left in the cache
            with runfolder.locked(outdir):                # one run at a time in the folder, and only ours
                prepare_artifacts(scenario, artifacts)
                held = True
                try:
                    return _run(scenario, cache, outdir, progress, started, notes, swept)
                except Exception as exc:                  # the folder is ours: its logs stay
                    _write_error(scenario, outdir, _told(exc, outdir, cache), time.monotonic() - started)
                    raise
    except Exception as exc:
        failure = _told(exc, artifacts / scenario.slug, cache)
        if not held:                                      # the error result is written already
            record_error(scenario, artifacts, failure, seconds=time.monotonic() - started)
        if failure is not exc:
            raise failure from None
        raise


def _told(exc: Exception, outdir: Path, cache: Cache) -> Exception:
    """A full disk (ENOSPC) as one message that names the folders it could be; anything
    else as it is."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return no_space(exc, [outdir, cache.root])
    return exc


def record_error(scenario: Scenario, artifacts: Path, exc: Exception, *, seconds: float = 0.0) -> None:
    """For a run that failed before it held its run folder: take the folder (only one
    seedchain made, and not while another run holds it), empty it (an earlier run's
    verdict must not stand in for this one) and write the error result there. A folder
    that cannot be had or written leaves the run's own error to speak."""
    try:
        with runfolder.locked(artifacts / scenario.slug):
            outdir = prepare_artifacts(scenario, artifacts)
            _write_error(scenario, outdir, exc, seconds)
    except (OSError, SeedchainError):
        pass


def _write_error(scenario: Scenario, outdir: Path, exc: Exception, seconds: float) -> None:
    """The result of a run that reached no verdict: no layers, `error` the reason (what
    went wrong, where, and a hint; for anything but a SeedchainError, a bug: its type and
    message)."""
    if isinstance(exc, SeedchainError):
        reason = f"could not run: {exc}"
    else:
        reason = f"could not run: a bug in seedchain: {type(exc).__name__}: {exc}"
        _keep_traceback(outdir, exc)
    result = RunResult(scenario=scenario, layers=[], error=reason, artifacts=str(outdir),
                       seconds=seconds, qemu_binary=scenario.qemu.build)
    try:
        write_result(outdir, result)
    except (OSError, SeedchainError):
        pass


def _keep_traceback(outdir: Path, exc: Exception) -> None:
    """A bug's traceback in the run folder's error.log, beside the logs of the boot it
    cut short; the exception is told where (the CLI prints its notes with it)."""
    path = outdir / ERROR_LOG
    try:
        write_file(path, "".join(traceback.format_exception(exc)))
    except (OSError, SeedchainError):
        return
    exc.add_note(f"seedchain: the traceback is kept in {path}")


def _run(scenario: Scenario, cache: Cache, outdir: Path, progress: Progress, started: float,
         notes: list[str], swept: list) -> RunResult:
    retries: list[dict] = []
    if swept:
        progress(f"{scenario.name}: removed {len(swept)} temporary folder{'s' * (len(swept) > 1)} "
                 "that killed builds left in the cache")
    for note in notes:
        progress(f"{scenario.name}: {note}")
    progress(f"{scenario.name}: building images")
    images = _retrying("images", lambda: build_chain(scenario, cache), retries, progress)
    build = prepare_qemu(scenario, cache, progress)
    accel = choose_accel(scenario.qemu.accel, build, images[0].kernel.path, cache, outdir)
    for number in range(1, scenario.repeat):
        progress(f"{scenario.name}: boot {number} of {scenario.repeat} (the last one is judged)")
        earlier, _, _ = boot_once(scenario, images, build, accel, outdir / f"boot-{number}", cache, retries, progress)
        ledger.record(cache.root, scenario.name, scenario.id, earlier)
    facts, version, machine_args = boot_once(scenario, images, build, accel, outdir, cache, retries, progress)

    error = infrastructure_error(facts)
    result = judge(scenario, facts, qemu_version=version, qemu_binary=build.label, accel=accel,
                   artifacts=str(outdir), seconds=time.monotonic() - started, error=error,
                   qemu_args=machine_args, retries=retries, qemu_source=build.source)
    if error is None:                             # an unfinished run's seeds are not history
        ledger.record(cache.root, scenario.name, scenario.id, facts)
    write_result(outdir, result)
    return result


def boot_once(scenario: Scenario, images: list[LayerImage], build: qemu_builds.QemuBuild, accel: str,
              outdir: Path, cache: Cache, retries: list[dict],
              progress: Progress) -> tuple[list[LayerFacts], str, list[str]]:
    """One boot of the chain into `outdir`: its facts (each caught seed set beside the
    ledger's earlier runs), the QEMU version and QEMU's arguments."""
    make_folder(outdir)
    command = build.command(outdir, cache.root, [images[0].kernel.path, images[0].initrd,
                                                 *([images[0].chain_disk] if images[0].chain_disk else [])])
    disk = esp.prepare(scenario, images[0].kernel.path, images[0].initrd, images[0].cmdline, cache, outdir)
    args = qemu_args(scenario, images, build, accel, outdir, disk)
    facts = empty_facts(scenario, images)
    ram = scenario.capture.seed_in_flight and scenario.capture.ram_search
    try:
        def start():
            if ram:
                make_ram_file(outdir)      # private and empty: QEMU opens it and sizes it
            return start_machine(command, args, outdir, scenario.arch)
        machine = _retrying("qemu-start", start, retries, progress)
    except BaseException:
        remove_ram(outdir)
        raise
    version = ""
    try:
        with machine:
            version = machine.query_version()
            progress(f"{scenario.name}: QEMU {version} ({accel}, {scenario.qemu.machine}) started")
            boot_chain(scenario, machine, facts, outdir, progress)
        facts[0].seed_file = read_seed_file(disk)     # QEMU has quit: the ESP is the host's again
        ledger.annotate(facts, ledger.runs(cache.root, scenario.name))
    finally:
        try:
            save_facts(outdir, facts)
        finally:
            remove_ram(outdir)                        # gone already, unless the watch never opened it
    return facts, version, machine.args


def infrastructure_error(facts: list[LayerFacts]) -> str | None:
    """The run's error when something outside the guest ended it (QEMU killed by a signal):
    then there is no verdict, and `seedchain run` says it could not test (125)."""
    for f in facts:
        if f.fault in INFRASTRUCTURE:
            return f"layer {f.index}: {f.fault}: {f.fault_detail}"
    return None


def no_space(exc: OSError, folders: list[Path]) -> SeedchainError:
    """A full disk as one message naming the folder that is full (the error's file, or the
    first of `folders` with under a MiB left), not a traceback."""
    named = [Path(exc.filename).parent] if exc.filename else []
    full = named + [f for f in folders if _free(f) < 1 << 20] + folders
    folder = full[0]
    return SeedchainError(f"no space left on the device holding {folder}",
                          hint="free some space there (or choose another --artifacts folder or "
                               "SEEDCHAIN_CACHE) and run again")


def _free(folder: Path) -> int:
    for place in (folder, *folder.parents):
        try:
            st = os.statvfs(place)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return 1 << 62


def read_seed_file(disk: esp.EspDisk | None) -> SeedFile | None:
    """The boot loader's seed file before (as written) and after the boot (read back
    from the ESP image), as digests; None without a boot loader."""
    if disk is None:
        return None
    facts = SeedFile(loader=f"{disk.loader} {disk.loader_version}", path=disk.seed_path,
                     system_token=disk.token, before_sha256=esp.digest(disk.seed_before) if disk.seed_before else None,
                     before_size=len(disk.seed_before))
    try:
        after = esp.read_seed_file(disk.image, disk.seed_path)
    except SeedchainError as exc:
        facts.error = str(exc)
        return facts
    finally:
        disk.image.unlink(missing_ok=True)   # its parts are in the cache; the file is 64 MiB or more
    if after is not None:
        facts.after_sha256, facts.after_size, facts.after_zero = esp.digest(after), len(after), not any(after)
    return facts


def _sink(scenario: Scenario, progress: Progress) -> Progress:
    """Progress messages from inside the stages, named after the scenario; an in-between
    update (TRANSIENT first) stays marked as one."""
    def sink(message: str) -> None:
        mark = TRANSIENT if message.startswith(TRANSIENT) else ""
        progress(f"{mark}{scenario.name}: {message.removeprefix(TRANSIENT)}")
    return sink


def prepare_artifacts(scenario: Scenario, artifacts: Path) -> Path:
    """A clean, private folder for the scenario's logs and results, with a copy of its file.
    Only a folder seedchain made (harness/runfolder.py) is emptied; anything else there is
    refused. What a killed run left goes (its sockets, its logs), and so do its guest-RAM
    folders on tmpfs, named after the run folder."""
    outdir = runfolder.claim(artifacts / scenario.slug)
    for folder in (outdir, *outdir.glob("boot-*")):
        remove_ram(folder)
    runfolder.empty(outdir)
    write_file(outdir / "scenario.yaml", Path(scenario.path).read_bytes())
    return outdir


def prepare_qemu(scenario: Scenario, cache: Cache, progress: Progress) -> qemu_builds.QemuBuild:
    """The QEMU build the scenario names, its root file system made first if needed."""
    if scenario.qemu.build.startswith(("debian:", "source:")):
        progress(f"{scenario.name}: preparing QEMU {scenario.qemu.build}")
    return qemu_builds.resolve(scenario.qemu.build, cache,
                               lambda message: progress(f"{scenario.name}: {message}"),
                               arch=scenario.arch, firmware=scenario.qemu.firmware)


def empty_facts(scenario: Scenario, images: list[LayerImage]) -> list[LayerFacts]:
    """Per layer, what is known before the boot: where its parts came from."""
    return [LayerFacts(index=layer.index, loader=layer.loader, arch=scenario.arch,
                       component=Component(kernel_spec=img.kernel.spec, kernel_package=img.kernel.package,
                                           kernel_version=img.kernel.version, kernel_note=img.kernel.note,
                                           userland=img.userland.suite,
                                           kexec_tools_version=img.userland.kexec_tools_version))
            for layer, img in zip(scenario.layers, images, strict=True)]


def write_result(outdir: Path, result: RunResult) -> None:
    write_file(outdir / "result.json", json.dumps(result.to_json(), indent=2) + "\n")


def _retrying(stage: str, attempt, retries: list[dict], progress: Progress):
    """Run an infrastructure step, trying again after a transient failure (a download,
    a QEMU that did not come up). Only set-up is retried: never a verdict."""
    for number in range(1, MAX_INFRA_ATTEMPTS + 1):
        try:
            return attempt()
        except SeedchainError as exc:
            if not exc.transient or number == MAX_INFRA_ATTEMPTS:
                raise
            retries.append({"stage": stage, "attempt": number, "error": str(exc)})
            progress(f"{stage} failed (attempt {number}), trying again: {exc.what}")
            time.sleep(RETRY_PAUSE * number)
