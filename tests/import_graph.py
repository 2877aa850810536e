"""The import graph of ``src/errorset`` read from the source (AST), every import counted.

Imports inside functions count as much as module-level ones: they hide a dependency
from import time, not from the design. Only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the ``errorset`` package: dotted name -> file."""
    out: dict[str, Path] = {}
    for path in sorted((src / "errorset").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def names_in(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every name an import in ``tree`` (of ``module``) may refer to as a module, at any depth, absolute."""
    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _is_type_checking(node.test):  # never run
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            names.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import module`

    Visitor().visit(tree)
    return names


def imported_names(name: str, path: Path) -> set[str]:
    """:func:`names_in` of the module ``name`` at ``path``."""
    return names_in(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the errorset modules it imports (a ``from pkg import name`` of a non-module counts as ``pkg``)."""
    mods = modules(src)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for imported in imported_names(name, path):
            while imported not in mods and "." in imported:
                imported = imported.rpartition(".")[0]
            if imported in mods and imported != name and imported != "errorset":
                deps.add(imported)
        graph[name] = deps
    return graph


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    """``start`` and every module it imports, directly or not (a package's ``__init__`` counts when imported)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in graph)
        todo.extend(graph.get(name, ()))
    return seen


def package_of(module: str) -> str:
    """The top-level errorset package (or module) a module belongs to: ``errorset.measure.sigma_search`` ->
    ``errorset.measure``."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
