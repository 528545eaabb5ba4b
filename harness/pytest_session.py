# SPDX-License-Identifier: GPL-2.0-only
"""pytest wiring: seedchain's options, the per-session state the scenario items use, and
which files are scenarios. It brings harness.pytest_plugin (the scenario items) with it.

The checkout's conftest.py registers this module; elsewhere it is asked for, `pytest -p
harness.pytest_session /any/folder/x.yaml`. It is no entry point: it would join every
pytest run in the environment (its options, and YAML files collected as scenarios).

A scenario file is a `*.yaml` that `discover` lists (not `_*.yaml`, matrix.yaml or
known-gaps.yaml) in a scenario folder, one that holds schema.json, so the malformed
scenarios kept as test fixtures are never collected; or one named on the command line,
itself or its folder, wherever it is.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import text
from harness.errors import ScenarioError, SeedchainError
from harness.proc import die_with_parent
from harness.images import qemu_builds
from harness.images.cache import Cache
from harness.scenario.load import check_binaries, check_paths, discover, kernel_options

pytest_plugins = ["harness.pytest_plugin"]


def pytest_addoption(parser):
    group = parser.getgroup("seedchain")
    group.addoption("--qemu", metavar="PATH", help="run every scenario on this qemu-system-x86_64 "
                                                   "(a path, or a name on PATH)")
    group.addoption("--kernel", metavar="[N=]PATH", action="append", default=[],
                    help="boot this bzImage in layer N, or without N= in every layer; repeat for "
                         "several layers (N=PATH wins over PATH in its layer)")
    group.addoption("--artifacts", metavar="DIR", default=None,
                    help="folder for per-scenario logs and results (default: ROOT/seedchain-results)")
    group.addoption("--matrix", metavar="NAME", default=None,
                    help="run the cells of matrix NAME from scenarios/matrix.yaml instead of the scenarios")
    group.addoption("--cell", metavar="AXIS=LABEL", action="append", default=[],
                    help="with --matrix: only the cells whose AXIS has this label ('AXIS=-': cells "
                         "without that axis); repeat to narrow further. E.g. --cell qemu=10.0")
    group.addoption("--seedchain-cache", metavar="DIR", default=None,
                    help="image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    group.addoption("--allow-outside-paths", action="store_true", default=False,
                    help="accept kernel paths in a scenario that lead out of its folder and the "
                         "project (for scenario files you trust)")
    group.addoption("--allow-scenario-binaries", action="store_true", default=False,
                    help="run the QEMU binary a scenario or matrix file names (for files you trust); "
                         "without it only --qemu names one")
    group.addoption("--qemu-arg", metavar="ARG", action="append", default=[],
                    help="one more argument for QEMU, any option (yours, unchecked); repeat for several")


@dataclass
class SeedchainSession:
    cache: Cache
    artifacts: Path
    qemu: str | None = None
    kernel: str | None = None          # --kernel PATH: every layer
    layer_kernels: dict = field(default_factory=dict)   # --kernel N=PATH: {N: path}
    results: list = field(default_factory=list)
    matrix: str | None = None
    matrix_cells: dict = field(default_factory=dict)
    cell_filters: list = field(default_factory=list)
    report_files: dict = field(default_factory=dict)
    gaps: tuple | None = None          # known gaps, loaded on first use
    allow_outside_paths: bool = False
    allow_scenario_binaries: bool = False
    qemu_args: tuple = ()              # --qemu-arg, after each scenario's extra_args
    named: set = field(default_factory=set)     # the paths on the command line, resolved


def pytest_configure(config):
    # The scenario items' marker, known wherever pytest runs (pyproject.toml says it only here).
    config.addinivalue_line("markers", "vm: boots real kernels under QEMU (deselect with -m 'not vm')")
    if hasattr(config, "workerinput"):
        _die_with_controller()
    else:       # the workers pytest-xdist starts from here know who their controller is
        os.environ[CONTROLLER] = str(os.getpid())
    artifacts = config.getoption("--artifacts") or config.rootpath / "seedchain-results"
    try:
        kernel, layer_kernels = kernel_options(config.getoption("--kernel"))
        if config.getoption("--qemu") is not None:
            qemu_builds.check_option(config.getoption("--qemu"))
    except SeedchainError as exc:
        raise pytest.UsageError(str(exc)) from None
    base = config.invocation_params.dir
    config.seedchain = SeedchainSession(
        cache=Cache(Path(config.getoption("--seedchain-cache")) if config.getoption("--seedchain-cache") else None),
        artifacts=Path(artifacts).resolve(),
        qemu=config.getoption("--qemu"),
        matrix=config.getoption("--matrix"),
        cell_filters=[tuple(f.split("=", 1)) for f in config.getoption("--cell")],
        kernel=kernel,
        layer_kernels=layer_kernels,
        allow_outside_paths=config.getoption("--allow-outside-paths"),
        allow_scenario_binaries=config.getoption("--allow-scenario-binaries"),
        qemu_args=tuple(config.getoption("--qemu-arg")),
        named={(base / arg.split("::", 1)[0]).resolve() for arg in config.args},
    )


# --- a pytest-xdist worker goes with its controller ---------------------------------------

CONTROLLER = "SEEDCHAIN_PYTEST_CONTROLLER"   # environment: the pid of the pytest that started the workers
ORPHAN_GRACE = 1.5      # seconds a worker whose controller died has to quit its QEMU and save its facts
WORKER_STOPPED = 130


class _Worker:
    running = False     # a scenario's run is under way here
    stopped = False     # the controller is gone (or the worker got a SIGTERM): end
    gone = threading.Event()


def _watchdog() -> None:
    """Waits in a thread of its own, started beforehand (a signal handler starting a thread
    could wait for a lock the main thread holds): ORPHAN_GRACE after the stop, the end."""
    _Worker.gone.wait()
    time.sleep(ORPHAN_GRACE)
    os.kill(os.getpid(), signal.SIGKILL)


def _die_with_controller() -> None:
    """An xdist worker (an execnet process, started by the controller's main thread) gets a
    SIGTERM when the controller dies, however it dies (PR_SET_PDEATHSIG). Left alone it
    would go on until execnet notices the closed pipe: 8 to 10 s, its QEMU with it, and
    then a warning from its session's end. Instead a run under way unwinds (QEMU quit,
    facts saved) and the worker ends at once after it, or ORPHAN_GRACE seconds after the
    signal whatever it was doing; its QEMU dies with it (PR_SET_PDEATHSIG again)."""
    controller = os.environ.get(CONTROLLER, "")
    if not controller.isdigit() or threading.current_thread() is not threading.main_thread():
        return
    threading.Thread(target=_watchdog, name="seedchain-orphan-watchdog", daemon=True).start()
    signal.signal(signal.SIGTERM, _controller_gone)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != int(controller):       # it died before the line above
        _controller_gone(signal.SIGTERM, None)


def _controller_gone(signum, frame) -> None:
    if _Worker.stopped:
        return
    _Worker.stopped = True
    _Worker.gone.set()
    if not _Worker.running:
        os._exit(WORKER_STOPPED)
    raise KeyboardInterrupt


@contextmanager
def scenario_running():
    """Around a scenario's run in this process: a worker told to stop meanwhile ends as soon
    as the run has unwound, not through pytest's session end (its controller is gone)."""
    _Worker.running = True
    try:
        yield
    except KeyboardInterrupt:
        if _Worker.stopped:
            os._exit(WORKER_STOPPED)
        raise
    finally:
        _Worker.running = False


