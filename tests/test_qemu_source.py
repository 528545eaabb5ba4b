# SPDX-License-Identifier: GPL-2.0-only
"""QEMU built from Debian's source package (images/qemu/qemu-*.yaml): the recipe, its
errors, and that the set-up installs what it needs. The real build runs in the
qemu720 scenarios (tag qemu-seed), where the built QEMU seeds layer 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.errors import QemuError
from harness.images import qemu_builds, qemu_source, recipes
from harness.images.cache import Cache

ROOT = Path(__file__).resolve().parent.parent


def test_the_recipe_names_release_7_2_0():
    assert "7.2.0" in qemu_source.versions()
    data = recipes.qemu_source("qemu-7.2.0.yaml").data
    assert data["version"] == "7.2.0" and data["source"] == {"suite": "bookworm", "package": "qemu",
                                                              "tarball": "orig"}
    assert "--target-list=x86_64-softmmu" in data["configure"]


def test_unknown_source_version_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(QemuError) as info:
        qemu_builds.resolve("source:6.6.6", Cache(tmp_path))
    assert "no recipe for a QEMU source build '6.6.6'" in info.value.what
    assert "source:7.2.0" in info.value.hint


def test_dev_installs_every_build_dependency_and_firmware_package():
    dev = (ROOT / "dev").read_text()
    listed = set(re.search(r"DEBIAN_PACKAGES=\((.*?)\)", dev, re.S)[1].split())
    data = recipes.qemu_source("qemu-7.2.0.yaml").data
    missing = set(data["build_depends"]) | set(data["firmware"]["packages"])
    assert missing <= listed, f"./dev does not install {sorted(missing - listed)}"


def test_the_recipe_edit_applies_to_what_it_names():
    edit, = recipes.qemu_source("qemu-7.2.0.yaml").data["edits"]
    assert edit["file"] == "meson.build" and "unpack_edk2_blobs" in edit["replace"]


def test_a_source_build_is_kept_as_its_own_label_in_scenarios(tmp_path):
    from harness.scenario.load import load_scenario
    scenario = load_scenario(ROOT / "scenarios" / "qemu720-chain.yaml")
    assert scenario.qemu.build == "source:7.2.0"     # not resolved as a path
