# SPDX-License-Identifier: GPL-2.0-only
"""Section 3: building a chain's images, warm and cold."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import NotRequired, TypedDict

from bench.common import (fmt, ratio, say, stats, table)
from harness.images import debian
from harness.images.cache import Cache
from harness.images.initramfs import build_chain
from bench.context import GOAL_WARM_BUILD, Context, Results, scenario


# ---------------------------------------------------------------- 3: image building

class InitrdOnlyCold(Cache):
    """The shared cache for kernels, userlands and package lists; initramfs entries go
    to a fresh, empty folder, so every one of them is built."""

    def __init__(self, shared: Cache, fresh: Path):
        super().__init__(shared.root)
        self.fresh = Cache(fresh)

    def build(self, kind, key, builder):
        if kind == "initrd":
            return self.fresh.build(kind, key, builder)
        return super().build(kind, key, builder)


class NetworkClock:
    """Times the harness's network steps (apt-get update, apt-get download) while active."""

    def __init__(self):
        self.lists = 0.0
        self.downloads = 0.0

    def __enter__(self):
        self._ensure, self._download = debian.Apt.ensure_lists, debian._download
        clock = self

        def ensure_lists(apt, *a, **k):
            t = time.monotonic()
            try:
                return clock._ensure(apt, *a, **k)
            finally:
                clock.lists += time.monotonic() - t

        def download(*a, **k):
            t = time.monotonic()
            try:
                return clock._download(*a, **k)
            finally:
                clock.downloads += time.monotonic() - t
        debian.Apt.ensure_lists, debian._download = ensure_lists, download
        return self

    def __exit__(self, *exc):
        debian.Apt.ensure_lists, debian._download = self._ensure, self._download


class ColdNetwork(TypedDict):
    """An empty cache's build: its seconds, of which package lists and downloads."""
    seconds: float
    package_lists: float
    downloads: float
    rest: float


class BuildTimes(TypedDict):
    """One scenario's entry in the results' "build" section."""
    warm: list[float]
    cold_initrd: list[float]
    cold_network: ColdNetwork | None
    initrd_bytes: NotRequired[int]


def bench_build(ctx: Context, cold_network: bool) -> None:
    section = ctx.results.setdefault("build", {})
    ctx.artifacts.mkdir(parents=True, exist_ok=True)
    # a folder of its own (a fixed name could be one of the user's), removed at the end
    scratch = Path(tempfile.mkdtemp(prefix="build-scratch-", dir=ctx.artifacts))
    n = max(3, ctx.repeat)
    for name in ctx.scenarios:
        s = scenario(name)
        data: BuildTimes = {"warm": [], "cold_initrd": [], "cold_network": None}
        section[name] = data
        build_chain(s, ctx.cache)                       # warm-up: nothing timed is built
        for _ in range(n):
            t = time.monotonic()
            build_chain(s, ctx.cache)
            data["warm"].append(time.monotonic() - t)
        say(f"build {name}: warm {min(data['warm']):.3f} s (min of {n})")
        for _ in range(max(1, ctx.repeat)):
            fresh = Path(tempfile.mkdtemp(prefix="cold-initrd-", dir=scratch))
            try:
                t = time.monotonic()
                images = build_chain(s, InitrdOnlyCold(ctx.cache, fresh))
                data["cold_initrd"].append(time.monotonic() - t)
                data["initrd_bytes"] = sum(img.initrd.stat().st_size for img in images)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
            say(f"build {name}: cold (initramfs only) {data['cold_initrd'][-1]:.2f} s")
        if cold_network:
            fresh = Path(tempfile.mkdtemp(prefix="cold-all-", dir=scratch))
            try:
                with NetworkClock() as clock:
                    t = time.monotonic()
                    build_chain(s, Cache(fresh))
                    total = time.monotonic() - t
                data["cold_network"] = {"seconds": total, "package_lists": clock.lists,
                                        "downloads": clock.downloads,
                                        "rest": total - clock.lists - clock.downloads}
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
            say(f"build {name}: cold (empty cache) {total:.1f} s, of which lists {clock.lists:.1f} s, "
                f"downloads {clock.downloads:.1f} s")
        ctx.save()
    shutil.rmtree(scratch, ignore_errors=True)


def report_build(ctx: Results) -> str:
    rows = []
    for name, d in ctx.results["build"].items():
        warm, cold = stats(d["warm"]), stats(d["cold_initrd"])
        net = d.get("cold_network")
        rows.append([name, f"{fmt(warm['min'], 3)} / {fmt(warm['median'], 3)}",
                     "met" if warm["median"] is not None and warm["median"] < GOAL_WARM_BUILD else "not met",
                     f"{fmt(cold['min'], 2)} / {fmt(cold['median'], 2)}",
                     fmt(ratio(cold["median"], warm["median"]), 1, "x"),
                     fmt(d.get("initrd_bytes", 0) / 1e6, 1),
                     "not run (--cold-network)" if not net else
                     f"{net['seconds']:.1f} (lists {net['package_lists']:.1f}, downloads "
                     f"{net['downloads']:.1f}, rest {net['rest']:.1f})"])
    return "\n".join([
        "3. Image building: harness.images.build_chain (seconds, min / median)\n"
        f"   warm = everything cached (goal < {GOAL_WARM_BUILD} s); cold = initramfs entries built "
        "anew, kernels/userland/package lists from the cache;\n"
        "   empty cache = a fresh SEEDCHAIN_CACHE, Debian lists and .debs downloaded",
        table(["scenario", "warm s", "goal", "cold s", "cold/warm", "initrds MB", "empty cache s"], rows)])
