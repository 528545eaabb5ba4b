# SPDX-License-Identifier: GPL-2.0-only
"""Debian version strings: dpkg's ordering, and the upstream part."""

from __future__ import annotations

import functools
import re


def _order(c: str) -> int:
    # dpkg's ordering of non-digit characters: ~ before everything (even the
    # end of the string), then letters, then the rest.
    if c == "~":
        return -1
    return ord(c) if c.isalpha() else ord(c) + 256

_NON_DIGITS, _DIGITS = re.compile(r"\D*"), re.compile(r"\d*")


def _compare_part(a: str, b: str) -> int:
    while a or b:
        na, nb = _NON_DIGITS.match(a)[0], _NON_DIGITS.match(b)[0]  # type: ignore[index]  # \D* always matches
        for k in range(max(len(na), len(nb))):
            ca = _order(na[k]) if k < len(na) else 0
            cb = _order(nb[k]) if k < len(nb) else 0
            if ca != cb:
                return ca - cb
        a, b = a[len(na):], b[len(nb):]
        da, db = _DIGITS.match(a)[0], _DIGITS.match(b)[0]  # type: ignore[index]  # \d* always matches
        if int(da or 0) != int(db or 0):
            return int(da or 0) - int(db or 0)
        a, b = a[len(da):], b[len(db):]
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch or 0), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """Debian version comparison (like `dpkg --compare-versions`): <0, 0 or >0."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    return (ea - eb) or _compare_part(ua, ub) or _compare_part(ra, rb)


version_key = functools.cmp_to_key(compare_versions)


def upstream_version(v: str) -> str:
    """'1:2.0.25-3+deb12u3' -> '2.0.25'."""
    return _split_version(v)[1]
