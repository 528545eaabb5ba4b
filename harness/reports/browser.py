# SPDX-License-Identifier: GPL-2.0-only
"""The matrix page in headless Chromium: a DOM dump or a screenshot of a file:// page.

The tests drive chromium() directly (console errors, the status filter); the
`seedchain report --screenshot` option uses screenshot().
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import SeedchainError


def chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    """Headless Chromium (Debian's chromium) on a file:// page; the page's console goes to
    stderr. The compositor and virtual-time flags make a screenshot wait for a fully
    painted page; the networking flags keep it from calling out."""
    binary = shutil.which("chromium")
    if binary is None:
        raise SeedchainError("chromium is not installed", where="screenshot",
                             hint="apt-get install chromium (./dev setup does)")
    profile.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(dir=profile))        # a fresh profile for every start
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--window-size=1400,900", "--run-all-compositor-stages-before-draw",
         "--virtual-time-budget=1000", *mode, Path(page).resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(profile)},
        stdin=subprocess.DEVNULL)


def screenshot(page: Path, png: Path) -> Path:
    """A PNG of the page as a person first sees it (1400x900)."""
    with tempfile.TemporaryDirectory() as profile:
        run = chromium(page, Path(profile), f"--screenshot={Path(png).resolve()}")
    if not Path(png).exists():
        raise SeedchainError(f"chromium made no screenshot of {page}", where="screenshot",
                             hint=run.stderr.strip()[-500:])
    return Path(png)
