# SPDX-License-Identifier: GPL-2.0-only
"""Record real runs as fixtures: copy what `seedchain run --artifacts DIR` wrote for
each scenario into tests/fixtures/runs/NAME/, with this machine's paths replaced
(the cache root by CACHE, the artifacts folder by RESULTS, the checkout by nothing).

    .venv/bin/seedchain run --artifacts /tmp/rec scenarios/kexec-file-2.yaml
    .venv/bin/python tests/record.py /tmp/rec kexec-file-2
    SEEDCHAIN_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_golden.py   # then review git diff
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.images.cache import default_root  # noqa: E402

RUNS = Path(__file__).parent / "fixtures" / "runs"
FILES = ("agent.log", "console.log", "result.json")


def record(artifacts: Path, name: str) -> Path:
    source = artifacts / name
    if not (source / "result.json").is_file():
        raise SystemExit(f"record: {source} has no result.json: run the scenario with --artifacts {artifacts}")
    target = RUNS / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    replace = [(str(artifacts.resolve()), "RESULTS"), (str(default_root().resolve()), "CACHE"),
               (str(ROOT) + "/", "")]
    for path in [*(source / f for f in FILES), *sorted(source.glob("layer-*.json"))]:
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            text = data.decode()
            for old, new in replace:
                text = text.replace(old, new)
            data = text.encode()
        (target / path.name).write_bytes(data)
    return target


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    artifacts = Path(argv[0])
    for name in argv[1:]:
        print(f"recorded {record(artifacts, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
