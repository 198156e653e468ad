"""The package-level import graph of ``mldeploy/`` (function-local imports included) stays layered.

Nodes are the top-level subpackages and modules of ``mldeploy`` (aws, artifacts, ci, cli, config, cost, image,
local, release, workflows, console, ui, workspace…); an edge ``a → b`` means some file under ``a`` imports
something under ``b``, anywhere in the file (module level, inside functions, under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mldeploy"


def _module_name(path: Path, root: Path) -> tuple[list[str], bool]:
    """``mldeploy/aws/clients.py`` → (["mldeploy", "aws", "clients"], False); packages end in ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return parts[:-1], True
    return parts, False


def _imported(path: Path, root: Path = ROOT) -> Iterator[tuple[str, int]]:
    """Every absolute module name ``path`` imports (relative imports resolved), with its line."""
    parts, is_package = _module_name(path, root)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts if is_package else parts[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # ``from mldeploy import console`` names a submodule
                yield f"{module}.{alias.name}", node.lineno


def _node(module: str, package: Path) -> str | None:
    """The top-level part of ``mldeploy`` a module belongs to (None for ``mldeploy`` itself or outsiders)."""
    parts = module.split(".")
    if parts[0] != "mldeploy" or len(parts) < 2:
        return None
    top = parts[1]
    return top if (package / top).is_dir() or (package / f"{top}.py").is_file() else None


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, list[str]]]:
    """``{source: {target: ["file:line", …]}}`` between the top-level parts of ``package``."""
    root = package.parent
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package.rglob("*.py")):
        parts, _ = _module_name(path, root)
        source = _node(".".join(parts), package)
        if source is None:
            continue
        edges = graph.setdefault(source, {})
        for module, line in _imported(path, root):
            target = _node(module, package)
            where = f"{path.relative_to(root)}:{line}"
            if target is not None and target != source and where not in edges.get(target, []):
                edges.setdefault(target, []).append(where)
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle as ``[a, b, …, a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _describe(graph: dict[str, dict[str, list[str]]], cycle: list[str]) -> str:
    return "\n".join(f"  {a} → {b}: {', '.join(graph[a][b][:3])}" for a, b in zip(cycle, cycle[1:], strict=False))


def test_the_package_import_graph_is_acyclic():
    graph = import_graph()
    assert {"aws", "cli", "image", "local", "cost", "ci"} <= set(graph), sorted(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle " + " → ".join(cycle) + ":\n" + _describe(graph, cycle)


def test_only_cli_imports_cli():
    graph = import_graph()
    offenders = {src: edges["cli"] for src, edges in graph.items() if "cli" in edges and src != "__main__"}
    assert not offenders, f"only mldeploy/cli (and mldeploy/__main__.py) may import mldeploy.cli: {offenders}"


def test_runtime_imports_nothing_from_mldeploy():
    hits = [f"{path.relative_to(ROOT)}:{line} {module}"
            for path in sorted((ROOT / "runtime").rglob("*.py"))
            for module, line in _imported(path) if module == "mldeploy" or module.startswith("mldeploy.")]
    assert not hits, "runtime/ is installed into the image without mldeploy: " + ", ".join(hits)


def test_the_graph_sees_function_local_and_relative_imports(tmp_path: Path):
    pkg = tmp_path / "mldeploy"
    for sub in ("a", "b"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("def f():\n    from mldeploy.b import y\n")
    (pkg / "b" / "y.py").write_text("from ..a import x\n")
    graph = import_graph(pkg)
    assert set(graph["a"]) == {"b"} and set(graph["b"]) == {"a"}
    assert find_cycle(graph) in (["a", "b", "a"], ["b", "a", "b"])
