# SPDX-License-Identifier: GPL-2.0-only
"""The matrix report over tests/fixtures/matrix/ (two CI jobs' results, made from the
recorded runs by tests/fixtures/matrix/synth.py): merging, matrix.json, the
Markdown, the HTML as parsed, and the page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness.errors import SeedchainError
from harness.matrix.known_gaps import load_gaps
from harness.reports import matrix as matrix_report
from harness.reports.matrix import main, merge, write_report
from harness.reports.render import environment, render_html
from test_known_gaps import GAPS_FILE, ROOT, synth

MATRIX = Path(__file__).parent / "fixtures" / "matrix"
JOBS = [MATRIX / "job-a", MATRIX / "job-b"]
SCREENSHOT_COPY = ROOT / "seedchain-results" / "matrix-screenshot.png"

EXPECTED = {
    "ideal-2[qemu=7.2,kernel=6.1]": "known-gap",
    "ideal-2[qemu=10.0,kernel=6.1]": "known-gap",
    "ideal-2[qemu=7.2,kernel=5.10]": "known-gap",
    "ideal-2[qemu=10.0,kernel=5.10]": "known-gap",
    "ideal-2[qemu=11.1,kernel=6.1]": "unexpected-pass",
    "ideal-2[qemu=11.1,kernel=5.10]": "unexpected-pass",
    "kexec-load[qemu=7.2,userland=bookworm]": "pass",
    "kexec-load[qemu=7.2,userland=bullseye]": "known-gap",
    "kexec-load[qemu=10.0,userland=bookworm]": "pass",          # job-b's re-run of job-a's error
    "kexec-load[qemu=10.0,userland=bullseye]": "known-gap",
    "kexec-file-2[qemu=7.2,kernel=6.1]": "pass",
    "kexec-file-2[qemu=7.2,kernel=7.2]": "known-gap",     # fresh not judged: capture-needs-kexec-file-debug
    "kexec-file-2[qemu=7.2.0,kernel=6.1]": "fail",
    "kexec-file-2[qemu=7.2.0,kernel=7.2]": "fail",
    "kexec-file-2[qemu=10.0,kernel=6.1]": "error",
    "old-child": "pass",
    "child-panics": "pass",
}


@pytest.fixture(scope="module")
def gaps():
    return load_gaps(GAPS_FILE)


@pytest.fixture(scope="module")
def results():
    return merge(JOBS)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, results, gaps):
    out = tmp_path_factory.mktemp("report")
    write_report(results, gaps, out)
    return out


# --- the fixtures and merge() ------------------------------------------------------------

def test_fixtures_are_what_synth_writes(tmp_path):
    for written in synth.write(tmp_path):
        stored = MATRIX / written.relative_to(tmp_path)
        assert stored.is_file(), f"{stored} is missing: run tests/fixtures/matrix/synth.py"
        assert json.loads(stored.read_text()) == json.loads(written.read_text()), (
            f"{stored} is out of date: run tests/fixtures/matrix/synth.py")


def test_merge_later_duplicates_replace_earlier(results):
    assert [r.get("id") or r["scenario"] for r in results].count(
        "kexec-load[qemu=10.0,userland=bookworm]") == 1
    assert sorted(r.get("id") or r["scenario"] for r in results) == sorted(EXPECTED)
    rerun = next(r for r in results if r.get("id") == "kexec-load[qemu=10.0,userland=bookworm]")
    assert "/job-b/" in rerun["result_file"] and rerun["error"] is None
    # it keeps the place of the result it replaced (job-a's cells come first)
    ids = [r.get("id") or r["scenario"] for r in results]
    assert ids.index("kexec-load[qemu=10.0,userland=bookworm]") < ids.index("ideal-2[qemu=11.1,kernel=6.1]")
    # the other way round, job-a's error wins
    again = next(r for r in merge(list(reversed(JOBS)))
                 if r.get("id") == "kexec-load[qemu=10.0,userland=bookworm]")
    assert again["error"] and "/job-a/" in again["result_file"]


def test_merge_files_folders_and_bad_input(tmp_path):
    one = MATRIX / "job-a" / "old-child" / "result.json"
    assert [r["scenario"] for r in merge([one])] == ["old-child"]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text('{"format": 1, "scen')
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "result.json").write_text("[1, 2]")
    bad = merge([tmp_path])
    assert len(bad) == 2 and all(r["error"].startswith("cannot read ") for r in bad)
    with pytest.raises(SeedchainError, match="no such file or folder"):
        merge([tmp_path / "missing"])


# --- classification and matrix.json ------------------------------------------------------

def test_matrix_json(report_dir):
    data = json.loads((report_dir / "matrix.json").read_text())
    statuses = {c["id"]: c["status"] for c in data["cells"]}
    assert statuses == EXPECTED
    assert data["counts"] == {"pass": 5, "known-gap": 7, "unexpected-pass": 2, "fail": 2, "error": 1}
    assert [g["id"] for g in data["gaps"]][0] == "qemu-no-seed"
    cell = next(c for c in data["cells"] if c["id"] == "ideal-2[qemu=10.0,kernel=5.10]")
    assert cell["cell"] == {"qemu": "debian:trixie", "kernel": "debian:bullseye/5.10"}
    assert cell["qemu"]["version"] == "10.0.13 (synthetic)"
    assert [(la["state"], la["verdict"]) for la in cell["layers"]] == [("absent", "known-gap"),
                                                                       ("absent", "known-gap")]
    assert cell["layers"][1]["loaded_with_kexec_tools"] == "1:2.0.25-3+deb12u3"
    assert cell["classification"]["gaps"] == ["qemu-no-seed", "parent-kernel-no-seed-on-kexec-file-load"]
    news = next(c for c in data["cells"] if c["id"] == "ideal-2[qemu=11.1,kernel=5.10]")
    assert [la["state"] for la in news["layers"]] == ["exposed", "absent"]
    assert news["classification"]["unexpected"][0]["gap"] == "qemu-no-seed"


# --- Markdown ----------------------------------------------------------------------------

def test_markdown(report_dir):
    text = (report_dir / "matrix.md").read_text()
    lines = text.splitlines()
    for status, n in (("pass", 5), ("known-gap", 7), ("unexpected-pass", 2), ("fail", 2), ("error", 1)):
        assert any(re.fullmatch(rf"\| {status} \| {n} \| .+ \|", line) for line in lines), status
    rows = [line for line in lines if line.startswith("| `")]
    assert len(rows) == len(EXPECTED)
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 7, row        # 6 columns, none split
    by_id = {re.match(r"\| `([^`]+)`", row).group(1): row for row in rows}
    assert set(by_id) == set(EXPECTED)
    assert "| known-gap |" in by_id["kexec-load[qemu=7.2,userland=bullseye]"]
    assert "kexec-tools-no-seed-on-kexec-load" in by_id["kexec-load[qemu=7.2,userland=bullseye]"]
    assert "1:2.0.20-2.1" in by_id["kexec-load[qemu=7.2,userland=bullseye]"]
    assert "UNEXPLAINED L1 received" in by_id["kexec-file-2[qemu=7.2.0,kernel=6.1]"]
    assert "## Unexpected passes" in text and "known gap qemu-no-seed (qemu 11.1.3" in text
    assert "## Failures no known gap explains" in text and "booted by QEMU 7.2.50" in text
    assert "## Harness errors" in text and "mmdebstrap exited with 1" in text


def test_markdown_escapes_table_breakers(tmp_path, gaps):
    result = synth.real("kexec-file-2")
    result["error"] = "broken | pipe\nand a new line"
    write_report([result], gaps, tmp_path)
    row = next(line for line in (tmp_path / "matrix.md").read_text().splitlines()
               if line.startswith("| `"))
    assert "broken \\| pipe and a new line" in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 7


# --- HTML, parsed ------------------------------------------------------------------------

class Page(HTMLParser):
    """The grid as a reader sees it: per scenario, header cells, grid cells, cards, links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scenario = None
        self.columns: dict[str, list[str]] = {}
        self.rows: dict[str, list[str]] = {}
        self.slots: list[dict] = []          # td.cell: scenario, row, column, cards
        self.cards: dict[str, dict] = {}     # id -> status, links, marks
        self.card = None
        self.tags: list[tuple[str, dict]] = []
        self.body: dict = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        classes = (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        if tag == "section" or (tag == "td" and {"cell", "empty"} & set(classes)):
            self.card = None                 # a card ends where the next slot or section starts
        if tag == "section" and "scenario" in classes:
            self.scenario = a["data-scenario"]
        if tag == "th" and a.get("scope") == "col":
            self.columns.setdefault(self.scenario, []).append(a["data-axis-value"])
        if tag == "th" and a.get("scope") == "row":
            self.rows.setdefault(self.scenario, []).append(a["data-axis-value"])
        if tag == "td" and "cell" in classes:
            self.slots.append({"scenario": self.scenario, "row": a["data-row"],
                               "column": a["data-column"], "cards": []})
        if tag == "div" and "card" in classes:
            self.card = {"status": a["data-status"], "links": {}, "marks": [],
                         "scenario": self.scenario, "slot": self.slots[-1]}
            self.cards[a["data-id"]] = self.card
            self.slots[-1]["cards"].append(a["data-id"])
        if tag == "span" and "mark" in classes and self.card is not None and "data-layer" in a:
            self.card["marks"].append((a["data-layer"], a["data-state"], classes))
        if tag == "a" and self.card is not None and "cid" not in classes:
            self.card["links"][a["href"]] = "missing" not in classes



@pytest.fixture(scope="module")
def page(report_dir):
    parser = Page()
    parser.feed((report_dir / "matrix.html").read_text())
    return parser


def test_html_grid(page):
    assert set(page.cards) == set(EXPECTED)
    assert {cid: card["status"] for cid, card in page.cards.items()} == EXPECTED
    # ideal-2: columns are QEMU by version, rows the kernel axis by version
    assert page.columns["ideal-2"] == ["debian:bookworm", "debian:trixie", "debian:sid"]
    assert page.rows["ideal-2"] == ["debian:bullseye/5.10", "debian:bookworm/6.1"]
    slot = page.cards["ideal-2[qemu=10.0,kernel=5.10]"]["slot"]
    assert (slot["row"], slot["column"]) == ("debian:bullseye/5.10", "debian:trixie")
    assert page.columns["kexec-file-2"] == ["debian:bookworm", "/opt/qemu-7.2.0/bin/qemu-system-x86_64",
                                            "debian:trixie"]
    # no kernel axis: the rows are the scenario, the other axes are sub-rows
    assert page.rows["kexec-load"] == ["kexec-load", "kexec-load"]
    slots = [s for s in page.slots if s["scenario"] == "kexec-load"]
    assert len(slots) == 4
    # not in a matrix: one row, one column
    assert page.rows["old-child"] == ["old-child"] and page.columns["old-child"] == [""]


def test_html_marks(page):
    marks = page.cards["ideal-2[qemu=11.1,kernel=5.10]"]["marks"]
    assert [(layer, state) for layer, state, _ in marks] == [("1", "exposed"), ("2", "absent")]
    assert "v-news" in marks[0][2] and "v-known-gap" in marks[1][2]
    failing = page.cards["kexec-file-2[qemu=7.2.0,kernel=7.2]"]["marks"]
    assert [(s, "v-fail" in c) for _, s, c in failing] == [("consumed", True), ("did-not-boot", True)]
    assert [s for _, s, _ in page.cards["old-child"]["marks"]] == ["absent", "exposed"]


def test_html_links_point_at_the_artifacts(page, report_dir):
    for cid, card in page.cards.items():
        hrefs = list(card["links"])
        names = [h.rsplit("/", 1)[-1] for h in hrefs if not h.startswith("#")]
        assert names == ["console.log", "agent.log", "result.json"], cid
        for href, present in card["links"].items():
            if href.startswith("#"):
                continue
            assert not href.startswith(("/", "file:", "http")), href       # relative
            target = (report_dir / unquote(href)).resolve()
            assert target.is_file() is present, (cid, href)
        result_json = next(h for h in hrefs if h.endswith("result.json"))
        data = json.loads((report_dir / unquote(result_json)).read_text())
        assert (data.get("id") or data["scenario"]) == cid
    # job-b's re-run links to job-b's files
    rerun = page.cards["kexec-load[qemu=10.0,userland=bookworm]"]["links"]
    assert all("job-b" in h for h in rerun if not h.startswith("#"))
    # kexec-load's recorded run has no console.log: shown, struck through
    assert not page.cards["kexec-load[qemu=7.2,userland=bookworm]"]["links"][
        next(h for h in page.cards["kexec-load[qemu=7.2,userland=bookworm]"]["links"]
             if h.endswith("console.log"))]


def test_html_is_self_contained(report_dir, page):
    text = (report_dir / "matrix.html").read_text()
    assert not any(tag == "link" for tag, _ in page.tags)
    assert not any("src" in attrs for _, attrs in page.tags)
    assert "@import" not in text and "url(" not in text
    assert not re.search(r"""(href|src)=["']?(https?:)?//""", text)
    assert [tag for tag, _ in page.tags].count("script") == 1
    assert [tag for tag, _ in page.tags].count("style") == 1


def test_html_links_use_an_existing_artifacts_folder(tmp_path, gaps):
    folder = tmp_path / "runs" / "kexec-file-2 [x]"
    folder.mkdir(parents=True)
    (folder / "console.log").write_text("console\n")
    result = synth.real("kexec-file-2")
    result["artifacts"] = str(folder)
    result["description"] = "<script>alert(1)</script> & more"
    out = tmp_path / "out" / "report"
    write_report([result], gaps, out)
    parser = Page()
    text = (out / "matrix.html").read_text()
    parser.feed(text)
    links = parser.cards["kexec-file-2"]["links"]
    assert links == {"../../runs/kexec-file-2%20%5Bx%5D/console.log": True,
                     "../../runs/kexec-file-2%20%5Bx%5D/agent.log": False,
                     "../../runs/kexec-file-2%20%5Bx%5D/result.json": False}
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text


def test_html_escapes_every_value_and_markdown_does_not(tmp_path, gaps):
    # values from result files are data: markup in them reaches the page as text
    evil = "<script>alert(1)</script>"
    result = synth.real("kexec-file-2")
    result["id"] = f"kexec-file-2[qemu={evil}]"
    result["cell"] = {"qemu": evil, "kernel": f'6.1 "{evil}"', "userland": evil}
    result["error"] = f"{evil} & more"
    result["qemu"] = {**result["qemu"], "version": f"7.2 {evil}", "machine": evil}
    for layer in result["layers"]:
        layer["kernel_version"], layer["fault"] = evil, evil
    write_report([result], gaps, tmp_path)
    text = (tmp_path / "matrix.html").read_text()
    assert "<script>alert" not in text and text.count("&lt;script&gt;alert(1)&lt;/script&gt;") > 10
    parser = Page()
    parser.feed(text)
    assert [tag for tag, _ in parser.tags].count("script") == 1      # only the page's own
    assert parser.cards[result["id"]]["status"] == "error"
    assert parser.columns["kexec-file-2"] == [evil]
    assert parser.rows["kexec-file-2"] == [f'6.1 "{evil}"']
    # the Markdown escapes HTML outside code spans (renderers such as GitHub's render it)
    markdown = (tmp_path / "matrix.md").read_text()
    assert "<script>" not in markdown.replace(f"`kexec-file-2[qemu={evil}]`", "")
    assert "harness error: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in markdown
    env = environment()
    assert env.autoescape("matrix.html.j2") and env.autoescape("grid.html.j2")
    assert not env.autoescape("matrix.md.j2")


def test_a_scenario_in_two_groups_gets_a_grid_per_set_of_axes(tmp_path, results, gaps):
    # as in scenarios/matrix.yaml: kexec-load over qemu x kernel, and over userland alone
    chosen = [r for r in results if r["scenario"] == "kexec-load"]
    alone = json.loads(json.dumps(chosen[0]))
    alone["id"], alone["cell"] = "kexec-load[userland=kexec-2.0.25]", {"userland": "debian:bookworm"}
    write_report(chosen + [alone], gaps, tmp_path)
    text = (tmp_path / "matrix.html").read_text()
    assert text.count('class="axisgroup"') == 2
    assert 'data-axes="qemu,userland"' in text and 'data-axes="userland"' in text
    assert "axes: qemu × userland" in text
    parser = Page()
    parser.feed(text)
    slot = parser.cards["kexec-load[userland=kexec-2.0.25]"]["slot"]
    assert (slot["row"], slot["column"]) == ("kexec-load", "")


def test_empty_report(tmp_path, gaps):
    report = write_report([], gaps, tmp_path)
    assert report.ok and report.counts["pass"] == 0
    assert "Nothing needs a look" in (tmp_path / "matrix.html").read_text()


def test_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(out), *map(str, JOBS)]) == 0
    printed = capsys.readouterr().out
    assert "ideal-2[qemu=11.1,kernel=6.1]: unexpected-pass (gap no longer seen: qemu-no-seed)" in printed
    assert "5 pass, 7 known-gap, 2 unexpected-pass, 2 fail, 1 error" in printed
    assert {p.name for p in out.iterdir()} == {"matrix.json", "matrix.md", "matrix.html"}
    assert main([str(out), *map(str, JOBS), "--check"]) == 1
    assert main([str(out), str(MATRIX / "job-a" / "old-child"), "--check"]) == 0
    assert main([str(out), str(tmp_path / "nothing")]) == 2
    assert main([str(out), *map(str, JOBS), "--gaps", str(tmp_path / "nothing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([str(out), *map(str, JOBS), "--no-gaps"]) == 0
    statuses = {c["status"] for c in json.loads((out / "matrix.json").read_text())["cells"]}
    assert statuses == {"pass", "fail", "error"}


# --- the page in a real browser ----------------------------------------------------------

_CONSOLE = re.compile(r":CONSOLE[:(]|\bUncaught\b")
chromium = matrix_report.chromium      # Debian's chromium; ./dev installs it


def console_lines(stderr: str) -> list[str]:
    """What the page printed to its console: our page prints nothing, so any line is a problem."""
    return [line for line in stderr.splitlines() if _CONSOLE.search(line)]


def png_rows(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the (filtered) scanlines of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and color in (2, 6), (depth, color)
    pos, idat = 8, b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * (3 if color == 2 else 4)
    return width, height, [raw[i * stride:(i + 1) * stride] for i in range(height)]


def test_console_errors_are_caught(tmp_path):
    # The detector itself: a page with a JS error must be seen as broken.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><p>x</p><script>noSuchFunction();</script>")
    run = chromium(broken, tmp_path / "profile", "--dump-dom")
    assert any("Uncaught ReferenceError: noSuchFunction" in line for line in console_lines(run.stderr)), run.stderr


def test_the_page_in_headless_chromium(tmp_path, results, gaps):
    out = tmp_path / "report"
    write_report(results, gaps, out)
    page = out / "matrix.html"

    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == []
    # the script ran to its end and counted every card in the rendered DOM
    assert re.search(rf'<body[^>]*data-ready="{len(EXPECTED)}"', dom.stdout), dom.stdout[:500]
    assert dom.stdout.count('class="card"') == len(EXPECTED)

    # the status filter: a box unchecked hides that status's cards
    unchecked = out / "unchecked.html"
    unchecked.write_text(page.read_text().replace('data-status="pass" checked', 'data-status="pass"'))
    hidden = chromium(unchecked, tmp_path / "profile", "--dump-dom")
    assert console_lines(hidden.stderr) == []
    assert re.search(r'<body[^>]*class="[^"]*\bhide-pass\b', hidden.stdout)
    assert not re.search(r'<body[^>]*class="[^"]*\bhide-fail\b', hidden.stdout)
    unchecked.unlink()

    shot = tmp_path / "matrix.png"
    run = chromium(page, tmp_path / "profile", f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    assert shot.is_file()
    width, height, rows = png_rows(shot)
    assert (width, height) == (1400, 900)
    assert shot.stat().st_size > 50_000            # a blank 1400x900 page is a few KiB
    # painted to the bottom: a half-drawn page ends in a band of identical blank rows
    assert len(set(rows[-100:])) > 10
    assert len(set(rows)) > 300
    SCREENSHOT_COPY.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)


def test_render_html_has_no_cells_section_for_no_results():
    text = render_html([], ())
    assert 'class="scenario"' not in text and "None given" in text
