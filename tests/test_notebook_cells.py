"""Course notebooks read in short pieces: no code cell over 40 lines, no markdown cell over 25.

Notebooks 09-12 are still to be split; they are named in STILL_TO_SPLIT, and leave that list
when they pass."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_LINES = {"code": 40, "markdown": 25}
STILL_TO_SPLIT = ("09_retrieval_evaluation.ipynb", "10_multilabel_classification.ipynb",
                  "11_attention_and_grounding.ipynb", "12_real_data.ipynb")
CHECKED = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted(NOTEBOOKS.glob("solutions/*.ipynb"))
           if p.name not in STILL_TO_SPLIT and p.name[:2] not in {n[:2] for n in STILL_TO_SPLIT}]


def long_cells(nb: nbformat.NotebookNode) -> list[str]:
    """'cell k: n code lines (limit 40)' for each cell over its type's limit."""
    return [f"cell {k}: {len(cell.source.splitlines())} {cell.cell_type} lines (limit {MAX_LINES[cell.cell_type]})"
            for k, cell in enumerate(nb.cells)
            if cell.cell_type in MAX_LINES and len(cell.source.splitlines()) > MAX_LINES[cell.cell_type]]


def test_the_checker_flags_a_long_cell_and_passes_a_short_one():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1\n" * 40),
                                         nbformat.v4.new_code_cell("x = 1\n" * 41),
                                         nbformat.v4.new_markdown_cell("word\n" * 25),
                                         nbformat.v4.new_markdown_cell("word\n" * 26)])
    assert long_cells(nb) == ["cell 1: 41 code lines (limit 40)", "cell 3: 26 markdown lines (limit 25)"]


def test_the_still_to_split_list_names_real_notebooks():
    assert all((NOTEBOOKS / name).exists() for name in STILL_TO_SPLIT)
    assert len(CHECKED) >= 18   # 00-08 and the solutions of 00-08


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_no_cell_is_too_long(path):
    problems = long_cells(nbformat.read(str(path), as_version=4))
    assert not problems, f"{path.name}: split these cells: " + "; ".join(problems)
