# SPDX-License-Identifier: GPL-2.0-only
"""The recipes in the top-level images/ folder: what goes into or under a guest.

Each recipe is a YAML file validated against a JSON Schema here, with the same
file:line messages as scenarios; its digest goes into the cache keys of what is
built from it, so editing a recipe rebuilds exactly what it describes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ImageError, ScenarioError
from harness.paths import IMAGES
from harness.yamldoc import load_document

_WORDS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
_PATHS = {"type": "object", "minProperties": 1, "additionalProperties": _WORDS}
_TEXT = {"type": "string"}

INITRAMFS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["agent", "userland", "kernel_modules", "channel_modules", "chain_disk", "cmdline"],
    "properties": {
        "agent": {"type": "object", "additionalProperties": False, "required": ["init", "arch"],
                  "properties": {
                      "init": {**_TEXT, "description": "The agent (/init), relative to images/."},
                      "arch": {"type": "object", "minProperties": 1, "additionalProperties": _TEXT,
                               "description": "Each architecture's part (/seedchain/arch.sh)."}}},
        "userland": {"type": "object", "additionalProperties": False,
                     "required": ["packages", "files", "libraries_of"],
                     "properties": {"packages": _WORDS, "files": _PATHS, "libraries_of": _WORDS}},
        "kernel_modules": {"type": "object", "additionalProperties": _WORDS,
                           "description": "Modules for virtio-rng, by bus."},
        "channel_modules": {"type": "object", "additionalProperties": _WORDS,
                            "description": "Modules for the agent's channel, by architecture."},
        "chain_disk": {"type": "object", "additionalProperties": False,
                       "required": ["serial", "kernel_modules"],
                       "properties": {"serial": {"type": "string", "pattern": "^[a-z0-9-]{1,20}$"},
                                      "kernel_modules": {"type": "object", "additionalProperties": _WORDS}},
                       "description": "The chain disk's serial and the modules that drive it, by bus."},
        "cmdline": {"type": "object", "additionalProperties": False,
                    "required": ["console", "base", "crash_child", "crashkernel"],
                    "properties": {"console": {"type": "object", "minProperties": 1,
                                               "additionalProperties": _TEXT},
                                   "base": _TEXT, "crash_child": _TEXT, "crashkernel": _TEXT}},
    },
}

QEMU_SUITE_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["package", "binary", "mmdebstrap"],
    "properties": {
        "package": _TEXT, "binary": _TEXT,
        "arches": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False, "required": ["package", "binary"],
            "properties": {"package": _TEXT, "binary": _TEXT,
                           "firmware": {"type": "object", "additionalProperties": _WORDS}}}},
        "mmdebstrap": {"type": "object", "additionalProperties": False,
                       "required": ["variant", "dpkg_excludes"],
                       "properties": {"variant": {"enum": ["apt", "essential", "minbase"]},
                                      "dpkg_excludes": _WORDS}},
    },
}


@dataclass(frozen=True)
class Recipe:
    path: Path
    data: dict

    @property
    def digest(self) -> str:
        """Of the recipe's content, not its comments: for cache keys."""
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()[:16]


def _load(name: str, schema: dict) -> Recipe:
    path = IMAGES / name
    try:
        data, _ = load_document(path, schema)
    except ScenarioError as e:
        raise ImageError(f"recipe {e.what}", where=e.where,
                         hint=e.hint or "the recipes in images/ are part of seedchain: "
                                        "restore it with git") from None
    assert isinstance(data, dict)       # every recipe schema's top level is an object
    return Recipe(path, data)


_STRING_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}

QEMU_SOURCE_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["version", "source", "build_depends", "configure", "target", "firmware"],
    "properties": {
        "version": _TEXT,
        "source": {"type": "object", "additionalProperties": False,
                   "required": ["suite", "package", "tarball"],
                   "properties": {"suite": _TEXT, "package": _TEXT, "tarball": {"enum": ["orig"]}}},
        "build_depends": _WORDS, "configure": _WORDS, "target": _TEXT,
        "edits": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["file", "replace", "with"],
            "properties": {"file": _TEXT, "replace": _TEXT, "with": _TEXT}}},
        "firmware": {"type": "object", "additionalProperties": False, "required": ["packages", "dirs"],
                     "properties": {"packages": _STRING_LIST, "dirs": _STRING_LIST}},
    },
}


@functools.cache
def qemu_source(name: str) -> Recipe:
    """images/qemu/NAME: a QEMU release built from a Debian source package's tarball."""
    return _load(f"qemu/{name}", QEMU_SOURCE_SCHEMA)


@functools.cache
def initramfs() -> Recipe:
    """images/initramfs.yaml: what every layer's initramfs carries."""
    return _load("initramfs.yaml", INITRAMFS_SCHEMA)


@functools.cache
def qemu_suite() -> Recipe:
    """images/qemu/debian-suite.yaml: a Debian suite's QEMU in a root file system."""
    return _load("qemu/debian-suite.yaml", QEMU_SUITE_SCHEMA)


BOOTLOADER_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["package", "binary", "esp", "loader_conf", "entry", "seed_file_bytes",
                 "system_token", "vars_tool"],
    "properties": {
        "package": _TEXT, "binary": _TEXT,
        "esp": {"type": "object", "additionalProperties": False,
                "required": ["binary", "kernel", "initrd", "loader_conf", "entry", "seed_file"],
                "properties": {key: {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"}
                               for key in ("binary", "kernel", "initrd", "loader_conf", "entry", "seed_file")}},
        "loader_conf": _TEXT, "entry": _TEXT,
        "seed_file_bytes": {"type": "integer", "minimum": 32, "maximum": 4096},
        "system_token": {"type": "object", "additionalProperties": False,
                         "required": ["name", "guid", "attributes", "bytes"],
                         "properties": {"name": _TEXT, "guid": {"type": "string", "pattern": r"^[0-9a-f-]{36}$"},
                                        "attributes": {"type": "integer"},
                                        "bytes": {"type": "integer", "minimum": 1, "maximum": 256}}},
        "vars_tool": {"type": "object", "additionalProperties": False,
                      "required": ["suite", "package", "python_path", "module"],
                      "properties": {"suite": _TEXT, "package": _TEXT, "python_path": _TEXT, "module": _TEXT}},
    },
}


@functools.cache
def bootloader(name: str) -> Recipe:
    """images/bootloader/NAME.yaml: a boot loader on an ESP, and what it reads there."""
    return _load(f"bootloader/{name}.yaml", BOOTLOADER_SCHEMA)


KERNEL_SOURCE_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["source", "base", "arches"],
    "properties": {
        "source": {"type": "object", "additionalProperties": False, "required": ["package", "tarball"],
                   "properties": {"package": {"type": "string", "pattern": "{series}"},
                                  "tarball": {"type": "string", "pattern": "{series}"}}},
        "base": {"enum": ["allnoconfig", "tinyconfig"]},
        "arches": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "required": ["make", "toolchain", "commands", "build_depends", "image", "target", "fragment"],
            "properties": {"make": _WORDS, "toolchain": _WORDS, "commands": _WORDS, "headers": _WORDS,
                           "build_depends": _WORDS, "image": _TEXT, "target": _TEXT,
                           "fragment": {"type": "string", "minLength": 1}}}},
    },
}


@functools.cache
def kernel_source() -> Recipe:
    """images/kernel/debian-source.yaml: a kernel built from a Debian linux-source package."""
    return _load("kernel/debian-source.yaml", KERNEL_SOURCE_SCHEMA)
