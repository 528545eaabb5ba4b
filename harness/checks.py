"""The checks: pure functions from recorded layer facts to True, False or None.

None means "does not apply" (nothing was received, so nothing can be zeroed; other
entropy sources were on, so a credit cannot be attributed to the seed). Each
function's docstring says what it looks at, so a verdict can be traced to facts.
"""

from __future__ import annotations

import re

from .facts import SEED_SIZE, LayerFacts
from .model import CHECKS

_CRNG_DONE = re.compile(r"random: crng init done")
_RUN_INIT = re.compile(r"Run /init as init process")
_EFI_RNG = re.compile(r"\befi: .*\bRNG=0x")


def booted(f: LayerFacts, nxt: LayerFacts | None = None) -> bool:
    """The layer's agent ran and sent a well-formed report."""
    return f.booted


def received(f: LayerFacts, nxt: LayerFacts | None = None) -> bool | None:
    """A SETUP_RNG_SEED (type 9) entry is in sysfs or in the setup_data list in RAM."""
    if not f.booted:
        return None
    return bool(f.sysfs_seeds or f.ram_seeds)


def zeroed_sysfs(f: LayerFacts, nxt: LayerFacts | None = None) -> bool | None:
    """Every type-9 entry's sysfs data file is empty or all zero bytes."""
    if not received(f):
        return None
    return all(not any(e.data) for e in f.sysfs_seeds)


def zeroed_ram(f: LayerFacts, nxt: LayerFacts | None = None) -> bool | None:
    """In guest RAM every type-9 entry has len 0 and 32 zero bytes (None: RAM not read)."""
    if not received(f) or not f.ram_seeds:
        return None
    return all(e.len == 0 and len(e.data) >= SEED_SIZE and not any(e.data[:SEED_SIZE])
               for e in f.ram_seeds)


def other_entropy_sources(f: LayerFacts) -> list[str]:
    """Sources besides the seed that could initialise the RNG before /init."""
    sources = []
    cmdline = f.field("cmdline").split()
    if " rdrand " in f" {f.field('cpu_flags')} " and "random.trust_cpu=off" not in cmdline:
        sources.append("RDRAND (trusted CPU)")
    hwrng = f.field("hwrng")
    if hwrng and hwrng != "none":
        sources.append(f"hardware RNG {hwrng}")
    if any(_EFI_RNG.search(line) for line in f.dmesg):
        sources.append("EFI RNG table")
    return sources


def _crng_before_init(f: LayerFacts) -> bool:
    crng = init = None
    for number, line in enumerate(f.dmesg):
        if crng is None and _CRNG_DONE.search(line):
            crng = number
        if init is None and _RUN_INIT.search(line):
            init = number
    return crng is not None and (init is None or crng < init)


def credited(f: LayerFacts, nxt: LayerFacts | None = None) -> bool | None:
    """The seed initialised the RNG: 'crng init done' before 'Run /init', with the
    layer's other entropy sources off (else None: the credit cannot be attributed)."""
    got = received(f)
    if got is None:
        return None
    if not got:
        return False
    if other_entropy_sources(f):
        return None
    return _crng_before_init(f)


def exposed(f: LayerFacts, nxt: LayerFacts | None = None) -> bool | None:
    """Seed bytes are still readable by any user in sysfs (a non-zero, world-readable data file)."""
    if not f.booted:
        return None
    return any(any(e.data) and e.world_readable for e in f.sysfs_seeds)


def passed_on(f: LayerFacts, nxt: LayerFacts | None = None) -> bool | None:
    """The next layer received a seed (None for the last layer or when it never booted)."""
    if nxt is None or not f.booted:
        return None
    return received(nxt)


FUNCTIONS = {name: globals()[name] for name in CHECKS}


def run_checks(layers: list[LayerFacts]) -> list[dict[str, bool | None]]:
    """Every check for every layer; passed_on looks at the following layer."""
    results = []
    for i, f in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        results.append({name: fn(f, nxt) for name, fn in FUNCTIONS.items()})
    return results
