"""The course figures in notebooks/figures/ are drawn by the scripts beside them: each script,
run again, writes exactly the SVG that is committed, so no figure can drift from its code."""

import importlib.util
import sys
from pathlib import Path

import pytest

FIGURES = Path(__file__).resolve().parents[2] / "notebooks" / "figures"
SCRIPTS = sorted(p for p in FIGURES.glob("*.py") if p.name != "figure_style.py")


def load_script(path: Path):
    sys.path.insert(0, str(FIGURES))  # the scripts import figure_style from their own folder
    try:
        spec = importlib.util.spec_from_file_location(f"course_figure_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(FIGURES))
    return module


def test_every_figure_script_has_its_svg():
    assert len(SCRIPTS) >= 9
    assert [p.stem for p in SCRIPTS] == sorted(p.stem for p in FIGURES.glob("*.svg"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_the_committed_svg_is_what_its_script_draws(script, tmp_path):
    out = tmp_path / f"{script.stem}.svg"
    load_script(script).main(out)
    assert out.read_bytes() == script.with_suffix(".svg").read_bytes(), (
        f"{script.with_suffix('.svg').name} is not what {script.name} draws: run "
        f".venv/bin/python notebooks/figures/{script.name} and commit the SVG")
