"""The package's import graph, read from the source with ast (function-local imports included; those
under `if TYPE_CHECKING:` never run and are left out): no import cycles among tinyhost modules, and
the compiler does not depend on the reference executor (shared math lives in tinyhost.quant)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "host"
PACKAGE = ROOT / "tinyhost"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level, in functions and classes, in
    try/if blocks, but not under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                walk(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return found


def imported_modules(name: str) -> set[str]:
    """The tinyhost modules that module `name` imports."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod
                       for a in node.names]
        for t in targets:
            # `import tinyhost.a.b` as written; a name that is no module counts as its package.
            while t and t not in MODULES and "." in t:
                t = t.rpartition(".")[0]
            if t in MODULES and t != name:
                out.add(t)
    return out


GRAPH = {name: imported_modules(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a cycle path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(_cycle_path(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One cycle through the component, as [a, b, ..., a] (for the failure message): a shortest
    way back to its first module."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{sorted(component)} is no cycle")


def test_the_module_list_is_the_package():
    assert "tinyhost.compiler.pipeline" in MODULES and "tinyhost.link.transport" in MODULES
    assert "tinyhost.compiler.autodiff" in GRAPH["tinyhost.compiler.pipeline"]


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles among tinyhost modules:\n" + "\n".join(
        " -> ".join(c) for c in found)


def test_the_compiler_does_not_depend_on_the_reference_executor():
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for w in GRAPH[todo.pop()]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    compiler = [m for m in MODULES
                if m == "tinyhost.compiler" or m.startswith("tinyhost.compiler.")]
    assert len(compiler) > 10
    bad = {m: sorted(w for w in reach(m) if w == "tinyhost.refexec"
                     or w.startswith("tinyhost.refexec."))
           for m in compiler}
    bad = {m: ws for m, ws in bad.items() if ws}
    assert not bad, f"compiler modules that import tinyhost.refexec (directly or not): {bad}"


# -- the checker itself ---------------------------------------------------------------------------
def test_a_cycle_is_found_with_its_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"x": {"y"}, "y": {"x"}}) == [["x", "y", "x"]]


@pytest.mark.parametrize("source, expected", [
    ("import tinyhost.plan", {"tinyhost.plan"}),
    ("from tinyhost.link import transport", {"tinyhost.link.transport"}),
    ("from tinyhost.plan import Plan", {"tinyhost.plan"}),
    ("def f():\n    from tinyhost.refexec.executor import RefExecutor",
     {"tinyhost.refexec.executor"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tinyhost.plan", set()),
    ("from .. import ops", {"tinyhost.ops"}),
    ("from .graph import Graph", {"tinyhost.compiler.graph"}),
])
def test_imports_are_read_as_python_runs_them(tmp_path, monkeypatch, source, expected):
    path = PACKAGE / "compiler" / "_probe.py"
    monkeypatch.setitem(MODULES, "tinyhost.compiler._probe", path)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert imported_modules("tinyhost.compiler._probe") == expected
