# SPDX-License-Identifier: GPL-2.0-only
"""A matrix's CI jobs, for GitHub Actions: one job per label of an axis (qemu).

    seedchain matrix NAME [--github] [--by AXIS] [--file scenarios/matrix.yaml]

lists the cells of matrix NAME, one id a line. With --github it prints instead the
job list as one line of compact JSON, ready for `strategy.matrix: ${{ fromJSON(...) }}`:

    {"include":[{"qemu":"5.2"},{"qemu":"7.2"},{"qemu":"10.0"},{"qemu":"11.1"},{"qemu":"-"}]}

one job per label the axis takes in any of the matrix's groups, in file order, then
"-" for the cells of groups without that axis. A job runs its share with
`pytest scenarios --matrix NAME --cell qemu=LABEL` ("-" selects the cells without the
axis), so the jobs together run every cell once, and a QEMU build added to
matrix.yaml gets its job without editing the workflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Sequence

from harness.errors import ScenarioError
from harness.matrix.expand import AXES, expand
from harness.paths import SCENARIOS
from harness.scenario.model import Scenario

MATRIX_FILE = SCENARIOS / "matrix.yaml"
DEFAULT_AXIS = "qemu"
NO_AXIS = "-"           # the label of cells without the axis, as `--cell AXIS=-` reads it


def job_labels(cells: Sequence[Scenario], axis: str = DEFAULT_AXIS) -> list[str]:
    """The axis's labels over the cells, each once, in order; "-" last when a cell
    lacks the axis."""
    labels: list[str] = []
    for cell in cells:
        label = dict(cell.cell).get(axis, NO_AXIS)
        if label not in labels:
            labels.append(label)
    if NO_AXIS in labels:
        labels.remove(NO_AXIS)
        labels.append(NO_AXIS)
    return labels


def github_matrix(cells: Sequence[Scenario], axis: str = DEFAULT_AXIS) -> dict:
    """{"include": [{axis: label}, ...]}: GitHub Actions' matrix of one job per label."""
    return {"include": [{axis: label} for label in job_labels(cells, axis)]}


def github_json(matrix_file: Path, name: str, axis: str = DEFAULT_AXIS) -> str:
    """The job list of matrix `name` as compact JSON (one line, no spaces)."""
    return json.dumps(github_matrix(cells_of(matrix_file, name, axis), axis), separators=(",", ":"))


def cells_of(matrix_file: Path, name: str, axis: str = DEFAULT_AXIS) -> list[Scenario]:
    """Every cell of matrix `name`; errors name the file and what exists."""
    if axis not in AXES:
        raise ScenarioError(f"unknown axis {axis!r}", where=str(matrix_file),
                            hint=f"axes: {', '.join(AXES)}")
    matrix_file = Path(matrix_file)
    if not matrix_file.is_file():
        raise ScenarioError("no such matrix file", where=str(matrix_file),
                            hint=f"give --file a matrix.yaml (the shipped one is {MATRIX_FILE})")
    return expand(matrix_file, name)


def print_matrix(name: str, matrix_file: Path = MATRIX_FILE, *, github: bool = False,
                 axis: str = DEFAULT_AXIS) -> int:
    """`seedchain matrix`: the cells, or with github=True the job list. Exit status 0;
    a wrong name or file raises ScenarioError (the command line exits 2)."""
    if github:
        print(github_json(matrix_file, name, axis))
        return 0
    cells = cells_of(matrix_file, name, axis)
    for cell in cells:
        print(cell.id)
    print(f"{len(cells)} cells in {len(job_labels(cells, axis))} jobs by {axis}")
    return 0
