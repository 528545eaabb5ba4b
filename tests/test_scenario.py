# SPDX-License-Identifier: GPL-2.0-only
"""The scenario loader (harness.scenario) and its schema (harness.schema)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.scenario import schema as schema_module
from harness.errors import ScenarioError
from harness.scenario.model import CHECKS, BootLoader, Expect, Layer, QemuConfig, Scenario
from harness.scenario.load import MAX_BYTES, discover, load_scenario, load_text
from harness.scenario.schema import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "scenarios"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"


def error_of(load, *args) -> str:
    with pytest.raises(ScenarioError) as info:
        load(*args)
    return str(info.value)


def dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def minimal(**top) -> dict:
    data = {"name": "t", "description": "d", "layers": [{"kernel": "debian:bookworm/6.1"}]}
    data.update(top)
    return data


# --- valid files ---------------------------------------------------------------------

def test_full_scenario_loads_every_field():
    path = GOOD / "kexec-file-chain.yaml"
    scenario = load_scenario(path)
    assert scenario == Scenario(
        name="kexec-file-chain",
        description="QEMU boots 6.1; two kexec_file_load hops; every child is seeded and zeroes its seed.",
        path=str(path),
        qemu=QemuConfig(build="system", machine="pc-i440fx-7.2", cpu="qemu64,+rdrand", memory=4096,
                        rng="virtio", accel="tcg", extra_args=("-smp", "2")),
        layers=(
            Layer(index=1, kernel="debian:bookworm/6.1", loader="qemu", userland="debian:bookworm",
                  cmdline="random.trust_cpu=off", timeout=90.0,
                  expect=Expect(received=False, exposed=False), line=14),
            Layer(index=2, kernel="debian:sid/7.2", loader="kexec_file_load",
                  userland="debian:bookworm-backports", timeout=300.5,
                  expect=Expect(received=True, fresh=True, zeroed_sysfs=True, zeroed_ram=True,
                                credited=False, exposed=False, passed_on=True), line=19),
            Layer(index=3, kernel=os.path.abspath(FIXTURES / "kernels" / "bzImage-test"),
                  loader="kexec_load",
                  expect=Expect(booted=None, received=True, zeroed_sysfs=False, zeroed_ram=False,
                                credited=False, exposed=True), line=27),
        ),
        tags=("default", "chain"),
    )
    hash(scenario)   # frozen all the way down: usable as a cache key


def test_capture_repeat_and_padding():
    scenario = load_text(dump(minimal(capture={"seed_in_flight": False}, repeat=2, layers=[
        {"kernel": "debian:bookworm/6.1", "pad_kernel": 31, "expect": {"seed": "consumed"}}])), "t.yaml")
    assert scenario.capture.seed_in_flight is False and scenario.repeat == 2
    assert scenario.layers[0].pad_kernel == 31
    # Seeds not caught: the preset cannot promise fresh, so it does not expect it.
    assert scenario.layers[0].expect.fresh is None and scenario.layers[0].expect.zeroed_ram is True
    assert load_text(dump(minimal(layers=[{"kernel": "debian:bookworm/6.1", "expect": {"seed": "consumed"}}])),
                     "t.yaml").layers[0].expect.fresh is True
    assert "t.yaml:5: repeat: 6 (a number) is out of range; allowed: 1 to 5" in error_of(
        load_text, dump(minimal(repeat=6)), "t.yaml")
    assert "capture.ram_serach: unknown key" in error_of(
        load_text, dump(minimal(capture={"ram_serach": True})), "t.yaml")


def test_explicit_check_overrides_seed_preset():
    layer2 = load_scenario(GOOD / "kexec-file-chain.yaml").layers[1]
    assert layer2.expect.credited is False        # the preset "consumed" says True
    assert layer2.expect.zeroed_ram is True       # the rest of the preset stays


@pytest.mark.parametrize("preset", ["consumed", "absent", "exposed"])
def test_seed_presets_expand(preset):
    data = minimal()
    data["layers"][0]["expect"] = {"seed": preset}
    expect = load_text(dump(data), "p.yaml").layers[0].expect
    assert expect == Expect.from_mapping({"seed": preset})
    assert expect.booted is True


def test_minimal_scenario_gets_defaults():
    scenario = load_scenario(str(GOOD / "minimal.yaml"))
    assert scenario.path == str(GOOD / "minimal.yaml")
    assert scenario.qemu == QemuConfig()
    assert scenario.tags == ()
    assert scenario.layers == (Layer(index=1, kernel="/boot/vmlinuz-test", loader="qemu", line=4),)


def test_anchors_and_merge_keys():
    layers = load_scenario(GOOD / "anchors.yaml").layers
    assert [(x.index, x.loader, x.cmdline, x.line) for x in layers] == [
        (1, "qemu", "", 5), (2, "kexec_load", "quiet", 6), (3, "kexec_file_load", "quiet", 11)]
    assert layers[2].expect == layers[1].expect == Expect.from_mapping({"seed": "consumed"})


def test_relative_kernel_path_is_resolved_against_the_file_folder(tmp_path, monkeypatch):
    text = dump(minimal(layers=[{"kernel": "../kernels/bzImage"}]))
    scenario = load_text(text, tmp_path / "scenarios" / "x.yaml")
    assert scenario.layers[0].kernel == str(tmp_path / "kernels" / "bzImage")
    monkeypatch.chdir(tmp_path)       # a bare file name: relative to the current folder
    assert load_text(text, "x.yaml").layers[0].kernel == str(tmp_path.parent / "kernels" / "bzImage")


def test_absolute_kernel_path_and_debian_spec_stay_as_given():
    text = dump(minimal(layers=[{"kernel": "/srv/bzImage"},
                                {"kernel": "debian:trixie-backports/6.12", "loader": "kexec_load"}]))
    assert [layer.kernel for layer in load_text(text, "a/b.yaml").layers] == [
        "/srv/bzImage", "debian:trixie-backports/6.12"]


def test_numbers_are_converted_for_the_model():
    data = minimal(qemu={"memory": 2048.0})
    data["layers"][0]["timeout"] = 30
    scenario = load_text(dump(data), "n.yaml")
    assert scenario.qemu.memory == 2048 and type(scenario.qemu.memory) is int
    assert scenario.layers[0].timeout == 30.0 and type(scenario.layers[0].timeout) is float


@pytest.mark.parametrize("key, good, bad", [
    ("memory", 256, 255), ("memory", 16384, 16385),
    ("timeout", 5, 4.99), ("timeout", 3600, 3600.5),
    ("name", "a" * 64, "a" * 65), ("cmdline", "x" * 1024, "x" * 1025),
    ("layers", 16, 17), ("layers", 1, 0),
])
def test_limits(key, good, bad):
    def scenario_with(value) -> str:
        data = minimal()
        if key == "memory":
            data["qemu"] = {"memory": value}
        elif key in ("timeout", "cmdline"):
            data["layers"][0][key] = value
        elif key == "layers":
            chain = [{"kernel": "/k"}] + [{"kernel": "/k", "loader": "kexec_load"}] * 16
            data["layers"] = chain[:value]
        else:
            data[key] = value
        return dump(data)

    load_text(scenario_with(good), "limits.yaml")
    message = error_of(load_text, scenario_with(bad), "limits.yaml")
    assert "allowed" in message and key in message


# --- invalid files: (fixture, line, parts of the message) -----------------------------

BAD_CASES = [
    ("syntax-error.yaml", 2, [":2:42: invalid YAML", "mapping values are not allowed"]),
    ("syntax-unclosed.yaml", 5, ["invalid YAML", "flow sequence from line 4, column 13"]),
    ("unknown-top-key.yaml", 2, ["descripton: unknown key; allowed: arch, bootloader, capture, description, layers, name, qemu, repeat, tags",
                                 "did you mean 'description'?"]),
    ("unknown-qemu-key.yaml", 5, ["qemu.memroy: unknown key; allowed: accel, build, cpu, extra_args, "
                                  "firmware, machine, memory, rng", "did you mean 'memory'?"]),
    # lodaer is reported, not the "missing loader" it causes
    ("unknown-layer-key.yaml", 6, ["layers[2].lodaer: unknown key; allowed: cmdline, expect, kernel, "
                                   "loader, pad_kernel, timeout, userland\n  hint: did you mean 'loader'?"]),
    ("unknown-expect-key.yaml", 7, ["layers[1].expect.credit: unknown key", "seed", "zeroed_ram",
                                    "did you mean 'credited'?"]),
    ("wrong-type.yaml", 4, ["qemu.memory: expected a whole number, got '2G'", "MiB"]),
    ("unquoted-number.yaml", 3, ["tags[2]: expected a string, got 2024", "put it in quotes: '2024'"]),
    ("out-of-range.yaml", 7, ["layers[2].timeout: 4", "out of range; allowed: 5 to 3600"]),
    ("nan-timeout.yaml", 5, ["layers[1].timeout: expected a number, got .nan"]),
    ("bad-enum.yaml", 4, ["qemu.rng: 'virtio-rng-pci' is not allowed; allowed: none, virtio",
                          "did you mean 'virtio'?"]),
    ("bad-seed-preset.yaml", 7, ["layers[2].expect.seed: 'consume' is not allowed; "
                                 "allowed: consumed, absent, exposed", "did you mean 'consumed'?"]),
    ("bad-check-value.yaml", 6, ["layers[1].expect.booted: expected true/false or null, got 'maybe'"]),
    ("bad-name.yaml", 1, ["name: 'Kexec_Chain' is not valid; allowed: lowercase letters, digits and '-'"]),
    ("bad-kernel.yaml", 6, ["layers[2].kernel: 'debian:bookworm' is not valid", "debian:SUITE/SERIES"]),
    ("multiline-cmdline.yaml", 5, ["layers[1].cmdline:", "allowed: text on one line"]),
    ("missing-required.yaml", 1, ["top level: missing required key 'description'"]),
    ("loader-in-layer1.yaml", 5, ["layers[1].loader: not allowed in layer 1: QEMU always starts layer 1"]),
    ("missing-loader.yaml", 5, ["layers[2]: missing required key 'loader'", "kexec_file_load (kexec -s), kexec_load (kexec -c), or kexec_crash"]),
    ("empty.yaml", 1, ["the file is empty"]),
    ("comments-only.yaml", 1, ["the file is empty"]),
    ("top-level-list.yaml", 1, ["top level: expected a mapping, got a list"]),
    ("duplicate-key.yaml", 7, ["layers[2].kernel: duplicate key", "already set on line 6"]),
    ("too-many-layers.yaml", 3, ["layers: has 17 items; allowed: 1 to 16 items"]),
    ("alias-bomb.yaml", 6, ["more than 10000 values with aliases expanded"]),
    ("python-tag.yaml", 4, ["invalid YAML", "python/object/apply"]),
]


@pytest.mark.parametrize("name, line, parts", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_file(name, line, parts):
    path = BAD / name
    message = error_of(load_scenario, path)
    assert message.startswith(f"{path}:{line}:"), message
    for part in parts:
        assert part in message, message


def test_every_bad_fixture_has_a_case():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(c[0] for c in BAD_CASES)


def test_too_large_file(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    assert error_of(load_scenario, path) == f"{path}: file is larger than 256 KiB\n" \
        "  hint: a scenario is a short file; is this the right one?"
    assert "larger than 256 KiB" in error_of(load_text, "#" * (MAX_BYTES + 1), "big.yaml")


def test_missing_file(tmp_path):
    assert error_of(load_scenario, tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such file"


def test_folder_instead_of_file(tmp_path):
    assert "is a folder" in error_of(load_scenario, tmp_path)


def test_nul_in_path():
    assert "cannot read the file" in error_of(load_scenario, "bad\0name.yaml")


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: cafe\ndescription: caf\xe9\n".encode("latin-1"))
    message = error_of(load_scenario, path)
    assert message.startswith(f"{path}:2: not valid UTF-8: byte 0xe9 at column 17"), message
    assert "save the file as UTF-8" in message


def test_binary_garbage(tmp_path):
    path = tmp_path / "garbage.yaml"
    path.write_bytes(bytes(range(256)) * 8)
    assert error_of(load_scenario, path).startswith(f"{path}:2: not valid UTF-8: byte 0x80")


@pytest.mark.parametrize("text, parts", [
    ("a: \x07\n", ["g.yaml:1:4: invalid YAML: character U+0007 is not allowed"]),
    ("---\n", ["g.yaml:1: the file is empty"]),
    ("a: 1\n---\nb: 2\n", ["g.yaml:2:1: invalid YAML: expected a single document in the stream, but found another"]),
    ("[" * 200, ["g.yaml:1: nested more than 32 levels deep"]),
    ("- x\n" * 20000, ["g.yaml:10000: more than 10000 values"]),
    ("name: &a [*a]\n", ["g.yaml:1: name[1]: an alias refers to a value that contains it"]),
    ("name: !!timestamp soon\n", ["g.yaml:1: invalid YAML: cannot read this value"]),
    ("name: !custom x\n", ["g.yaml:1:7: invalid YAML", "'!custom'"]),
    ("? [a]\n: b\n", ["g.yaml:1:3: invalid YAML: found unhashable key"]),
    ("qemu: {memory: 0x" + "f" * 5000 + "}\n", ["g.yaml:1: qemu.memory: number too large"]),
    ("qemu: {memory: 99999999999999999999}\n", ["qemu.memory: 99999999999999999999 (a number) is out of range"]),
    ("1: x\n", ["g.yaml:1: 1: unknown key"]),
    ("name: x\ndescription: [a]\n", ["g.yaml:2: description: expected a string, got a list"]),
    ("name: x\ndescription: yes\n", ["description: expected a string, got yes", "quotes: 'yes'"]),
    ("name: x\ndescription: ''\nlayers: [{kernel: /k}]\n", ["description: must not be empty"]),
    # several problems: the first line wins, missing keys come last
    ("qemu: {memory: x, rng: y, cpu: '', build: ''}\nname: x\n", ["g.yaml:1: qemu."]),
    ("tags: [a]\nname: x\ndescription: [d]\n", ["g.yaml:3: description: expected a string"]),
])
def test_odd_input(text, parts):
    message = error_of(load_text, text, "g.yaml")
    for part in parts:
        assert part in message, message


# --- the schema -------------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_json_is_up_to_date():
    assert (ROOT / "scenarios" / "schema.json").read_text() == schema_module.render(), \
        "scenarios/schema.json is out of date: run `python -m harness.schema > scenarios/schema.json`"


def test_schema_module_prints_the_schema():
    out = subprocess.run([sys.executable, "-m", "harness.scenario.schema"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out == schema_module.render() and out.endswith("}\n")
    assert json.loads(out) == SCHEMA


def _objects(node, where="schema"):
    """Every subschema with properties, anywhere in the schema."""
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _objects(value, f"{where}[{index}]")


def test_schema_describes_every_property_and_allows_no_others():
    objects = list(_objects(SCHEMA))
    assert len(objects) == 8     # top, qemu, capture, bootloader, two kinds of layer with an expect each
    for where, node in objects:
        assert node.get("additionalProperties") is False, where
        for name, prop in node["properties"].items():
            assert prop.get("description"), f"{where}.{name}"


def test_schema_matches_the_model():
    defs, props = SCHEMA["$defs"], SCHEMA["properties"]
    assert set(props["qemu"]["properties"]) == {f.name for f in dataclasses.fields(QemuConfig)}
    layer_keys = {f.name for f in dataclasses.fields(Layer)} - {"index", "line"}
    for kind in ("first_layer", "kexec_layer"):
        assert set(defs[kind]["properties"]) == layer_keys
        assert set(defs[kind]["properties"]["expect"]["properties"]) == {"seed", *CHECKS}
    assert set(props) == {f.name for f in dataclasses.fields(Scenario)} - {"path", "cell", "cell_values", "qemu_line"}  # cells come from matrix.yaml
    assert set(props["bootloader"]["properties"]) == {f.name for f in dataclasses.fields(BootLoader)} - {"line"}


# --- discover ---------------------------------------------------------------------------

def test_discover_lists_scenarios_only(tmp_path):
    for name in ["b.yaml", "a.yaml", "_draft.yaml", "matrix.yaml", "known-gaps.yaml", "c.yml", "notes.txt"]:
        (tmp_path / name).write_text("")
    (tmp_path / "dir.yaml").mkdir()
    assert discover(tmp_path) == [tmp_path / "a.yaml", tmp_path / "b.yaml"]


def test_discover_missing_folder(tmp_path):
    assert "no such folder" in error_of(discover, tmp_path / "nope")


# Any input, fuzzed: tests/test_fuzz.py.


def test_layer_1s_unknown_key_offers_only_what_layer_1_may_have():
    data = minimal(layers=[{"kernel": "debian:bookworm/6.1", "lodaer": "kexec_load"}])
    message = error_of(load_text, dump(data), "t.yaml")
    assert "layers[1].lodaer: unknown key; allowed: cmdline, expect, kernel, pad_kernel, timeout, " \
           "userland" in message, message
    assert "loader" not in message.replace("lodaer", "")


def test_a_file_that_is_no_scenario_is_described_never_quoted(tmp_path):
    """A password file given by mistake: its kind and size, none of its text."""
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    message = error_of(load_scenario, path)
    assert "top level: expected a mapping, got text (" in message
    assert "root" not in message.replace(str(tmp_path), "") and "daemon" not in message
