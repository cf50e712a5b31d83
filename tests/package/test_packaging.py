"""The install files agree: pyproject's dependencies are pinned in environment.yml at the
constraints.txt versions, and every preset loads."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip()
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_environment_yml_pins_every_dependency_at_the_constraints_version():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = _pins(pip_section)
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [_name(r) for r in project["dependencies"] + project["optional-dependencies"]["notebooks"]]
    assert "python=3.11" in env["dependencies"]
    missing = [n for n in wanted if n not in env_pins]
    assert not missing, f"environment.yml lacks pins for {missing}"
    for name in wanted:
        assert env_pins[name] == constraints[name], f"{name}: environment.yml {env_pins[name]} != constraints {constraints[name]}"
    assert any(str(d).startswith("-e .") for d in pip_section)


def test_constraints_pin_the_machine_torch():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    assert constraints["torch"] == "2.14.1" and constraints["torchvision"] == "0.29.1"


def test_constraints_are_plain_pins_that_install_anywhere():
    lines = [x for x in (ROOT / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", x) for x in lines), \
        [x for x in lines if "==" not in x or "@" in x]


def _imports_outside_functions(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
              for n in ast.walk(f) if n is not f}
    found = set()
    for node in ast.walk(tree):
        if id(node) in inside:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_every_module_level_import_of_the_package_is_a_declared_core_dependency():
    """`pip install joimternet-lite` alone must import every module: notebook-only packages
    (nbformat, ipywidgets) are imported inside the functions that use them."""
    import sys
    from importlib.metadata import packages_distributions

    declared = {_name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    owners = packages_distributions()
    undeclared = {}
    for path in sorted((ROOT / "joimternet_lite").rglob("*.py")):
        for top in _imports_outside_functions(path) - set(sys.stdlib_module_names) - {"joimternet_lite", "__future__"}:
            dists = {_name(d) for d in owners.get(top, [top])}
            if not dists & declared:
                undeclared.setdefault(top, []).append(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported at module level but not in [project] dependencies: {undeclared}"
