"""Render a RunResult for people: the verdict table of layers x checks."""

from __future__ import annotations

from harness.scenario.model import CHECKS
from harness.checks.verdict import RunResult
from harness.text import terminal

_WORD = {True: "yes", False: "no", None: "n/a"}


def cell(observed: bool | None, expected: bool | None) -> str:
    """Observed value; "ok" when it is what the scenario expected, "!= X" when not."""
    text = _WORD[observed]
    if expected is None:
        return text
    return f"{text} ok" if observed == expected else f"{text} != {_WORD[expected]}"


def table(result: RunResult) -> str:
    """Layers down, checks across; each cell is observed vs expected."""
    header = ["layer", "kernel", "loader", *CHECKS]
    rows = [header]
    for layer in result.layers:
        f = layer.facts
        kernel = f.field("kernel_release") or f.component.kernel_spec
        rows.append([str(f.index), kernel, f.loader,
                     *(cell(layer.observed[n], layer.expect[n]) for n in CHECKS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def summary(result: RunResult) -> str:
    verdict = "ERROR (no verdict)" if result.error else "PASS" if result.passed else "FAIL"
    s = result.scenario
    head = (f"{s.name}: {verdict}  (QEMU {result.qemu_version or '?'}, {s.qemu.machine}, "
            f"cpu {s.qemu.cpu}, {result.accel or '?'}; {result.seconds:.1f} s)")
    parts = [head, table(result)]
    failures = result.failures()
    if failures:
        parts.append("what broke:\n" + "\n".join(f"  {line}" for line in failures))
    for layer in result.layers:
        if layer.facts.fault and layer.facts.fault != "not-reached" and layer.facts.console_tail:
            parts.append(f"last console lines of layer {layer.facts.index}:\n"
                         + "\n".join(f"  | {line}" for line in layer.facts.console_tail[-12:]))
    parts.append(f"artifacts: {result.artifacts}")
    return terminal("\n".join(parts))     # guest strings (faults, versions) may hold escapes
