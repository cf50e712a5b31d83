"""Every command ends an expected failure with one ``error: <file or key>: <what> <fix>`` line and
exit code 1; a traceback only with ``--debug``, or for a bug (exit code 3, with a request to report it).
The README's troubleshooting table quotes messages the package really raises."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_output import one_error_line

from joimternet_lite import errors
from joimternet_lite.checkpoint import CheckpointError
from joimternet_lite.cli import main
from joimternet_lite.config import ConfigError
from joimternet_lite.data.cache import CacheError
from joimternet_lite.data.dicom import DicomError
from joimternet_lite.data.download import DownloadError, UnsafeArchiveError
from joimternet_lite.data.images import ImageReadError
from joimternet_lite.data.mimic import MimicError
from joimternet_lite.data.openi import OpenIError
from joimternet_lite.data.schema import ManifestError
from joimternet_lite.data.skips import TooManySkipsError
from joimternet_lite.training.train import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[2]


def test_train_with_a_misspelt_override_names_the_key(capsys):
    assert main(["train", "--config", "demo_cpu", "train.stepz=3"]) == errors.EXIT_USER_ERROR
    line = one_error_line(capsys.readouterr().err)
    assert "train.stepz=3" in line and "accepted keys are" in line


def test_evaluate_without_a_checkpoint_names_the_folder_and_says_train_first(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evaluate", "--config", "demo_cpu", f"train.out_dir={run}"]) == errors.EXIT_USER_ERROR
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {run}: ") and "train first" in line.lower()


def test_generate_into_a_path_under_a_file_names_the_path(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "synth"
    assert main(["generate", "--out", str(out), "--num-studies", "2"]) == errors.EXIT_USER_ERROR
    line = one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "a_file") in line


@pytest.mark.parametrize(("flag", "value", "says"), [("--image-size", "5", "5 is outside 128..1024 px"),
                                                    ("--num-studies", "0", "0 is not a positive number"),
                                                    ("--num-studies", "x", "'x' is not a whole number")])
def test_generate_refuses_a_bad_argument_as_a_usage_error(tmp_path, capsys, flag, value, says):
    with pytest.raises(SystemExit) as stop:
        main(["generate", "--out", str(tmp_path / "s"), flag, value])
    assert stop.value.code == errors.EXIT_USAGE
    assert f"argument {flag}: {says}" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_prepare_with_a_missing_source_names_the_folder(tmp_path, capsys):
    source = tmp_path / "nowhere"
    assert main(["prepare", "openi", "--source", str(source), "--out", str(tmp_path / "o")]) == errors.EXIT_USER_ERROR
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {source}: ")


def test_debug_adds_the_traceback_before_the_same_line(tmp_path, capsys):
    assert main(["train", "--config", "demo_cpu", "train.stepz=3", "--debug"]) == errors.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ConfigError" in err
    assert err.strip().splitlines()[-1].startswith("error: override 'train.stepz=3'")


def test_an_unexpected_exception_prints_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    def broken():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("joimternet_lite.commands.doctor.print_environment", broken)
    assert main(["env"]) == errors.EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: unexpected ZeroDivisionError: division by zero") and \
        "python -m joimternet_lite env" in last


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("joimternet_lite.commands.doctor.print_environment", interrupted)
    assert main(["env"]) == errors.EXIT_INTERRUPTED == 130
    assert one_error_line(capsys.readouterr().err) == "error: interrupted"


def test_a_multi_line_message_becomes_one_line():
    err = ConfigError("config.yaml: bad value\n  in line 3;\n\tfix it")
    assert errors.one_line(err) == "config.yaml: bad value in line 3; fix it"


@pytest.mark.parametrize("error_type", [
    ConfigError, CheckpointError, ImageReadError, DicomError, ManifestError, CacheError, TooManySkipsError,
    DownloadError, UnsafeArchiveError, OpenIError, MimicError, NonFiniteLossError])
def test_every_package_error_type_takes_the_expected_failure_path(error_type, capsys):
    def fail():
        raise error_type("some/file.png: what went wrong; what to do")

    assert errors.run_command(fail) == errors.EXIT_USER_ERROR
    assert one_error_line(capsys.readouterr().err) == "error: some/file.png: what went wrong; what to do"


def test_help_and_readme_document_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text().split("## Troubleshooting", 1)[1]
    for code in (errors.EXIT_OK, errors.EXIT_USER_ERROR, errors.EXIT_USAGE, errors.EXIT_BUG, errors.EXIT_INTERRUPTED):
        assert f"\n  {code} " in out
        assert f"| {code} |" in readme
    assert "--debug" in out and "--debug" in readme


def test_the_process_exit_code_and_stderr_of_a_real_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "joimternet_lite", "train", "--config", str(tmp_path / "none.yaml")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == errors.EXIT_USER_ERROR
    assert str(tmp_path / "none.yaml") in one_error_line(done.stderr)


def _troubleshooting_snippets() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)`", section, flags=re.MULTILINE)]


def _quote_pattern(snippet: str) -> re.Pattern:
    """A README quote as a regex over the source: any word may stand for an f-string field
    (``a PNG image`` quotes ``a {fmt} image``), and ``[...]`` for anything."""
    field = r"\{[^{}]*\}"
    words = [rf"(?:{field}|.+?)" if w == "[...]" else rf"(?:{re.escape(w)}|{field})" for w in snippet.split()]
    return re.compile(r"\s+".join(words))


def test_readme_troubleshooting_quotes_messages_the_package_raises():
    snippets = _troubleshooting_snippets()
    assert len(snippets) >= 15
    source = "\n".join(p.read_text() for p in (ROOT / "joimternet_lite").rglob("*.py"))
    source = re.sub(r'"\s*\n\s*f?"', "", source)  # join implicitly concatenated string literals
    missing = [s for s in snippets if not _quote_pattern(s.split(" (")[0].replace("expected int, got",
                                                                                   "expected {tp.__name__}, got"))
               .search(source)]
    assert not missing, f"README troubleshooting quotes messages the package never raises: {missing}"


def test_a_quote_pattern_matches_fields_and_ellipses_but_not_other_words():
    assert _quote_pattern("a PNG image, not a DICOM file").search('f"{path}: a {fmt} image, not a DICOM file"')
    assert _quote_pattern("column(s) [...] missing").search('f"{path}: column(s) {missing} missing (it has"')
    assert not _quote_pattern("a PNG image, not a DICOM file").search('f"a {fmt} image, not a JPEG file"')
