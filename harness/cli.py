# SPDX-License-Identifier: GPL-2.0-only
"""The command line: `seedchain run SCENARIO.yaml`, `check FILE...`, `list`, `report OUT RESULTS...`,
`matrix NAME`, `ledger show|clear`, `explain CHECK`.

`report --kcidb OUT.json RESULTS...` writes the results as KCIDB data instead;
`matrix NAME` lists a matrix's cells, `matrix NAME --github` its CI jobs as JSON.
`run -q` prints one verdict line per scenario and the errors, `run -v` also the details
the stages log; `run -j N` boots N scenarios at once, each in a process of its own; `run --kernel
N=PATH` puts a kernel file in layer N only (repeatable), `--kernel PATH` in every layer.
`check` makes the checks `run` makes before it fetches or builds anything (no network, nothing
run); both refuse a scenario's kernel path out of its folder and the project unless given
`--allow-outside-paths`, and a QEMU binary it names unless given `--allow-scenario-binaries`.

Exit status of `run`, as `git bisect run` reads it:
  0    every expectation held (bisect: good);
  1    an expectation broke (bisect: bad);
  125  the build could not be tested (bisect: skip): QEMU did not start, a download
       failed, a kernel file is not a kernel or lacks what the harness needs, any other
       set-up or input error (the message says where and what to do), a QEMU ended
       by a signal from outside (the result's "error" says so), a full disk, and a
       crash of seedchain itself;
  130  interrupted (Ctrl-C, SIGTERM); `git bisect run` stops there.
A scenario file or an option that is wrong also gives 125, not 2: it is wrong the same
way at every commit, so it says nothing about the commit under test, and 2 would make
bisect call that commit bad and go on to blame an innocent one. Skipped, every commit
stays untested and bisect ends saying so (run `seedchain check` on the scenario before
bisecting). Of several scenarios the worst counts, in the order 0 < 125 < 1 < 130: one
broken expectation makes the build bad even if another scenario could not be tested.
Nothing but an interrupt exits 128 or more, which `git bisect run` takes as "abort".

`check`, `list`, `matrix`, `ledger`, `explain` and `report --kcidb` exit 0, or 2 on bad input or
set-up; `report --check` 1 on a failing cell.
"""

from __future__ import annotations

from harness import startup  # first: a Ctrl-C while the modules below load ends quietly

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path

from harness.checks.verdict import RunResult
from harness.images import qemu_builds
from harness.images.cache import Cache
from harness.images.preflight import check_scenario
from harness.jobs import Outcome, run_all
from harness.matrix.github import MATRIX_FILE, print_matrix
from .private import make_folder, write_file
from .errors import SeedchainError
from harness import text
from harness.progress import TRANSIENT, say
from harness.progress import Terminal as _Terminal
from harness.reports.terminal import colour_wanted, summary, verdict_line
from harness.paths import SCENARIOS
from harness.explain import explain
from harness.scenario.model import CHECKS
from harness.scenario.load import check_binaries, check_paths, kernel_options, load_folder, load_scenario

startup.loaded()

PASSED, FAILED, UNTESTED, INTERRUPTED = 0, 1, 125, startup.INTERRUPTED   # as git bisect run reads them
BAD_INPUT = 2                                               # every other command
_WORST = (PASSED, UNTESTED, FAILED, INTERRUPTED)            # of several scenarios, the last present


def _on_sigterm(signum, frame):
    # Unwind like Ctrl-C so QEMU is quit and the logs are closed.
    raise KeyboardInterrupt


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give the number of scenarios to boot at once (1 or more)")
    return value


