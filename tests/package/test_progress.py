"""The libraries' progress bars are off wherever the package runs, and turning them off costs a
command that never loads those libraries nothing (each case runs in a fresh interpreter)."""

import subprocess
import sys

import pytest


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("import_first", [False, True])
def test_datasets_and_transformers_bars_are_off_whether_loaded_before_or_after(import_first):
    before = "import datasets, transformers\n" if import_first else ""
    out = run(before + "from joimternet_lite.progress import quiet_library_progress_bars\n"
              "quiet_library_progress_bars()\n"
              "import datasets, huggingface_hub.utils\n"
              "from transformers.utils import logging\n"
              "print(datasets.is_progress_bar_enabled(), logging.is_progress_bar_enabled(),"
              " huggingface_hub.utils.are_progress_bars_disabled())")
    assert out == "False False True"


def test_the_command_line_help_loads_neither_library():
    out = run("import sys\nfrom joimternet_lite.cli import main\n"
              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print('LOADED', 'datasets' in sys.modules, 'transformers' in sys.modules)")
    assert out.splitlines()[-1] == "LOADED False False"
