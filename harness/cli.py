"""The command line: `seedchain run SCENARIO.yaml`, `check FILE...`, `list`, `report OUT RESULTS...`, `matrix NAME`, `ledger show|clear`.

`report --kcidb OUT.json RESULTS...` writes the results as KCIDB data instead;
`matrix NAME` lists a matrix's cells, `matrix NAME --github` its CI jobs as JSON.

Exit status: 0 every expectation held, 1 a verdict failed, 2 the input or the
set-up is wrong (the message says where and what to do), 130 interrupted.
`check`, `list`, `matrix` and `report --kcidb` exit 0 or 2; `report --check` 1 on a
failing cell.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from harness.images.cache import Cache
from harness.matrix.github import MATRIX_FILE, print_matrix
from .errors import SeedchainError
from harness.reports.terminal import summary
from harness.pipeline import run
from harness.scenario.load import discover, load_scenario


def _on_sigterm(signum, frame):
    # Unwind like Ctrl-C so QEMU is quit and the logs are closed.
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seedchain", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run scenarios and print their verdicts")
    r.add_argument("scenarios", nargs="+", type=Path, help="scenario files or folders of them")
    r.add_argument("--tag", help="from folders, only the scenarios with this tag")
    r.add_argument("--json", type=Path, help="write the results here (a list when several)")
    r.add_argument("--artifacts", type=Path, default=Path("seedchain-results"),
                   help="folder for console logs, reports and results (default: %(default)s)")
    r.add_argument("--cache", type=Path, help="image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    r.add_argument("--qemu", help="a qemu-system-x86_64 binary to use instead of the scenario's")
    r.add_argument("--kernel", help="a bzImage to use for every layer instead of the scenario's")
    c = sub.add_parser("check", help="validate scenario files without running them")
    c.add_argument("scenarios", nargs="+", type=Path)
    rep = sub.add_parser("report", add_help=False,
                         help="merge result.json files into a matrix report (see: seedchain report --help)")
    rep.add_argument("rest", nargs=argparse.REMAINDER)
    led = sub.add_parser("ledger", help="show or clear the digests of the seeds earlier runs were handed")
    led.add_argument("action", choices=("show", "clear"))
    led.add_argument("scenario", nargs="?", help="one scenario's entries (default: every scenario)")
    led.add_argument("--cache", type=Path, help="image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    ls = sub.add_parser("list", help="list the scenarios in a folder")
    ls.add_argument("folder", nargs="?", type=Path, default=Path("scenarios"))
    m = sub.add_parser("matrix", help="list a matrix's cells, or with --github its CI jobs as JSON")
    m.add_argument("name", help="a matrix in the matrix file, e.g. nightly")
    m.add_argument("--github", action="store_true",
                   help='print {"include":[{"qemu":LABEL},...]} for GitHub Actions\' fromJSON')
    m.add_argument("--by", default="qemu", metavar="AXIS", help="one job per label of AXIS (default: %(default)s)")
    m.add_argument("--file", type=Path, default=MATRIX_FILE, help="matrix file (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        from harness.reports.matrix import main as report_main
        return report_main(argv[1:])
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.command == "check":
            for path in args.scenarios:
                s = load_scenario(path)
                print(f"{path}: ok ({s.name}, {len(s.layers)} layers)")
            return 0
        if args.command == "matrix":
            return print_matrix(args.name, args.file, github=args.github, axis=args.by)
        if args.command == "ledger":
            return _ledger(args)
        if args.command == "list":
            for path in discover(args.folder):
                s = load_scenario(path)
                print(f"{s.name:28} {len(s.layers)} layers  {s.description}")
            return 0
        return _run(args)
    except SeedchainError as exc:
        print(f"seedchain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seedchain: interrupted; QEMU stopped, logs kept", file=sys.stderr)
        return 130


def _ledger(args) -> int:
    """`ledger show [SCENARIO]`: per run, when and the digest of each layer's seed;
    `ledger clear [SCENARIO]`: forget them (fresh then compares within a run only)."""
    from harness.facts import ledger
    root = Cache(args.cache).root
    if args.action == "clear":
        cleared = ledger.clear(root, args.scenario)
        print(f"cleared the ledger of {', '.join(cleared)}" if cleared else "the ledger was empty")
        return 0
    names = [args.scenario] if args.scenario else ledger.scenarios(root)
    if not names:
        print(f"the ledger is empty ({ledger.folder(root)})")
    for name in names:
        entries = ledger.runs(root, name)
        print(f"{name}: {len(entries)} run{'s' * (len(entries) != 1)}")
        for entry in entries[-20:]:
            layers = "  ".join(f"{k}:{v[:16]}" for k, v in sorted(entry["layers"].items()))
            print(f"  {entry.get('when', '?')}  {layers}")
        if len(entries) > 20:
            print(f"  ({len(entries) - 20} older runs not shown)")
    return 0


def _run(args) -> int:
    scenarios = []
    for path in args.scenarios:
        if path.is_dir():
            found = [load_scenario(p) for p in discover(path)]
            scenarios += [s for s in found if args.tag is None or args.tag in s.tags]
        else:
            scenarios.append(load_scenario(path))
    if not scenarios:
        raise SeedchainError("no scenario to run", where=" ".join(map(str, args.scenarios)),
                             hint="name scenario files, or a folder with scenarios carrying the --tag given")
    scenarios = [s.with_overrides(qemu_build=args.qemu, kernel=args.kernel) for s in scenarios]
    cache = Cache(args.cache)
    results = []
    for scenario in scenarios:
        result = run(scenario, cache=cache, artifacts=args.artifacts.resolve(),
                     progress=lambda message: print(f"  {message}", flush=True))
        print(summary(result) + "\n", flush=True)
        results.append(result)
    if len(results) > 1:
        passed = sum(r.passed for r in results)
        print(f"{passed} passed, {len(results) - passed} failed")
    if args.json:
        data = [r.to_json() for r in results]
        args.json.write_text(json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