def _version() -> str:
    """The installed package's version (a checkout run without installing says so)."""
    from importlib import metadata
    try:
        return metadata.version("seedchain")
    except metadata.PackageNotFoundError:
        return "(not installed: run from a checkout)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seedchain", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"seedchain {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run scenarios and print their verdicts (exit 0 good, 1 bad, "
                                   "125 cannot test, for git bisect run)")
    r.add_argument("scenarios", nargs="+", type=Path, help="scenario files or folders of them")
    r.add_argument("--tag", help="from folders, only the scenarios with this tag")
    r.add_argument("--json", type=Path, help="write the results here (a list when several)")
    r.add_argument("--artifacts", type=Path, default=Path("seedchain-results"),
                   help="folder for console logs, reports and results (default: %(default)s)")
    r.add_argument("--cache", type=Path, help="image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    r.add_argument("--qemu", help="a qemu-system-x86_64 binary to use instead of the scenario's")
    r.add_argument("--qemu-arg", action="append", default=[], metavar="ARG",
                   help="one more QEMU argument, any (yours, unchecked); repeat: --qemu-arg=-d --qemu-arg=int")
    r.add_argument("--kernel", action="append", default=[], metavar="[N=]PATH",
                   help="a bzImage for layer N instead of the scenario's kernel, or without N=, "
                        "for every layer; repeat for several layers")
    loud = r.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true",
                      help="print only one verdict line per scenario, and errors (no progress, no table)")
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="print more progress: the details seedchain otherwise keeps to itself "
                           "(downloads, root file systems, kernels made ready)")
    r.add_argument("-j", "--jobs", type=_jobs, default=1, metavar="N",
                   help="boot N scenarios at once, each in a process of its own (default: 1)")
    c = sub.add_parser("check", help="validate scenario files without running them (no network): "
                                     "the file, its Debian suites, its QEMU, its kernel files")
    c.add_argument("scenarios", nargs="+", type=Path)
    for command in (r, c):
        command.add_argument("--allow-outside-paths", action="store_true",
                             help="accept kernel paths in a scenario that lead out of its folder and "
                                  "the project (for a scenario file you trust)")
        command.add_argument("--allow-scenario-binaries", action="store_true",
                             help="run the QEMU binary a scenario file you trust names (else only --qemu)")
    rep = sub.add_parser("report", add_help=False,
                         help="merge result.json files into a matrix report (see: seedchain report --help)")
    rep.add_argument("rest", nargs=argparse.REMAINDER)
    led = sub.add_parser("ledger", help="show or clear the digests of the seeds earlier runs were handed")
    led.add_argument("action", choices=("show", "clear"))
    led.add_argument("scenario", nargs="?", help="one scenario's entries (default: every scenario)")
    led.add_argument("--cache", type=Path, help="image cache (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    ex = sub.add_parser("explain", help="what a check reads, how it can fail, which shipped scenario "
                                        "shows it failing (from docs/checks.md)")
    ex.add_argument("check", help="a check, as named in the verdict table's legend and result.json: "
                                  + ", ".join(CHECKS))
    ls = sub.add_parser("list", help="list the scenarios in a folder")
    ls.add_argument("folder", nargs="?", type=Path, default=SCENARIOS,
                    help="a folder of scenario files (default: the shipped examples, %(default)s)")
    m = sub.add_parser("matrix", help="list a matrix's cells, or with --github its CI jobs as JSON")
    m.add_argument("name", help="a matrix in the matrix file, e.g. nightly")
    m.add_argument("--github", action="store_true",
                   help='print {"include":[{"qemu":LABEL},...]} for GitHub Actions\' fromJSON')
    m.add_argument("--by", default="qemu", metavar="AXIS", help="one job per label of AXIS (default: %(default)s)")
    m.add_argument("--file", type=Path, default=MATRIX_FILE, help="matrix file (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:   # while parsing or loading a command, before its own handling
        print("seedchain: interrupted", file=sys.stderr)
        return INTERRUPTED


def _main(argv: list[str]) -> int:
    if argv[:1] == ["report"]:
        from harness.reports.matrix import main as report_main
        return report_main(argv[1:])
    is_run = argv[:1] == ["run"]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        # argparse said what is wrong; for `run` a wrong option is the same at every commit
        if is_run and exc.code == BAD_INPUT:
            return UNTESTED
        raise
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "matrix":
            return print_matrix(args.name, args.file, github=args.github, axis=args.by)
        if args.command == "ledger":
            return _ledger(args)
        if args.command == "explain":
            print(text.terminal(explain(args.check)))
            return 0
        if args.command == "list":
            found, errors = load_folder(args.folder)      # a bad file is named, the others listed
            for s in found:
                print(f"{s.name:28} {_layers(s):8}  {text.one_line(' '.join(s.description.split()))}")
            for problem in errors:
                print(f"seedchain: error: {text.terminal(problem)}", file=sys.stderr)
            return BAD_INPUT if errors else 0
        return _run(args)
    except SeedchainError as exc:
        print(f"seedchain: error: {text.terminal(exc)}", file=sys.stderr)
        return UNTESTED if is_run else BAD_INPUT
    except BrokenPipeError:
        # The reader went away (`seedchain list | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        ran = getattr(args, "started", False)       # QEMU and logs are worth a word only where a run began
        print("seedchain: interrupted" + ("; QEMU stopped, logs kept" if ran else ""), file=sys.stderr)
        return INTERRUPTED
    except Exception:
        if not is_run:
            raise
        _print_crash(traceback.format_exc())
        return UNTESTED


def _print_crash(text: str) -> None:
    print(text.rstrip(), file=sys.stderr)
    print("seedchain: internal error: seedchain itself failed (the traceback above), not the build "
          "under test; exit status 125 (cannot test). Please report it with the traceback.", file=sys.stderr)


def _ledger(args) -> int:
    """`ledger show [SCENARIO]`: per run, when and the digest of each layer's seed (and
    of a boot loader's seed file before -> after the boot);
    `ledger clear [SCENARIO]`: forget them (fresh then compares within a run only)."""
    from harness.facts import ledger
    root = Cache(args.cache).root
    for folder in (root, ledger.folder(root)):
        if folder.exists() and not folder.is_dir():
            raise SeedchainError(f"{folder} is a file; the ledger is a folder in the image cache",
                                 where="--cache" if args.cache else "the image cache",
                                 hint="give --cache the cache folder (default: $SEEDCHAIN_CACHE or ~/.cache/seedchain)")
    if args.action == "clear":
        cleared = ledger.clear(root, args.scenario)
        print(f"cleared the ledger of {', '.join(cleared)}" if cleared else "the ledger was empty")
        return 0
    for line in ledger.lines(root, args.scenario):
        print(line)
    return 0


def _layers(scenario) -> str:
    count = len(scenario.layers)
    return f"{count} layer{'s' * (count != 1)}"


def _check(args) -> int:
    """Each file loaded and checked as `run` checks it before it builds anything (no network)."""
    seen: dict[str, tuple[str, str]] = {}
    for path in args.scenarios:
        s = load_scenario(path)
        _named_once(s, seen)
        check_paths(s, allowed=args.allow_outside_paths)
        check_binaries(s, allowed=args.allow_scenario_binaries)
        notes = check_scenario(s)
        print(text.terminal(f"{path}: ok ({s.name}, {_layers(s)})"))
        for note in notes:
            print(f"  note: {text.terminal(note)}")
    return 0


def _named_once(scenario, seen: dict[str, tuple[str, str]]) -> None:
    """Two files with one scenario name would write one artifacts folder and overwrite each
    other's results: refused, naming both. The same file given twice is one scenario."""
    real = os.path.realpath(scenario.path)
    first_real, first = seen.setdefault(scenario.slug, (real, scenario.path))
    if first_real != real:
        raise SeedchainError(f"scenario name {scenario.name!r} is also the name of {first}; their "
                             "artifacts and results would overwrite each other", where=scenario.path,
                             hint="give each scenario file a name of its own (its name: key)")


def _scenarios(args) -> list:
    if args.qemu is not None:
        qemu_builds.check_option(args.qemu)
    scenarios = []
    for path in args.scenarios:
        if path.is_dir():
            found, errors = load_folder(path, args.tag)     # files --tag leaves out cannot stop the run
            if errors:
                raise errors[0]
            scenarios += found
        else:
            scenarios.append(load_scenario(path))
    if not scenarios:
        raise SeedchainError("no scenario to run", where=" ".join(map(str, args.scenarios)),
                             hint="name scenario files, or a folder with scenarios carrying the --tag given")
    every, layers = kernel_options(args.kernel)
    names: dict[str, tuple[str, str]] = {}
    for s in scenarios:
        _named_once(s, names)
        check_paths(s, allowed=args.allow_outside_paths,
                    replaced=[layer.index for layer in s.layers if every or layer.index in layers])
        check_binaries(s, allowed=args.allow_scenario_binaries or args.qemu is not None)   # --qemu replaces it
    scenarios = [s.with_overrides(qemu_build=args.qemu, kernel=every, layer_kernels=layers,
                                  qemu_args=tuple(args.qemu_arg)) for s in scenarios]
    if args.jobs > 1:
        seen: dict[str, str] = {}
        for s in scenarios:
            if s.slug in seen:
                raise SeedchainError(f"scenario {s.id} is given twice ({seen[s.slug]} and {s.path}); at "
                                     "once, its two runs would write the same artifacts folder",
                                     where="-j", hint="name each scenario once, or run without -j")
            seen[s.slug] = s.path
    return scenarios


def _writable(path: Path, option: str, folder: bool) -> None:
    """Refuse, before anything runs, an output that cannot be written: a file where a folder
    is needed or the other way round, or a place nobody may write (a path under /proc). The
    folder (of a file: its folder) is made if missing, as the run would."""
    kind = "a folder" if folder else "a file"
    hint = f"give {option} {kind} you can write to (a missing folder is made)"
    if path.is_dir() != folder and path.exists():
        raise SeedchainError(f"{path} is {'a file' if folder else 'a folder'}; {option} needs {kind}",
                             where=option, hint=hint)
    parent = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == p.parent)
    if not parent.is_dir():
        raise SeedchainError(f"{parent} is a file; {option} needs a folder{'' if folder else ' there'}",
                             where=option, hint=hint)
    try:
        make_folder(path if folder else path.parent)      # what seedchain makes is private (0700)
        if path.is_file():
            os.close(os.open(path, os.O_WRONLY))      # may be written; left as it is until then
        else:
            fd, probe = tempfile.mkstemp(prefix=".seedchain-write-test-", dir=path if folder else path.parent)
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise SeedchainError(f"cannot write to {path}: {err.strerror}", where=option, hint=hint) from None


