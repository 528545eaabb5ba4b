# SPDX-License-Identifier: GPL-2.0-only
"""The tree is the pipeline: each stage of harness/ imports only the stages before it,
no stage names an architecture (it asks harness/arch), and no module grows far past the
size a reader takes in at once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"
# About 400 lines a module is the guide: past it, see whether the module does two jobs and
# split it by meaning (never squeeze lines to stay under it). Past MAX_LINES it surely does.
MAX_LINES = 600

# What each part may import. The stages run scenario -> images -> boot -> facts ->
# checks -> matrix -> reports. boot fills in the facts it is given (their types and
# the guest report's parser live in facts), so it is the one stage that reaches one
# ahead. The shared bottom (errors, paths, proc, progress, yamldoc, arch) imports no stage;
# nor do private (files only the user can read), runfolder (a run's own folder), files (opening
# the files a user names) and text (untrusted text for a terminal or Markdown).
BOTTOM = {"errors", "paths", "proc", "progress", "yamldoc", "private", "runfolder", "files", "text"}
ALLOWED = {
    "errors": set(), "paths": set(), "proc": set(), "progress": {"text"}, "yamldoc": {"errors", "files"},
    "files": {"errors"},          # opening the files a user names, for every stage
    "text": set(),                # untrusted text made safe for a terminal or Markdown
    "arch": {"errors", "paths", "files"},
    "scenario": BOTTOM,
    "images": BOTTOM | {"arch", "scenario"},
    "boot": BOTTOM | {"arch", "scenario", "images", "facts"},
    "facts": BOTTOM | {"arch"},
    "checks": BOTTOM | {"arch", "scenario", "facts"},
    "matrix": BOTTOM | {"scenario", "checks"},
    "reports": BOTTOM | {"scenario", "checks", "matrix"},
    "pipeline": BOTTOM | {"arch", "scenario", "images", "boot", "facts", "checks"},
    "jobs": BOTTOM | {"scenario", "images", "checks", "pipeline"},   # several runs, a process each
    "startup": set(),               # the command line's first moments, before its imports
    "explain": BOTTOM | {"scenario"},   # `seedchain explain`: a check's section of docs/checks.md
    "private": set(), "runfolder": {"errors", "private"},
}
FRONT_DOORS = {"cli", "pytest_plugin", "pytest_session"}   # thin: may use every stage


def _part(module: str) -> str:
    return module.split(".")[1] if module.startswith("harness.") else ""


def _modules():
    for path in sorted(HARNESS.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def _imports(path: Path, package: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("harness.")}


@pytest.mark.parametrize("name,path", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_stages_import_only_earlier_stages(name, path):
    part = _part(name)
    if part in FRONT_DOORS or name == "harness":
        return
    assert part in ALLOWED, f"{name}: harness/{part} is not a known stage; add it to ALLOWED"
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    wrong = sorted(i for i in _imports(path, package)
                   if _part(i) not in ALLOWED[part] | {part} and _part(i) != "")
    assert not wrong, f"{name} (stage {part}) imports {wrong}; allowed: {sorted(ALLOWED[part])}"


def test_every_stage_is_a_package():
    for stage in ("scenario", "images", "boot", "facts", "checks", "matrix", "reports", "arch"):
        assert (HARNESS / stage / "__init__.py").is_file(), stage


@pytest.mark.parametrize("path", sorted([*HARNESS.rglob("*.py"), *(ROOT / "bench").glob("*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_far_past_the_guide(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by what it does"


def test_the_layering_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from harness.reports.matrix import merge\nfrom harness.boot import qemu\n")
    assert _imports(bad, "harness.facts") == {"harness.reports.matrix", "harness.reports.matrix.merge",
                                              "harness.boot", "harness.boot.qemu"}
    assert {_part(i) for i in _imports(bad, "harness.facts")} - ALLOWED["facts"] == {"reports", "boot"}


def test_every_architecture_has_the_whole_interface():
    from harness import arch
    for name, module in arch.ARCHES.items():
        missing = [n for n in arch.INTERFACE if not hasattr(module, n)]
        assert not missing, f"architecture {name} lacks {missing}"
    with pytest.raises(KeyError, match="unknown architecture 'sparc'; known: x86_64"):
        arch.get("sparc")


# An architecture's name compared, or a module of one imported, outside harness/arch.
_ARCH_NAME = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["'](x86_64|aarch64|riscv64)["']|["'](x86_64|aarch64|riscv64)["']\s*(==|!=)"""
                        r"|(==|!=)\s*DEFAULT\b|\bDEFAULT\s*(==|!=)|harness\.arch\.(x86_64|aarch64|riscv64)\b")
# The stages that already ask the seam for everything (the rest follow as they move to it).
SEAM_STAGES = ("checks", "facts", "boot")


def _arch_names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _ARCH_NAME.search(line)]


@pytest.mark.parametrize("stage", SEAM_STAGES)
def test_no_stage_names_an_architecture(stage):
    """A check dispatches on the seed's carrier (harness.arch.carrier), never on "x86_64"."""
    found = {str(p.relative_to(ROOT)): hits for p in sorted((HARNESS / stage).rglob("*.py"))
             if (hits := _arch_names(p.read_text()))}
    assert not found, found


def test_the_architecture_name_check_can_fail():
    assert _arch_names('if f.arch != "x86_64":\n    pass\nx = a == DEFAULT\nfrom harness.arch.x86_64 import X')
    assert not _arch_names('if carrier(f.arch) == "device_tree":')


# ---------------------------------------------------------------- no import circles

def _module_names(root: Path, top: str) -> dict[str, Path]:
    """Every module under `root` (the package `top`), by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [top, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _import_graph(root: Path, top: str) -> dict[str, set[str]]:
    """Module -> the modules it imports, at the top or inside a function alike: `from P
    import m` counts as importing P.m when that is a module, else P."""
    modules = _module_names(root, top)

    def module_of(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(kept + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {m for t in targets if (m := module_of(t)) and m != name}
        graph[name] = edges
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each group of modules that import each other (Tarjan's strongly
    connected components of more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_no_import_circles_among_harness_modules():
    circles = _circles(_import_graph(HARNESS, "harness"))
    assert not circles, "modules that import each other (directly or round a circle): " + "; ".join(
        " <-> ".join(group) for group in circles)


def test_the_circle_check_can_fail(tmp_path):
    """A circle closed by an import inside a function, and one through a relative import."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def late():\n    from pkg import a\n    return a\n")
    (pkg / "sub" / "c.py").write_text("from . import d\n")
    (pkg / "sub" / "d.py").write_text("import pkg.sub.c\nfrom pkg import a\n")
    graph = _import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.sub.c"] == {"pkg.sub.d"}
    assert _circles(graph) == [["pkg.a", "pkg.sub.b"], ["pkg.sub.c", "pkg.sub.d"]]
    (pkg / "sub" / "b.py").write_text("def late():\n    return None\n")
    (pkg / "sub" / "d.py").write_text("from pkg import a\n")
    assert _circles(_import_graph(pkg, "pkg")) == []
