"""The committed notebooks read clean as static copies: no progress-bar widgets (they show as
frozen 0 % bars once widget state is gone), no text bar saved with all its frames, no warning
repeated three or more times (fix the cause, or filter that one warning once in the setup cell),
and no ANSI escape codes (they show as raw `\\x1b[1m` text). Each check is proven on a crafted bad
notebook."""

import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
COMMITTED = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
PROGRESS_TEXT = re.compile(r"\d+%\|| \d+/\d+ \[|FloatProgress|IntProgress")   # a tqdm frame or a progress widget
WARNING_LINE = re.compile(r"warn", re.IGNORECASE)
ANSI = re.compile(r"\x1b\[")
FRAMES = re.compile(r"\r(?=[^\n])")     # a text bar redrawn in place: every frame is kept in the file
MAX_REPEATS = 2


def output_problems(path: Path) -> list[str]:
    """What in ``path``'s saved outputs would mislead or clutter a static copy (empty when clean)."""
    problems, warnings = [], Counter()   # warning lines with their numbers masked: the same warning
    for index, cell in enumerate(nbformat.read(str(path), as_version=4).cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            if WIDGET in data and PROGRESS_TEXT.search(data.get("text/plain", "")):
                problems.append(f"cell {index}: progress-bar widget {data['text/plain'][:60]!r}")
            if any(ANSI.search(text) for text in _texts(output)):
                problems.append(f"cell {index}: ANSI escape codes in a {output.output_type} output")
            if output.output_type == "stream" and FRAMES.search(output.text):
                problems.append(f"cell {index}: every frame of a text progress bar is saved "
                                "(run the notebook with notebooks/run_notebooks.py, which keeps the last)")
            warnings.update(re.sub(r"\d+", "N", line) for line in _warning_lines(output))
    problems += [f"warning printed {n} times: {line[:100]!r}" for line, n in warnings.items() if n > MAX_REPEATS]
    return problems


def _texts(output) -> list[str]:
    texts = [output.get("text", ""), *output.get("traceback", [])]
    return texts + [v for v in output.get("data", {}).values() if isinstance(v, str)]


def _warning_lines(output) -> list[str]:
    """Lines that warn: every stderr line, and stdout lines that say "warn"; tqdm text frames excluded."""
    if output.output_type != "stream":
        return []
    lines = [line.strip() for line in re.split(r"[\r\n]", output.text) if line.strip()]
    lines = [line for line in lines if not PROGRESS_TEXT.search(line)]
    return lines if output.name == "stderr" else [line for line in lines if WARNING_LINE.search(line)]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_committed_outputs_are_clean(path):
    problems = output_problems(path)
    assert not problems, f"{path.relative_to(NOTEBOOKS)}: fix the cause, re-run it: " + "; ".join(problems)


# --- the checks fail on crafted bad notebooks ---------------------------------------------------

def _notebook(tmp_path: Path, *outputs) -> Path:
    cell = nbformat.v4.new_code_cell("pass", outputs=list(outputs))
    path = tmp_path / "crafted.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), str(path))
    return path


def _stream(text: str, name: str = "stderr"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_a_clean_notebook_passes(tmp_path):
    finished_text_bar = "train: 100%|##########| 30/30 [00:04<00:00,  7.10step/s]\n"
    study_browser = nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "x"}, "text/plain": "VBox()"})
    path = _notebook(tmp_path, _stream("one warning\n"), _stream("one warning\n"), _stream(finished_text_bar * 5),
                     study_browser, _stream("R@1 0.25\n", "stdout"))
    assert output_problems(path) == []


def test_a_progress_widget_fails(tmp_path):
    bar = nbformat.v4.new_output("display_data", data={
        WIDGET: {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "Saving the dataset (0/1 shards):   0%|          | 0/400 [00:00<?, ? examples/s]"})
    assert "progress-bar widget" in output_problems(_notebook(tmp_path, bar))[0]


def test_a_warning_three_times_fails(tmp_path):
    line = "linear probe: class 5 has one value in its 240 training rows; scored constant\n"
    path = _notebook(tmp_path, _stream(line), _stream(line), _stream(line.replace("5", "10")))  # numbers aside
    expected = "linear probe: class N has one value in its N training rows; scored constant"
    assert output_problems(path) == [f"warning printed 3 times: {expected!r}"]
    stdout_path = _notebook(tmp_path, _stream("UserWarning: x\n" * 3, "stdout"))
    assert "3 times" in output_problems(stdout_path)[0]


def test_ansi_codes_fail(tmp_path):
    path = _notebook(tmp_path, _stream("[transformers] \x1b[1mBertModel LOAD REPORT\x1b[0m\n"))
    assert "ANSI" in output_problems(path)[0]


def test_a_text_bar_with_all_its_frames_fails(tmp_path):
    frames = "\rtrain:   0%|          | 0/2 [00:00<?, ?step/s]\rtrain: 100%|##########| 2/2 [00:01<00:00, 1.9step/s]\n"
    assert "every frame" in output_problems(_notebook(tmp_path, _stream(frames)))[0]