def _not_an_input(output: Path, scenarios: list) -> None:
    """--json naming a scenario file (the same file, by any path) would overwrite it."""
    for s in scenarios:
        if output.exists() and os.path.samefile(output, s.path):
            raise SeedchainError(f"{output} is the scenario file {s.path}; writing the results there "
                                 "would overwrite it", where="--json", hint="give --json a file of its own")


def _run(args) -> int:
    scenarios = _scenarios(args)
    _writable(args.artifacts, "--artifacts", folder=True)
    if args.json:
        _writable(args.json, "--json", folder=False)
        _not_an_input(args.json, scenarios)
    args.started = True
    jobs = min(args.jobs, len(scenarios))
    finished: dict[int, Outcome] = {}
    width = max(len(s.id) for s in scenarios)

    terminal = _Terminal(sys.stdout)

    def progress(scenario, message: str) -> None:
        if args.quiet:
            return
        if message.startswith(TRANSIENT):
            if jobs == 1:     # an in-between update: over the last line on a terminal, else left out
                terminal.update(f"  {message.removeprefix(TRANSIENT)}")
        elif jobs == 1:
            terminal.line(f"  {message}")
        else:       # one line per step, each prefixed by its scenario
            print(text.terminal(f"{scenario.id:<{width}} | {message.removeprefix(f'{scenario.name}: ')}"), flush=True)

    def done(index: int, outcome: Outcome) -> None:
        finished[index] = outcome
        if jobs == 1:
            _print_outcome(outcome, args.quiet)
        else:
            progress(outcome.scenario, _verdict_word(outcome))

    try:
        with _details(args.verbose):
            outcomes = run_all(scenarios, jobs=jobs, cache=Cache(args.cache), artifacts=args.artifacts.resolve(),
                               progress=progress, done=done)
    except KeyboardInterrupt:
        if jobs > 1:
            _print_all([finished[i] for i in sorted(finished)], args.quiet)
        raise
    if jobs > 1:
        _print_all(outcomes, args.quiet)
    if len(outcomes) > 1 and not args.quiet:
        counts = [sum(1 for o in outcomes if _status(o) == status) for status in (PASSED, FAILED, UNTESTED)]
        print(f"{counts[0]} passed, {counts[1]} failed" + (f", {counts[2]} could not be run" if counts[2] else ""))
    if args.json and any(o.result for o in outcomes):
        data = [(o.result or RunResult(scenario=o.scenario, layers=[], error=o.error or o.crash
                                       or "interrupted")).to_json() for o in outcomes]
        try:
            write_file(args.json, json.dumps(data[0] if len(data) == 1 else data, indent=2) + "\n", follow=True)
        except OSError as err:      # writable before the run; not any more
            print(f"seedchain: error: --json: cannot write to {args.json}: {err.strerror}", file=sys.stderr)
            return max(exit_status(outcomes), UNTESTED, key=_WORST.index)
    return exit_status(outcomes)


