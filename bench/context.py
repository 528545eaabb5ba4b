# SPDX-License-Identifier: GPL-2.0-only
"""What every benchmark section shares: the run's context, the scenarios, the kernel's own milestones."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bench._env import ROOT
from bench.common import write_json
from harness.images.cache import Cache
from harness.scenario.load import load_scenario
from harness.scenario.model import Scenario


OVERHEAD_SCENARIOS = ("kexec-file-2", "kexec-file-4")
OPTIONS_SCENARIO = "kexec-file-2"
SECTIONS = ("overhead", "build", "options", "capture", "arch", "depth", "parallel")
GOAL_OVERHEAD = 1.05
GOAL_WARM_BUILD = 0.5
GOAL_PARALLEL = 1.8

_TS = r"^\[\s*(\d+\.\d+)\] "
_RUN_INIT = re.compile(_TS + r"Run /init as init process", re.M)
_UNPACK_START = re.compile(_TS + r"Trying to unpack rootfs image as initramfs", re.M)
_UNPACK_END = re.compile(_TS + r"Freeing initrd memory", re.M)


@dataclass(kw_only=True)
class Results:
    """What a section's report reads: the results file and what it holds (`run.py --report`
    reprints from these alone)."""
    artifacts: Path
    repeat: int
    results: dict
    json_path: Path
    scenarios: tuple[str, ...] = OVERHEAD_SCENARIOS    # for sections 1-3

    def save(self) -> None:
        write_json(self.json_path, self.results)


@dataclass(kw_only=True)
class Context(Results):
    """A measuring run's context: the results and the caches its sections build into."""
    cache: Cache
    bench_cache: Cache


def scenario(name: str) -> Scenario:
    return load_scenario(ROOT / "scenarios" / f"{name}.yaml")


def dmesg_times(dmesg: str) -> dict:
    """Kernel timestamps (seconds since the kernel's clock started) of the boot's milestones."""
    def first(pattern: re.Pattern) -> float | None:
        m = pattern.search(dmesg)
        return float(m[1]) if m else None
    start, end = first(_UNPACK_START), first(_UNPACK_END)
    return {"run_init": first(_RUN_INIT),
            "unpack": end - start if start is not None and end is not None else None}


def layer_timings(outdir: Path) -> list[dict]:
    """Per layer, from the harness's facts: wall seconds and the kernel's own milestones."""
    layers = []
    for path in sorted(outdir.glob("layer-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        facts = json.loads(path.read_text())
        dmesg = ((facts.get("report") or {}).get("fields") or {}).get("dmesg", "")
        fields = (facts.get("report") or {}).get("fields") or {}
        layers.append({"index": facts["index"], "seconds": facts.get("seconds") or None,
                       "fault": facts.get("fault"), **dmesg_times(dmesg),
                       **phases(facts.get("steps") or {}, fields.get("agent_uptime", ""),
                                (facts.get("loader_record") or {}).get("uptime", ""))})
    return layers


def phases(steps: dict, agent_uptime: str, loader_uptime: str = "") -> dict:
    """Where a layer's time goes, in seconds, from the runner's named steps (host clock,
    from the hand-over) and the agent's start on the kernel's clock:
      entry       hand-over to the stop at the kernel's entry: firmware, or kexec -e and purgatory
      pre_clock   entry to the kernel's clock starting: the decompressor and the earliest boot
      report      the agent's report on the wire, first byte to last
      host        the runner's RAM reads before it says go
      load        fetching the next layer's images and loading them (kexec -l); of it, on
                  the guest's clock: fetch (copy off the chain disk, checked) and kexec_l
    None where a step is missing (no in-flight stop, a last layer)."""
    fetch: float | None
    kexec_l: float | None
    try:
        went, copied, loaded = (float(x) for x in loader_uptime.split())
        fetch, kexec_l = round(copied - went, 3), round(loaded - copied, 3)
    except ValueError:
        fetch = kexec_l = None
    try:
        started = float(agent_uptime.split()[0])
    except (IndexError, ValueError):
        started = None

    def span(a, b):
        return round(steps[b] - steps[a], 3) if a in steps and b in steps else None
    begun = steps.get("report-begun")
    clock_zero = begun - started if begun is not None and started is not None else None
    entered = steps.get("entered")
    return {"agent_started": started,
            "entry": entered,
            "pre_clock": round(clock_zero - (entered or 0.0), 3) if clock_zero is not None else None,
            "report": span("report-begun", "reported"), "host": span("reported", "go"),
            "load": span("go", "loaded"), "fetch": fetch, "kexec_l": kexec_l}
