# SPDX-License-Identifier: GPL-2.0-only
"""A boot loader for layer 1: the scenario key, the recipe, the ESP image, the seed
file's check and its digests in the ledger (no VM: the image is built and read back
with the same tools the runner uses)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from harness.arch import x86_64
from harness.checks import rules
from harness.errors import ImageError, ScenarioError
from harness.facts import ledger
from harness.facts.layer import LayerFacts, SeedFile
from harness.images import esp, recipes
from harness.scenario.load import load_text
from recorded import facts

SCENARIO = """\
name: sd
description: d
qemu: {firmware: ovmf}
bootloader: {name: systemd-boot}
layers:
  - kernel: debian:bookworm/6.1
"""

needs_mtools = pytest.mark.skipif(not (shutil.which("mkfs.vfat") and shutil.which("mcopy")),
                                  reason="mtools and dosfstools are not installed (./dev setup)")


def test_the_scenario_key_and_its_defaults():
    scenario = load_text(SCENARIO, "sd.yaml")
    loader = scenario.bootloader
    assert (loader.name, loader.suite, loader.seed_file, loader.system_token) == \
        ("systemd-boot", "debian:trixie", True, True)
    assert loader.line == 4


def test_a_boot_loader_without_uefi_names_the_line_and_the_fix():
    with pytest.raises(ScenarioError) as info:
        load_text(SCENARIO.replace("{firmware: ovmf}", "{firmware: seabios}"), "sd.yaml")
    text = str(info.value)
    assert "sd.yaml:4: bootloader" in text and "needs UEFI firmware" in text and "firmware: ovmf" in text


def test_an_unknown_boot_loader_is_refused():
    with pytest.raises(ScenarioError) as info:
        load_text(SCENARIO.replace("name: systemd-boot", "name: grub"), "sd.yaml")
    assert "sd.yaml:4" in str(info.value) and "systemd-boot" in str(info.value)


def test_the_recipe_validates_and_its_entry_has_the_three_fields():
    data = recipes.bootloader("systemd-boot").data
    entry = data["entry"].format(kernel="k", initrd="i", cmdline="c")
    assert "linux /k" in entry and "initrd /i" in entry and "options c" in entry
    assert data["system_token"]["bytes"] == 32 and data["seed_file_bytes"] == 32


def test_a_broken_recipe_names_its_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "bootloader").mkdir()
    text = (recipes.IMAGES / "bootloader" / "systemd-boot.yaml").read_text()
    (tmp_path / "bootloader" / "broken.yaml").write_text(text.replace("seed_file_bytes: 32", "seed_file_bytes: 8"))
    monkeypatch.setattr(recipes, "IMAGES", tmp_path)
    with pytest.raises(ImageError) as info:
        recipes.bootloader("broken")
    assert "broken.yaml:" in str(info.value) and "seed_file_bytes" in str(info.value)


def test_a_boot_disk_gets_fixed_slots_and_boots_first(tmp_path):
    args = x86_64.machine_args(machine="q35", rng="virtio", firmware="ovmf", workdir=tmp_path,
                               boot_disk=tmp_path / "esp.img")
    assert f"virtio-blk-pci,drive=esp,bootindex=0,addr={x86_64.BOOT_DISK_SLOT}" in args
    assert f"virtio-rng-pci,addr={x86_64.RNG_SLOT}" in args
    with pytest.raises(Exception) as info:
        x86_64.machine_args(machine="q35", rng="none", firmware="seabios", workdir=tmp_path,
                            boot_disk=tmp_path / "esp.img")
    assert "UEFI" in str(info.value)


def test_layer_one_behind_a_boot_loader_is_not_caught_and_says_why():
    address, why = x86_64.first_entry("q35", "ovmf", "systemd-boot")
    assert address is None and "systemd-boot" in why and "EFI table" in why


@needs_mtools
def test_the_esp_image_is_made_and_its_seed_file_read_back(tmp_path):
    image = tmp_path / "esp.img"
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k" * 5000)
    esp._make_fat(image, {"EFI/BOOT/BOOTX64.EFI": kernel, "loader/entries/a.conf": b"title a\n",
                          "loader/random-seed": b"\x01" * 32})
    assert esp.read_seed_file(image, "loader/random-seed") == b"\x01" * 32
    assert esp.read_seed_file(image, "loader/other-seed") is None
    assert esp.read_seed_file(image, "EFI/BOOT/BOOTX64.EFI") == b"k" * 5000


def _booted(seed_file: SeedFile) -> LayerFacts:
    layer = dataclasses.replace(facts("sdboot-seed-file")[0])
    layer.seed_file = seed_file
    return layer


def test_seed_file_refreshed_over_its_facts():
    assert rules.seed_file_refreshed(_booted(SeedFile(before_sha256="a", after_sha256="b"))) is True
    same = _booted(SeedFile(path="loader/random-seed", before_sha256="a", after_sha256="a"))
    assert rules.seed_file_refreshed(same) is False
    assert rules.seed_file_findings(same) == ["loader/random-seed holds the same bytes after the boot as before"]
    assert rules.seed_file_refreshed(_booted(SeedFile(before_sha256="a", after_sha256=None))) is False
    assert rules.seed_file_refreshed(_booted(SeedFile(before_sha256="a", after_sha256="b", after_zero=True))) is False
    assert rules.seed_file_refreshed(_booted(SeedFile(before_sha256=None))) is None       # no seed file written
    assert rules.seed_file_refreshed(_booted(SeedFile(before_sha256="a", error="mcopy failed"))) is False
    assert rules.seed_file_refreshed(facts("kexec-file-2")[0]) is None                  # no boot loader


def test_the_ledger_sees_a_seed_file_of_an_earlier_run(tmp_path):
    run = [_booted(SeedFile(before_sha256="a" * 64, after_sha256="b" * 64))]
    ledger.record(tmp_path, "sd", "sd", run)
    assert ledger.runs(tmp_path, "sd")[-1]["seed_file"] == ["a" * 64, "b" * 64]
    again = [_booted(SeedFile(before_sha256="b" * 64, after_sha256="c" * 64))]   # the old "after" written again
    ledger.annotate(again, ledger.runs(tmp_path, "sd"))
    assert len(again[0].seed_file.same_as) == 1
    assert rules.seed_file_refreshed(again[0]) is False
    assert "the same bytes as the seed file of the run of" in rules.seed_file_findings(again[0])[0]
    fresh = [_booted(SeedFile(before_sha256="d" * 64, after_sha256="e" * 64))]
    ledger.annotate(fresh, ledger.runs(tmp_path, "sd"))
    assert fresh[0].seed_file.same_as == [] and rules.seed_file_refreshed(fresh[0]) is True


def test_the_efi_table_is_told_apart_by_size_and_position():
    layer1, layer2 = facts("sdboot-seed-file")
    source = rules.efi_seed_source(layer1)
    assert source["size"] == "0x20" and source["position"] == "before INITRD="
    assert source["source"].startswith("systemd-boot 257")
    child = rules.efi_seed_source(layer2, layer1)
    assert child["source"].startswith("layer 1's table again")
    stub = rules.efi_seed_source(facts("ovmf-efi-seed")[0])
    assert stub["position"] == "after INITRD=" and stub["source"].startswith("the EFI stub alone")
    merged = dataclasses.replace(layer1, efi_seed_ram=dataclasses.replace(layer1.efi_seed_ram, size=0x40))
    assert rules.efi_seed_source(merged)["source"].startswith("merged")


def test_with_virtio_rng_the_efi_stub_merges_its_seed_into_the_boot_loaders():
    layer1, layer2 = facts("sdboot-seed-file-virtio-rng")
    source = rules.efi_seed_source(layer1)
    assert source["size"] == "0x40" and source["source"].startswith("merged")
    # The kexec'd child is credited by its setup_data seed: dmesg logs the credit before the efi: line.
    assert rules.credit_attributable_to(layer2) == ["setup_data"]
    assert rules.efi_seed_source(layer2, layer1)["source"].startswith("layer 1's table again")
