# SPDX-License-Identifier: GPL-2.0-only
"""pytest front door: every scenario file is one test item that runs the real chain.

Which files are scenarios, the options and the session: harness.pytest_session. A file
that cannot be loaded is a failing item of its own, so the others still run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from harness import text
from .errors import SeedchainError
from harness.paths import SCENARIOS
from harness.private import write_file
from harness.reports.terminal import summary
from harness.pipeline import run
from harness.matrix.expand import expand
from harness.pytest_session import BrokenScenario, check_scenario_paths, is_scenario_file, scenario_running
from harness.scenario.load import load_scenario


def pytest_collection_modifyitems(session, config, items):
    # Longest chains first, so pytest-xdist does not end with one worker booting
    # a 4-layer chain while the other idles. sort() is stable: file order otherwise.
    items.sort(key=lambda item: -len(item.scenario.layers) if isinstance(item, ScenarioItem) else 0)


def pytest_collect_file(parent, file_path: Path):
    if is_scenario_file(parent.config, file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _cells(config, folder: Path) -> list:
    """The --matrix cells of a scenario folder, expanded once per session."""
    memo = config.seedchain.matrix_cells
    if folder not in memo:
        cells = expand(folder / "matrix.yaml", config.seedchain.matrix)
        for axis, label in config.seedchain.cell_filters:
            cells = [c for c in cells if dict(c.cell).get(axis, "-") == label]
        memo[folder] = cells
    return memo[folder]


class ScenarioFile(pytest.File):
    def collect(self):
        try:
            if self.config.seedchain.matrix:
                scenarios = [c for c in _cells(self.config, self.path.parent)
                             if Path(c.path).resolve() == self.path.resolve()]
            else:
                scenarios = [load_scenario(self.path)]
                check_scenario_paths(self.config, scenarios[0])
        except SeedchainError as exc:
            yield BrokenScenario.from_parent(self, name=self.path.stem, error=exc)
            return
        for scenario in scenarios:
            try:
                check_scenario_paths(self.config, scenario)
            except SeedchainError as exc:     # a matrix cell: failing on its own, in the report too
                yield BrokenScenario.from_parent(self, name=scenario.id, error=exc, cell=scenario)
                continue
            item = ScenarioItem.from_parent(self, name=scenario.id, scenario=scenario)
            item.add_marker(pytest.mark.vm)
            for tag in scenario.tags:
                item.keywords[tag] = True
            yield item

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, SeedchainError):
            return text.terminal(excinfo.value)     # kernel paths, guest strings
        return super().repr_failure(excinfo)


class ScenarioFailed(Exception):
    """The chain ran and at least one expectation did not hold."""


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario

    def runtest(self):
        session = self.config.seedchain  # set up by harness.pytest_session's pytest_configure
        scenario = self.scenario.with_overrides(qemu_build=session.qemu, kernel=session.kernel,
                                                layer_kernels=session.layer_kernels,
                                                qemu_args=session.qemu_args)
        with scenario_running():
            result = run(scenario, cache=session.cache, artifacts=session.artifacts)
        self.user_properties += [("artifacts", result.artifacts), ("qemu", result.qemu_version),
                                 ("accel", result.accel), ("seconds", f"{result.seconds:.1f}")]
        write_file(Path(result.artifacts) / "summary.txt", summary(result) + "\n")
        session.results.append(result.to_json())
        if result.error:        # something outside the guest ended the run: no verdict
            raise SeedchainError(result.error, where=scenario.id)
        if session.matrix:
            self._judge_cell(result)
        elif not result.passed:
            raise ScenarioFailed(summary(result))

    def _judge_cell(self, result) -> None:
        """In a matrix a failure may be a known gap (xfail); a known gap that no longer
        shows is news and fails loudly; anything else fails."""
        from harness.matrix.known_gaps import classify, load_gaps
        session = cast(Any, self.config).seedchain        # set by pytest_session's configure
        if session.gaps is None:
            session.gaps = load_gaps(known_gaps_file([Path(self.path).parent]))
        verdict = classify(result.to_json(), session.gaps)
        write_file(Path(result.artifacts) / "classification.json", json.dumps(verdict.to_json(), indent=2) + "\n")
        self.user_properties.append(("matrix_status", verdict.status))
        details = "\n".join(verdict.lines())
        if verdict.status == "known-gap":
            pytest.xfail(f"{verdict.summary()}\n{details}")
        if verdict.status == "unexpected-pass":
            raise ScenarioFailed(f"UNEXPECTED PASS (a known gap no longer shows: news for the users)\n"
                                 f"{verdict.summary()}\n{details}\n\n{summary(result)}")
        if verdict.status != "pass":
            raise ScenarioFailed(f"{verdict.summary()}\n{details}\n\n{summary(result)}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, (ScenarioFailed, SeedchainError)):
            return text.terminal(excinfo.value)     # kernel paths, guest strings
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.name}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """A Ctrl-C that lands while the session winds down (pytest-xdist stopping its
    workers, whose QEMU goes with them) ends it as interrupted, not in a traceback
    from outside pytest's own handling. Then, with --matrix, the matrix report."""
    try:
        yield
    except KeyboardInterrupt:
        session.exitstatus = pytest.ExitCode.INTERRUPTED
        sys.stderr.write("seedchain: interrupted while the session was finishing\n")
        return
    try:
        _write_matrix_report(session)
    except SeedchainError as exc:      # the cells stand; the report over them could not be made
        sys.stderr.write(f"seedchain: error: the matrix report was not written: {text.terminal(exc)}\n")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def known_gaps_file(folders: list[Path]) -> Path:
    """The known gaps of a matrix: known-gaps.yaml beside its matrix.yaml, else the ones
    seedchain ships (a matrix folder of one's own may keep none)."""
    for folder in folders:
        if (folder / "known-gaps.yaml").is_file():
            return folder / "known-gaps.yaml"
    return SCENARIOS / "known-gaps.yaml"


