# SPDX-License-Identifier: GPL-2.0-only
"""seedchain is GPL-2.0-only: everything `pip install seedchain` brings in must be under a
license that can be combined with it. Read from the installed packages' own metadata
(License-Expression, License, or the License classifiers); optional extras (kcidb, test)
are not required and are not counted."""

from __future__ import annotations

import email.message
import re
from importlib import metadata
from typing import cast

import pytest

# Licenses a GPL-2.0-only program may require. Apache-2.0 and GPL-3.0 are not among them.
COMPATIBLE = {
    "MIT", "BSD", "BSD-2-Clause", "BSD-3-Clause", "ISC", "PSF-2.0", "Public domain",
    "GPL-2.0-only", "GPL-2.0-or-later", "LGPL-2.0-or-later", "LGPL-2.1-or-later",
    "MPL-2.0",           # its section 3.3 allows combining with GPL-2.0-or-later code
}
# What the classifiers and free-text License fields say, in SPDX words.
WORDS = {
    "MIT License": "MIT", "MIT license": "MIT", "BSD License": "BSD",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "Apache Software License": "Apache-2.0", "ISC License (ISCL)": "ISC",
    "Public Domain": "Public domain", "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
}
# Packages whose metadata says nothing, with the license their sources carry.
KNOWN = {"pylibfdt": "BSD-2-Clause OR GPL-2.0-or-later"}    # dtc's libfdt: dual-licensed


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!\[~(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _extras(requirement: str) -> list[str]:
    found = re.search(r"\[([^\]]+)\]", requirement.split(";")[0])
    return [e.strip() for e in found[1].split(",")] if found else []


def required(name: str, extras: tuple[str, ...] = (), seen: dict | None = None,
             done: set | None = None) -> dict[str, metadata.Distribution]:
    """The installed distributions `name` requires, with the extras asked for, transitively
    (a package met again with other extras is walked again for those)."""
    seen = {} if seen is None else seen
    done = set() if done is None else done
    key = name.lower().replace("_", "-")
    todo = {e for e in (None, *extras) if (key, e) not in done}    # None: the plain requirements
    if not todo:
        return seen
    seen.setdefault(key, metadata.distribution(name))
    done |= {(key, e) for e in todo}
    for requirement in seen[key].requires or []:
        marker = requirement.split(";", 1)[1] if ";" in requirement else ""
        wanted = set(re.findall(r"""extra\s*==\s*["']([^"']+)["']""", marker))
        if (wanted and not wanted & todo) or (not wanted and None not in todo):
            continue
        try:
            required(_name(requirement), tuple(_extras(requirement)), seen, done)
        except metadata.PackageNotFoundError:
            continue        # a requirement for another platform or Python, not installed here
    return seen


def licenses(dist: metadata.Distribution) -> set[str]:
    """The SPDX words of a distribution's license ('A OR B' gives both)."""
    # Python 3.11's PackageMetadata protocol lacks get() (3.12's has it); the object is an
    # email.message.Message (importlib.metadata._adapters.Message) on every version.
    meta = cast(email.message.Message, dist.metadata)
    name = meta["Name"].lower().replace("_", "-")
    text = meta.get("License-Expression") or KNOWN.get(name) or ""
    if not text:
        classifiers = [c.rsplit(" :: ", 1)[-1] for c in meta.get_all("Classifier") or []
                       if c.startswith("License ::")]
        text = " OR ".join(WORDS.get(c, c) for c in classifiers) or meta.get("License") or ""
        text = WORDS.get(text, text)
    return {part.strip("() ") for part in re.split(r"\s+OR\s+", text) if part.strip()}


def test_every_required_package_has_a_license_seedchain_may_require():
    found = required("seedchain")
    assert "pyyaml" in found and "seedchain" in found     # the walk saw the requirements
    wrong = {name: sorted(licenses(dist)) for name, dist in found.items()
             if name != "seedchain" and not licenses(dist) & COMPATIBLE}
    assert not wrong, f"not compatible with GPL-2.0-only (or unknown): {wrong}"


def test_the_check_can_fail():
    """kcidb-io's jsonschema[format] pulls in rfc3987 (GPL-3.0-or-later): why it is optional."""
    if "kcidb-io" not in {d.metadata["Name"].lower() for d in metadata.distributions()}:
        pytest.fail("the test extras install kcidb-io: .venv/bin/pip install -e '.[test]'")
    found = required("kcidb-io")
    assert "rfc3987" in found
    assert not licenses(found["rfc3987"]) & COMPATIBLE


def test_seedchain_itself_says_gpl_2_only():
    assert metadata.distribution("seedchain").metadata.get("License-Expression", "") == "GPL-2.0-only" or \
        "GPL-2.0-only" in (metadata.distribution("seedchain").metadata.get("License") or "")


def test_every_source_file_names_its_license():
    """An SPDX line in the first lines of every Python and shell file the project ships."""
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    sources = [f for f in files if not f.startswith("tests/fixtures/")
               and (f.endswith((".py", ".sh")) or f in ("dev", ".ci/run"))]
    assert len(sources) > 100
    missing = [f for f in sources
               if "SPDX-License-Identifier: GPL-2.0-only" not in "\n".join((root / f).read_text().splitlines()[:3])]
    assert not missing, missing
