"""No import cycle inside the package: every module is parsed (nothing imported), each import
statement, also those inside functions, becomes an edge of the package's import graph, and the graph
must be acyclic. A cycle means two modules each need the other: one of them is doing two jobs."""

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "joimternet_lite"


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path, known: set[str]) -> set[str]:
    """Package modules that ``path`` imports: ``from .x import y`` means ``x.y`` when that is a module, else ``x``."""
    name = module_name(path, package)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]  # what a level-1 dot refers to
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            found.update(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target
                         for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph(package: Path) -> nx.DiGraph:
    files = sorted(package.rglob("*.py"))
    known = {module_name(f, package) for f in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for f in files:
        graph.add_edges_from((module_name(f, package), m) for m in imported_modules(f, package, known))
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert graph.number_of_edges() > 50  # the parser really found the package's imports
    tangles = [sorted(group) for group in nx.strongly_connected_components(graph) if len(group) > 1]
    assert not tangles, "modules that import each other (directly or round a cycle):\n" + "\n".join(
        f"{group}, e.g. {_cycle_text(nx.find_cycle(graph.subgraph(group)))}" for group in tangles)


def _cycle_text(edges: list[tuple[str, str]]) -> str:
    return " -> ".join([a for a, _ in edges] + [edges[0][0]])


def test_relative_and_lazy_imports_are_resolved_and_a_cycle_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text("import os\nfrom .sub import b\n\ndef f():\n    return b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def g():\n    from ..a import f  # lazy, still a cycle\n    return f\n")
    graph = import_graph(package)
    assert set(graph.edges) == {("pkg", "pkg.a"), ("pkg.a", "pkg.sub.b"), ("pkg.sub.b", "pkg.a")}
    assert sorted(map(sorted, nx.simple_cycles(graph))) == [["pkg.a", "pkg.sub.b"]]