def _write_matrix_report(session) -> None:
    """With --matrix, the controlling process writes the matrix report over every
    cell's result.json (pytest-xdist workers each wrote their own)."""
    config = session.config
    if hasattr(config, "workerinput") or not config.seedchain.matrix or config.option.collectonly:
        return      # a worker, no matrix, or only collecting: collecting writes nothing
    from harness.matrix.known_gaps import load_gaps
    from harness.reports.matrix import merge, write_report
    artifacts = config.seedchain.artifacts
    if not artifacts.exists():
        return
    given = [Path(arg.split("::")[0]) for arg in config.args]
    folders = [*config.seedchain.matrix_cells, *(p if p.is_dir() else p.parent for p in given),
               Path(config.rootpath) / "scenarios"]
    gaps = load_gaps(known_gaps_file(folders))
    report = write_report(merge([artifacts]), gaps, artifacts / "matrix")
    config.seedchain.report_files = report.files


# --- a matrix run's progress: cells done of total, time left (the controlling process) ---

_MATRIX_PROGRESS: dict = {}


def pytest_collection_finish(session):
    config = session.config
    if config.seedchain.matrix and not hasattr(config, "workerinput") and session.items:
        _start_progress(config, sum(isinstance(i, (ScenarioItem, BrokenScenario)) for i in session.items))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """With -n, the controller collects nothing itself: a worker says how many cells there are."""
    config = node.config
    if config.seedchain.matrix and not _MATRIX_PROGRESS:
        _start_progress(config, sum(1 for i in ids if ".yaml::" in i))


def _start_progress(config, total: int) -> None:
    import time
    _MATRIX_PROGRESS.update(config=config, total=total, done=0, started=time.monotonic())


def pytest_runtest_logreport(report):
    state = _MATRIX_PROGRESS
    if not state or ".yaml::" not in report.nodeid or report.when != "teardown":
        return
    import time
    state["done"] += 1
    done, total = state["done"], state["total"]
    elapsed = time.monotonic() - state["started"]
    left = elapsed / done * max(0, total - done)
    writer = state["config"].pluginmanager.get_plugin("terminalreporter")
    if writer is not None:
        writer.ensure_newline()
        writer.write_line(f"matrix {state['config'].seedchain.matrix}: {done}/{total} cells done "
                          f"in {elapsed / 60:.1f} min, about {left / 60:.0f} min left")
