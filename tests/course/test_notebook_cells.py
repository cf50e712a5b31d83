"""Course notebooks read in short pieces: no code cell over 40 lines, no markdown cell over 25; and
the chapters speak to a learner, without the project's working vocabulary.

A notebook still to be split would be named in STILL_TO_SPLIT until it passes; none is."""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MAX_LINES = {"code": 40, "markdown": 25}
STILL_TO_SPLIT: tuple[str, ...] = ()
CHECKED = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted(NOTEBOOKS.glob("solutions/*.ipynb"))
           if p.name not in STILL_TO_SPLIT and p.name[:2] not in {n[:2] for n in STILL_TO_SPLIT}]
APPENDIX = "13_appendix_experiments.ipynb"   # the lab material: it may name the experiments as recorded
CHAPTERS = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if p.name != APPENDIX]
# Project words, not course words: a chapter keeps conclusions; the option tables ("levers"), the
# earlier experiment ("prototype") and the project's goals ("targets" of the demo) live in the appendix.
PROJECT_WORDS = re.compile(r"\b(levers?|prototypes?)\b"
                           r"|\b(meets?|met|miss(es|ed)?|held to|below|above) (the |its |their |all )?targets?\b",
                           re.IGNORECASE)


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
    assert len(CHECKED) >= 27   # 00-13 and the solutions of 00-12
    assert (NOTEBOOKS / APPENDIX) in CHECKED


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_no_cell_is_too_long(path):
    problems = long_cells(nbformat.read(str(path), as_version=4))
    assert not problems, f"{path.name}: split these cells: " + "; ".join(problems)


def project_words(nb: nbformat.NotebookNode) -> list[str]:
    """'cell k: word' for each project word in a notebook's text (markdown and printed strings)."""
    return [f"cell {k}: {m.group(0)!r}" for k, cell in enumerate(nb.cells) for m in PROJECT_WORDS.finditer(cell.source)]


def test_the_vocabulary_check_flags_project_words_and_passes_course_words():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("The levers table; the prototype's claim."),
                                         nbformat.v4.new_markdown_cell("It misses the targets at this budget; the target of both."),
                                         nbformat.v4.new_code_cell("targets = torch.arange(4)  # cross-entropy targets")])
    assert project_words(nb) == ["cell 0: 'levers'", "cell 0: 'prototype'", "cell 1: 'misses the targets'"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapters_use_no_project_vocabulary(path):
    found = project_words(nbformat.read(str(path), as_version=4))
    assert not found, f"{path.name}: say it in course words, or move it to {APPENDIX}: " + "; ".join(found)


def test_notebook_08_prints_no_package_source():
    """08 teaches the loop by hand and then calls the package trainer; it never prints package code."""
    source = "\n".join(c.source for c in nbformat.read(str(NOTEBOOKS / "08_training_on_gpu.ipynb"), as_version=4).cells
                       if c.cell_type == "code")
    assert "getsource" not in source and not re.search(r"\.py['\"]\)?\.read_text\(", source)
