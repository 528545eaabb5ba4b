# SPDX-License-Identifier: GPL-2.0-only
"""Access to runs recorded from real QEMU boots (tests/fixtures/runs/<scenario>/).

Each folder holds what the runner wrote: agent.log (the raw report channel),
layer-N.json (the facts) and result.json. They were recorded with Debian's QEMU
7.2.22 and kernels 6.1.192, 7.2.13 and 5.10 under TCG; see the result files.
"""

import json
from pathlib import Path

from harness.facts.layer import LayerFacts
from harness.facts.report import take_block

RUNS = Path(__file__).parent / "fixtures" / "runs"


def names() -> list[str]:
    return sorted(p.name for p in RUNS.iterdir() if p.is_dir())


def facts(name: str) -> list[LayerFacts]:
    files = sorted((RUNS / name).glob("layer-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return [LayerFacts.from_json(json.loads(p.read_text())) for p in files]


def result(name: str) -> dict:
    return json.loads((RUNS / name / "result.json").read_text())


def agent_blocks(name: str) -> list[bytes]:
    """The report blocks of a recorded agent channel, in order."""
    stream = (RUNS / name / "agent.log").read_bytes()
    blocks: list[bytes] = []
    while True:
        report, rest = take_block(stream, b"@begin ", b"@end " + str(len(blocks) + 1).encode())
        if report is None:
            return blocks
        blocks.append(report)
        stream = rest
