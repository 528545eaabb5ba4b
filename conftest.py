"""pytest wiring: seedchain's options and the per-session state the scenario items use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.errors import SeedchainError
from harness.images.cache import Cache
from harness.scenario.load import kernel_options

pytest_plugins = ["harness.pytest_plugin"]


def pytest_addoption(parser):
    group = parser.getgroup("seedchain")
    group.addoption("--qemu", metavar="PATH", help="run every scenario on this qemu-system-x86_64")
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


def pytest_configure(config):
    artifacts = config.getoption("--artifacts") or config.rootpath / "seedchain-results"
    try:
        kernel, layer_kernels = kernel_options(config.getoption("--kernel"))
    except SeedchainError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.seedchain = SeedchainSession(
        cache=Cache(Path(config.getoption("--seedchain-cache")) if config.getoption("--seedchain-cache") else None),
        artifacts=Path(artifacts).resolve(),
        qemu=config.getoption("--qemu"),
        matrix=config.getoption("--matrix"),
        cell_filters=[tuple(f.split("=", 1)) for f in config.getoption("--cell")],
        kernel=kernel,
        layer_kernels=layer_kernels,
    )


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "seedchain", None)
    ran_scenarios = any(".yaml::" in getattr(report, "nodeid", "")
                        for reports in terminalreporter.stats.values() for report in reports)
    if session is not None and ran_scenarios:
        terminalreporter.write_line(f"seedchain artifacts (console logs, reports, result.json): {session.artifacts}")
    for name, path in getattr(session, "report_files", {}).items():
        terminalreporter.write_line(f"seedchain matrix report: {path}")


@pytest.fixture(scope="session")
def seedchain(request) -> SeedchainSession:
    """The session's cache, artifact folder and --qemu/--kernel overrides."""
    return request.config.seedchain
