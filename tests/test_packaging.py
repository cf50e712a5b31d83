"""The install files agree: pyproject's dependencies are pinned in environment.yml at the
constraints.txt versions, and every preset loads."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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
