# SPDX-License-Identifier: GPL-2.0-only
"""The documentation's contracts: scenarios/result.schema.json describes result.json as
harness/checks/verdict.py writes it, and the docs point only at what exists."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from harness.checks.verdict import RunResult
from harness.scenario.load import load_scenario
from test_checks import OBSERVED

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SCHEMA = json.loads((ROOT / "scenarios" / "result.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
RESULTS = sorted([*FIXTURES.glob("runs/*/result.json"), *FIXTURES.glob("runs/*/expected.json"),
                  *FIXTURES.glob("matrix/*/*/result.json")])
GOLDEN = sorted(FIXTURES.glob("runs/*/expected.json"))
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def _errors(data: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


# -- result.json ------------------------------------------------------------------------

def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert len(RESULTS) >= 2 * len(GOLDEN) > 0


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_recorded_and_golden_result_is_valid(path):
    assert _errors(json.loads(path.read_text())) == []


def test_a_result_that_could_not_run_is_valid():
    """What `run --json` writes for a scenario that never started: an error, no layers."""
    scenario = load_scenario(ROOT / "scenarios" / "kexec-file-2.yaml")
    assert _errors(RunResult(scenario=scenario, layers=[], error="QEMU did not start").to_json()) == []


def _required(schema: dict, path: tuple = ()):
    """(path to an object, required key) for every required key the schema names."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    for key in schema.get("required", []):
        yield path, key
    for key, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict):
            yield from _required(sub, (*path, key))
    if isinstance(schema.get("items"), dict):
        yield from _required(schema["items"], (*path, 0))


def _without(data: dict, path: tuple, key: str) -> dict | None:
    """A copy of data with `key` removed from the object at `path` (None: no such object)."""
    data = copy.deepcopy(data)
    node = data
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(node, dict) or key not in node:
        return None
    del node[key]
    return data


def test_a_missing_required_key_fails():
    """Each required key, removed from a golden result where it is present, makes it invalid."""
    tried = set()
    for golden in GOLDEN:
        data = json.loads(golden.read_text())
        for path, key in _required(SCHEMA):
            if (path, key) in tried:
                continue
            broken = _without(data, path, key)
            if broken is None:
                continue
            tried.add((path, key))
            assert any(f"'{key}' is a required property" in e for e in _errors(broken)), (golden, path, key)
    for key in ("format", "scenario", "passed", "layers"):
        assert ((), key) in tried
    for key in ("index", "received", "fresh", "expect", "outcome", "seed_in_flight"):
        assert (("layers", 0), key) in tried


def _described(schema: dict) -> dict:
    if "$ref" in schema:
        return SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _undescribed(data: object, schema: dict, path: str) -> list[str]:
    """Keys of data the schema does not name (objects whose keys it leaves open are skipped)."""
    schema = _described(schema)
    if isinstance(data, dict) and "properties" in schema:
        missing = [f"{path}.{key}" for key in data if key not in schema["properties"]]
        for key, value in data.items():
            if key in schema["properties"]:
                missing += _undescribed(value, schema["properties"][key], f"{path}.{key}")
        return missing
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [m for item in data for m in _undescribed(item, schema["items"], f"{path}[]")]
    return []


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.parent.name)
def test_the_schema_describes_every_key_the_writer_produces(path):
    """expected.json is what to_json() writes today (tests/test_golden.py): a key added to
    the result must be added to scenarios/result.schema.json and docs/results.md."""
    assert _undescribed(json.loads(path.read_text()), SCHEMA, "result") == []


def test_an_undescribed_key_is_found():
    data = json.loads(GOLDEN[0].read_text())
    data["layers"][0]["seed_in_flight"]["shiny"] = 1
    assert _undescribed(data, SCHEMA, "result") == ["result.layers[].seed_in_flight.shiny"]


# -- the docs ---------------------------------------------------------------------------

def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_anchor(m[1]) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def _target(base: Path, link: str) -> tuple[Path, str]:
    file, _, anchor = link.partition("#")
    return ((base / file).resolve() if file else base), anchor


def _links():
    """(document, link) for every relative Markdown link in the docs, and every docs/ path
    named in the known gaps' sources."""
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z]+:", link):
                yield doc, link
    gaps = ROOT / "scenarios" / "known-gaps.yaml"
    for link in re.findall(r"\bdocs/[\w./-]+(?:#[\w-]+)?", gaps.read_text()):
        yield gaps, "../" + link


LINKS = list(_links())


@pytest.mark.parametrize("doc,link", LINKS, ids=[f"{d.name}:{link}" for d, link in LINKS])
def test_every_link_leads_somewhere(doc, link):
    path, anchor = _target(doc.parent, link)
    if doc.name == "known-gaps.yaml" or not link.startswith("#"):
        assert path.exists(), f"{doc.name} links to {link}, which is not in the project"
    else:
        path = doc
    if anchor:
        assert anchor in _anchors(path), f"{doc.name}: {link}: no such heading in {path.name}"


def test_the_links_are_found():
    assert any(link.startswith("../docs/facts.md#") for doc, link in LINKS if doc.name == "known-gaps.yaml")
    assert (ROOT / "docs" / "results.md", "../scenarios/result.schema.json") in LINKS


def test_every_markdown_file_named_in_the_docs_exists():
    """A file named in prose (`something.md`) is in the project, beside the document or
    from the project's root."""
    for doc in [*DOCS, ROOT / "scenarios" / "known-gaps.yaml"]:
        for name in set(re.findall(r"[\w./-]*\w\.md\b", doc.read_text())):
            if name.startswith(("http", "//")):
                continue
            assert (doc.parent / name).exists() or (ROOT / name).exists(), f"{doc.name} names {name}"


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_failing_checks_table_matches_the_recorded_runs():
    """docs/checks.md names, per check, recorded runs that show its unwanted answer;
    tests/test_checks.py's OBSERVED says what each recorded run's layers show."""
    from harness.scenario.model import CHECKS
    text = (ROOT / "docs" / "checks.md").read_text()
    rows = re.findall(r"^\| (\w+) \| (yes|no) \| (.+) \|$", text, flags=re.M)
    assert sorted(check for check, _, _ in rows) == sorted(CHECKS)
    for check, unwanted, seen in rows:
        for name, layer in re.findall(r"`([\w-]+):(\d+)`", seen):
            value = OBSERVED[name][int(layer) - 1][CHECKS.index(check)]
            assert value is (unwanted == "yes"), f"{check}: {name} layer {layer} shows {value}"