def _status(outcome: Outcome) -> int:
    if outcome.interrupted:
        return INTERRUPTED
    if outcome.result is None or outcome.result.error:     # no verdict: something outside the guest failed
        return UNTESTED
    return PASSED if outcome.result.passed else FAILED


def exit_status(outcomes: list[Outcome]) -> int:
    """The worst of the scenarios' statuses, in the order 0 < 125 < 1 < 130."""
    return max((_status(o) for o in outcomes), key=_WORST.index, default=PASSED)


def _verdict_word(outcome: Outcome) -> str:
    if outcome.result is not None:
        word = "ERROR" if outcome.result.error else "PASS" if outcome.result.passed else "FAIL"
        return f"{word} ({outcome.result.seconds:.1f} s)"
    if outcome.interrupted:
        return "interrupted"
    return "could not be run (" + ("a bug in seedchain" if outcome.crash else "error") + ", see below)"


class _Detail(logging.Handler):
    """-v: the details the stages log (at INFO and DEBUG, else unseen) as progress lines,
    through the running scenario's progress (a -j worker's go through its pipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.format(record))
        except Exception:       # as logging does: a detail that cannot be shown stops nothing
            self.handleError(record)


@contextmanager
def _details(verbose: bool):
    if not verbose:
        yield
        return
    logger = logging.getLogger("harness")
    handler, level = _Detail(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _print_outcome(outcome: Outcome, quiet: bool = False) -> None:
    if outcome.result is not None and quiet:
        print(verdict_line(outcome.result), flush=True)
        if outcome.result.error:
            print(f"seedchain: error: {text.terminal(outcome.result.error)}", file=sys.stderr, flush=True)
    elif outcome.result is not None:
        print(summary(outcome.result, colour=colour_wanted(sys.stdout)) + "\n", flush=True)
    elif outcome.error:
        print(f"seedchain: error: {text.terminal(outcome.error)}", file=sys.stderr, flush=True)
    elif outcome.crash:
        _print_crash(outcome.crash)
    else:
        print(f"{outcome.scenario.id}: interrupted", file=sys.stderr, flush=True)


def _print_all(outcomes: list[Outcome], quiet: bool = False) -> None:
    """The verdict tables (and errors) at the end of a -j run, in the order given."""
    if not quiet:
        print(flush=True)
    for outcome in outcomes:
        _print_outcome(outcome, quiet)


if __name__ == "__main__":
    sys.exit(main())
