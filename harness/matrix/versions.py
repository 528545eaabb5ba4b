# SPDX-License-Identifier: GPL-2.0-only
"""Versions of the components a result names (QEMU, kernels, kexec-tools), and ranges
of them: the words the known gaps are written in. Pure functions over plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Sequence

# --- versions ----------------------------------------------------------------------------

_EPOCH = re.compile(r"^\d+:")
_NUMBERS = re.compile(r"v?(\d+(?:\.\d+)*)")
_OPS = (">=", "<=", "==", "!=", ">", "<")
_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)?\s*(\d+(?:\.\d+)*)\s*")


def upstream_version(text: str | None) -> tuple[int, ...] | None:
    """The upstream version as numbers, or None when there is none to read.

    Debian's epoch (`1:`) and revision (`-3+deb12u3`) are dropped, and so is
    anything after the leading dotted numbers: '1:2.0.25-3+deb12u3' -> (2, 0, 25),
    '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)' -> (7, 2, 22), '6.1.0-56-amd64'
    -> (6, 1, 0), '7.2.13+deb14-amd64' -> (7, 2, 13).
    """
    if not text:
        return None
    match = _NUMBERS.match(_EPOCH.sub("", text.strip()))
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """-1, 0 or 1; missing parts count as 0, so 6.0 == 6.0.0."""
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


_HOLDS = {">=": lambda c: c >= 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0,
          "<": lambda c: c < 0, "==": lambda c: c == 0, "!=": lambda c: c != 0}


@dataclass(frozen=True)
class VersionRange:
    """Comma-separated clauses that must all hold, e.g. '>=2.0.20,<2.0.25';
    '*' is every version. A version without an operator means '=='."""

    text: str
    clauses: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Raises ValueError saying what is wrong."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty version range")
        if text.strip() == "*":
            return cls("*")
        clauses = []
        for part in text.split(","):
            match = _CLAUSE.fullmatch(part)
            if not match:
                raise ValueError(f"{part.strip()!r} is not a version clause")
            op, numbers = match.group(1) or "==", match.group(2)
            clauses.append((op, tuple(int(n) for n in numbers.split("."))))
        result = cls(text.strip(), tuple(clauses))
        if result._empty():
            raise ValueError("no version satisfies all its clauses")
        return result

    def __contains__(self, version: tuple[int, ...] | str | None) -> bool:
        if isinstance(version, str):
            version = upstream_version(version)
        if version is None:
            return False
        return all(_HOLDS[op](_compare(version, bound)) for op, bound in self.clauses)

    def _empty(self) -> bool:
        # The largest lower bound against the smallest upper bound; == pins both.
        low = high = None                    # (version, inclusive)
        for op, bound in self.clauses:
            if op in (">=", ">", "=="):
                inclusive = op != ">"
                if low is None or _compare(bound, low[0]) > 0 or (
                        _compare(bound, low[0]) == 0 and not inclusive):
                    low = (bound, inclusive)
            if op in ("<=", "<", "=="):
                inclusive = op != "<"
                if high is None or _compare(bound, high[0]) < 0 or (
                        _compare(bound, high[0]) == 0 and not inclusive):
                    high = (bound, inclusive)
        if low is None or high is None:
            return False
        order = _compare(low[0], high[0])
        return order > 0 or (order == 0 and not (low[1] and high[1]))

    def __str__(self) -> str:
        return self.text


def in_ranges(version: tuple[int, ...] | str | None, ranges: Sequence[VersionRange]) -> bool:
    """True when the version lies in any of the ranges."""
    return any(version in r for r in ranges)


def layer_index(layer: dict, position: int) -> int:
    index = layer.get("index")
    return index if isinstance(index, int) else position + 1


def kernel_version_text(layer: dict) -> str:
    """The version to compare a layer's kernel by: the Debian package version, else
    `uname -r`, else the series of a 'debian:SUITE/SERIES' spec; '' when unknown."""
    for text in (layer.get("kernel_version"), layer.get("kernel")):
        if text and upstream_version(text) is not None:
            return text
    spec = layer.get("kernel_spec") or ""
    if spec.startswith("debian:") and "/" in spec:
        series = spec.rsplit("/", 1)[1]
        if upstream_version(series) is not None:
            return series
    return ""


def component_version(result: dict, position: int, component: str) -> tuple[str, tuple[int, ...] | None]:
    """(version as written, upstream numbers) of a component, seen from a layer.

    qemu: the QEMU that ran the chain; kernel: the layer's kernel; parent-kernel:
    the kernel of the layer before (none for layer 1); kexec-tools: the kexec-tools
    of the layer before, which loaded this one (none for layer 1); bootloader: the boot
    loader that started layer 1 from an ESP (its package version, from the seed_file
    record; none for a -kernel boot and for later layers)."""
    layers = result.get("layers") or []
    if component == "qemu":
        text = (result.get("qemu") or {}).get("version") or ""
    elif component == "kernel":
        text = kernel_version_text(layers[position])
    elif component == "bootloader":
        loader = (layers[position].get("seed_file") or {}).get("loader") or "" if position == 0 else ""
        text = loader.split(" ", 1)[1] if " " in loader else ""
    elif position == 0:
        text = ""
    elif component == "parent-kernel":
        text = kernel_version_text(layers[position - 1])
    elif component == "kexec-tools":
        text = layers[position - 1].get("kexec_tools") or ""
    else:
        raise ValueError(f"unknown component {component!r}")
    return text, upstream_version(text)


def describe_layer(result: dict, position: int) -> str:
    """Layer, components and versions, e.g. 'layer 2: kernel 5.10.262-1 (5.10.0-46-amd64),
    loaded by kexec_file_load from layer 1 (kernel 6.1.192-2, kexec-tools 1:2.0.25-3+deb12u3)'."""
    layers = result.get("layers") or []
    layer = layers[position]
    index = layer_index(layer, position)
    parts = [f"layer {index}: kernel {_kernel_words(layer)}"]
    loader = layer.get("loader") or "?"
    if position == 0:
        qemu = (result.get("qemu") or {}).get("version") or "?"
        parts.append(f"booted by QEMU {qemu}")
    else:
        parent = layers[position - 1]
        parts.append(f"loaded by {loader} from layer {layer_index(parent, position - 1)} "
                     f"(kernel {_kernel_words(parent)}, "
                     f"kexec-tools {parent.get('kexec_tools') or '?'})")
    return ", ".join(parts)


def _kernel_words(layer: dict) -> str:
    package, release = layer.get("kernel_version") or "", layer.get("kernel") or ""
    if package and release:
        return f"{package} ({release})"
    return package or release or layer.get("kernel_spec") or "?"
