"""Shipped text cites only what a learner can open.

The README, docs, bench files, notebooks (sources, and outputs such as the demo report), package
docstrings and comments, configs and data scripts must not name documents that live outside the
repository (the maintainers' design brief, conventions list and notes) or tracker numbers, and
every repository path they name must exist. The detectors are tested on hand-written strings and a
fake repository first, so a broken detector fails here rather than passing the scan silently.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a learner reads. Tests are not scanned: they are written for maintainers.
SCANNED = ("README.md", "Makefile", "docs/*.md", "bench/*.md", "bench/*.py", "bench/*.sh",
           "notebooks/*.ipynb", "notebooks/solutions/*.ipynb", "notebooks/*.py",
           "joimternet_lite/**/*.py", "joimternet_lite/**/*.yaml", "data_scripts/*.py", "tests/**/*.py")

# Tracker references. `#<digits>` alone is too common to forbid (a "#1" rank, a comment "#2"),
# and CSS colours such as "#1f77b4" or "#555" appear in plotting code, so a bare `#N` counts only
# with a tracker word or verb before it ("issue #8", "see #8", "fixes #8"), or as a parenthesised
# list of such numbers ("(#8)", "(#4, #8)"). "issue 4" and "issues 4 and 8" count without a "#".
_TRACKER = re.compile(
    r"\b(?:issues?|tickets?|bugs?|PRs?|pull\s+requests?|tracker)\s*#?\d+"
    r"|\b(?:see|fix(?:es|ed)?|close[sd]?|resolve[sd]?|refs?|cf\.?)\s+#\d+"
    r"|\(\s*#\d+(?:\s*,\s*#\d+)*\s*\)"
    r"|\bgh-\d+",
    re.IGNORECASE)

FORBIDDEN = (
    (re.compile(r"DESIGN\.md"), "design brief outside the repository"),
    (re.compile(r"CONVENTIONS\.md"), "conventions list outside the repository"),
    (re.compile(r"authors_code_digest"), "maintainers' note outside the repository"),
    (re.compile(r"synthetic_grounding_prototype"), "maintainers' note outside the repository"),
    (re.compile(r"(?<![\w./-])notes/"), "maintainers' notes folder outside the repository"),
    # No shipped document has numbered sections, so "§4" can only point at one a learner lacks.
    (re.compile(r"§\s*\d"), "section number of a document outside the repository"),
    (_TRACKER, "tracker number"),
)

# A repository path: starts at a top-level folder and ends in a file extension. Globs and
# templates ("notebooks/*.ipynb", "tests/test_<file>.py", "{name}.ipynb") do not match because
# `*`, `<` and `{` are outside the character class; "NN_...ipynb" placeholders are skipped.
_TOP = r"(?:bench|data_scripts|docs|joimternet_lite|notebooks|tests|\.ci)"
_EXT = r"(?:md|py|ipynb|ya?ml|toml|sh|txt|json|png|csv)"
_REPO_PATH = re.compile(rf"(?<![\w./~-]){_TOP}/[\w./-]*?\.{_EXT}(?![\w/-])")
# A backticked relative path ("`solutions/05_solutions.ipynb`", "`data/openi.py`") may be written
# from the citing file's folder or from the package; run-time outputs under runs/ or data/
# ("`runs/demo/report.md`") are not files of the repository and are skipped.
_BACKTICKED = re.compile(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|ipynb|md|ya?ml))`")
_RUNTIME = ("runs/", "data/")
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def forbidden_hits(text: str) -> list[str]:
    """Each forbidden citation in `text`, as 'why: the matched text'."""
    return [f"{why}: {m.group(0)!r}" for pattern, why in FORBIDDEN for m in pattern.finditer(text)]


def missing_paths(text: str, root: Path, base: Path, links: bool) -> list[str]:
    """Repository paths named in `text` that do not exist under `root`. Paths from a top-level
    folder resolve from `root`; other backticked paths from `root`, `base` (the folder of the
    citing file) or the package; markdown link targets (when `links`) from `base`."""
    missing = []
    for m in _REPO_PATH.finditer(text):
        path = m.group(0).rstrip(".")
        if "..." not in path and not (root / path).exists():
            missing.append(f"missing path: {path}")
    for m in _BACKTICKED.finditer(text):
        path = m.group(1)
        if _REPO_PATH.fullmatch(path) or "..." in path:
            continue  # checked above
        if not any((b / path).exists() for b in (root, base, root / "joimternet_lite")):
            if not (path.startswith(_RUNTIME) and not path.endswith(".py")):
                missing.append(f"missing path: {path}")
    for m in _LINK.finditer(text) if links else ():
        target = m.group(1).split("#", 1)[0]
        if not target or re.match(r"[a-zA-Z][\w+.-]*:", target):  # anchors, http:, mailto:
            continue
        if not (base / target).exists():
            missing.append(f"missing link target: {m.group(1)}")
    return missing


def _output_text(output: dict) -> str:
    data = output.get("data", {})
    parts = [output.get("text", "")] + [data.get(k, "") for k in ("text/plain", "text/markdown", "text/html")]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def text_units(path: Path) -> list[tuple[str, str, bool, bool]]:
    """(where, text, check paths, markdown links) for each readable unit of `path`.

    A notebook gives one unit per cell source and one per cell's outputs; outputs are scanned for
    forbidden citations only, since they print run-time paths (data/, runs/) that never ship."""
    if path.suffix != ".ipynb":
        return [("", path.read_text(encoding="utf-8"), True, path.suffix == ".md")]
    units = []
    for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        source = "".join(cell["source"])
        units.append((f"cell {i}", source, True, cell["cell_type"] == "markdown"))
        outputs = "".join(_output_text(o) for o in cell.get("outputs", []))
        if outputs:
            units.append((f"cell {i} output", outputs, False, False))
    return units


def scan(root: Path) -> list[str]:
    """Every bad reference under `root`, as 'file[ where]: problem'."""
    hits = []
    files = sorted({p for pattern in SCANNED for p in root.glob(pattern) if p.is_file()})
    for path in files:
        if path.name == Path(__file__).name:  # this file spells out what it forbids
            continue
        rel = path.relative_to(root).as_posix()
        for where, text, paths, links in text_units(path):
            problems = forbidden_hits(text)
            if paths:
                problems += missing_paths(text, root, path.parent, links)
            hits += [f"{rel}{' ' + where if where else ''}: {p}" for p in problems]
    return hits


@pytest.mark.parametrize("text", [
    "the brief (DESIGN.md §1)", "see CONVENTIONS.md", "authors_code_digest.md", "§4",
    "`notes/synthetic_grounding_prototype.md`", "as issue 4 asks", "issues 4 and 8", "Issue #3",
    "fixes #12", "(#8)", "(#4, #8)", "see gh-7", "in notes/README.md",
])
def test_forbidden_citations_are_found(text):
    assert forbidden_hits(text), text


@pytest.mark.parametrize("text", [
    'colours = ["#ff5555", "#1f77b4", "#555"]', "ranked #1 of 30", "x = 1  # 2 regions",
    "the issues of padding", "release notes", "sha256 hexdigest", "an issue with 2 images",
])
def test_ordinary_text_is_not_flagged(text):
    assert not forbidden_hits(text), text


def test_repository_paths_must_exist(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "A.md").write_text("x")
    (tmp_path / "README.md").write_text("x")
    text = ("`docs/A.md`, bench/gone.py, [a](A.md), [b](../README.md), [c](B.md#top), "
            "[web](https://x.org/docs/B.md), `notebooks/*.ipynb`, tests/test_<file>.py, "
            "notebooks/NN_...ipynb, ~/docs/B.md, `figures/A.md`, `sub/A.md`, `runs/demo/report.md`, "
            "`data/gone.py`, `data/ok.py`")
    (tmp_path / "docs" / "figures").mkdir()
    (tmp_path / "docs" / "figures" / "A.md").write_text("x")
    (tmp_path / "joimternet_lite" / "data").mkdir(parents=True)
    (tmp_path / "joimternet_lite" / "data" / "ok.py").write_text("x")
    found = missing_paths(text, tmp_path, tmp_path / "docs", links=True)
    assert found == ["missing path: bench/gone.py", "missing path: sub/A.md", "missing path: data/gone.py",
                     "missing link target: B.md#top"]


def test_scan_reads_notebook_sources_and_outputs(tmp_path):
    (tmp_path / "notebooks").mkdir()
    cells = [{"cell_type": "markdown", "source": ["See `docs/NONE.md`"]},
             {"cell_type": "code", "source": "print(1)",
              "outputs": [{"output_type": "stream", "text": ["as issue 9 says, data/x.py"]}]}]
    (tmp_path / "notebooks" / "00_x.ipynb").write_text(json.dumps({"cells": cells}))
    assert scan(tmp_path) == ["notebooks/00_x.ipynb cell 0: missing path: docs/NONE.md",
                              "notebooks/00_x.ipynb cell 1 output: tracker number: 'issue 9'"]


def test_shipped_text_cites_only_what_ships():
    hits = scan(ROOT)
    assert not hits, f"{len(hits)} bad references:\n" + "\n".join(hits)