def is_scenario_file(config, path: Path) -> bool:
    """Is this file a scenario to collect (see the module's docstring)?"""
    if path.suffix != ".yaml" or path not in discover(path.parent):
        return False
    if (path.parent / "schema.json").exists():
        return True
    named = config.seedchain.named
    return path.resolve() in named or path.parent.resolve() in named


def check_scenario_paths(config, scenario) -> None:
    """A kernel path out of the scenario's folder and the project needs --allow-outside-paths;
    the layers --kernel replaces boot the user's own file instead. A QEMU binary the file
    names needs --allow-scenario-binaries, unless --qemu replaces it."""
    session = config.seedchain
    replaced = [layer.index for layer in scenario.layers if session.kernel or layer.index in session.layer_kernels]
    check_paths(scenario, allowed=session.allow_outside_paths, replaced=replaced)
    if session.qemu is None:
        check_binaries(scenario, allowed=session.allow_scenario_binaries)


NOT_RUN = ("scenario", "not run")     # on the reports of items that never got to run a scenario


class BrokenScenario(pytest.Item):
    """A scenario file that cannot be run, as a failing item of its own (named after the
    file, or after the scenario it would have been): the rest are collected and run."""

    def __init__(self, *, error: SeedchainError, cell=None, **kwargs):
        super().__init__(**kwargs)
        self.error = error
        self.cell = cell                # a matrix cell that cannot run: its result says why
        self.user_properties.append(NOT_RUN)

    def runtest(self):
        if self.cell is not None:
            from harness.pipeline import record_error
            record_error(self.cell, self.config.seedchain.artifacts, self.error)
        raise self.error

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, SeedchainError):
            return text.terminal(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario file {self.path.name}"


@pytest.hookimpl(trylast=True)      # after -k and -m: only the scenarios that would run
def pytest_collection_modifyitems(session, config, items):
    """Two files with one scenario name would write one artifacts folder and overwrite each
    other's results: each of their items fails instead, naming both files."""
    by_slug: dict[str, list] = {}
    for item in items:
        if hasattr(item, "scenario"):
            by_slug.setdefault(item.scenario.slug, []).append(item)
    for group in by_slug.values():
        files = sorted({str(item.path) for item in group})
        if len(files) < 2:
            continue
        error = ScenarioError(f"scenario name {group[0].scenario.name!r} is used by {' and '.join(files)}; "
                              "their artifacts and results would overwrite each other",
                              hint="give each scenario file a name of its own (its name: key)")
        for item in group:
            items[items.index(item)] = BrokenScenario.from_parent(item.parent, name=item.name, error=error)


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "seedchain", None)
    ran_scenarios = any(".yaml::" in getattr(report, "nodeid", "") and getattr(report, "when", "") == "call"
                        and NOT_RUN not in getattr(report, "user_properties", ())
                        for reports in terminalreporter.stats.values() for report in reports)
    if session is not None and ran_scenarios:
        terminalreporter.write_line(f"seedchain artifacts (console logs, reports, result.json): {session.artifacts}")
    for path in getattr(session, "report_files", {}).values():
        terminalreporter.write_line(f"seedchain matrix report: {path}")


@pytest.fixture(scope="session")
def seedchain(request) -> SeedchainSession:
    """The session's cache, artifact folder and --qemu/--kernel overrides."""
    return request.config.seedchain
