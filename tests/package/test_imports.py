"""No import cycle inside the package: every module is parsed (nothing imported), each import
statement, also those inside functions, becomes an edge of the package's import graph, and the graph
must be acyclic. A cycle means two modules each need the other: one of them is doing two jobs.
Every module also has a layer in docs/ARCHITECTURE.md, and imports only its own layer or lower ones."""

import ast
import re
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[2] / "joimternet_lite"


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


ARCHITECTURE = PACKAGE.parent / "docs" / "ARCHITECTURE.md"


def documented_layers(text: str) -> dict[str, int]:
    """Module (or folder) -> layer number, read from the layer tables of docs/ARCHITECTURE.md.

    A layer starts at a line ``**N. Name**``; each table row's first cell names its modules in
    backticks, as paths relative to the package (``data/synthcxr/`` covers a whole folder).
    """
    layers, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"\*\*(\d+)\. ", line)
        if heading:
            current = int(heading.group(1))
        elif line.startswith("## ") and current is not None:
            break
        elif current is not None and line.startswith("| `"):
            for path in re.findall(r"`([^`]+)`", line.split("|")[1]):
                dotted = path.removesuffix(".py").removesuffix("/").replace("/", ".")
                layers["joimternet_lite" if dotted == "__init__" else f"joimternet_lite.{dotted}"] = current
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of ``module``: its own entry, else the nearest documented folder above it (never the
    package root, whose entry is its ``__init__.py`` alone)."""
    if module in layers:
        return layers[module]
    parts = module.split(".")
    for end in range(len(parts) - 1, 1, -1):
        if ".".join(parts[:end]) in layers:
            return layers[".".join(parts[:end])]
    return None


def upward_imports(graph: nx.DiGraph, layers: dict[str, int]) -> list[str]:
    """Imports from a lower layer (larger number) to a higher one."""
    return [f"{a} (layer {layer_of(a, layers)}) imports {b} (layer {layer_of(b, layers)})"
            for a, b in graph.edges if layer_of(a, layers) > layer_of(b, layers)]


def test_every_module_has_a_documented_layer_and_imports_only_downwards():
    layers = documented_layers(ARCHITECTURE.read_text())
    graph = import_graph(PACKAGE)
    packages = {m for m in graph.nodes if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    undocumented = sorted(m for m in graph.nodes if m not in packages and layer_of(m, layers) is None)
    assert not undocumented, f"modules missing from the layer tables of {ARCHITECTURE.name}: {undocumented}"
    graph.remove_nodes_from(p for p in packages if p not in layers)  # an undocumented package face only re-exports
    upward = upward_imports(graph, layers)
    assert not upward, "imports that run up the layers of docs/ARCHITECTURE.md:\n" + "\n".join(upward)


def test_the_layer_reader_and_checker_on_a_hand_written_map():
    text = ("**1. Top**\n\n| module | job |\n|---|---|\n| `cli.py` | x |\n\n**2. Low**\n\n"
            "| `data/synthcxr/`, `atomic.py` | y |\n\n## Tensor conventions\n| `ignored.py` | z |\n")
    layers = documented_layers(text)
    assert layers == {"joimternet_lite.cli": 1, "joimternet_lite.data.synthcxr": 2, "joimternet_lite.atomic": 2}
    assert layer_of("joimternet_lite.data.synthcxr.writer", layers) == 2
    graph = nx.DiGraph([("joimternet_lite.cli", "joimternet_lite.atomic"),
                        ("joimternet_lite.data.synthcxr.writer", "joimternet_lite.cli")])
    assert upward_imports(graph, layers) == [
        "joimternet_lite.data.synthcxr.writer (layer 2) imports joimternet_lite.cli (layer 1)"]
