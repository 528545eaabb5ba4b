"""The documentation's contracts: scenarios/result.schema.json describes result.json as
harness/checks/verdict.py writes it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from harness.checks.verdict import RunResult
from harness.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SCHEMA = json.loads((ROOT / "scenarios" / "result.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
RESULTS = sorted([*FIXTURES.glob("runs/*/result.json"), *FIXTURES.glob("runs/*/expected.json"),
                  *FIXTURES.glob("matrix/*/*/result.json")])
GOLDEN = sorted(FIXTURES.glob("runs/*/expected.json"))


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
