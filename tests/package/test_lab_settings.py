"""The course's JupyterLab defaults (notebooks/.jupyter/overrides.json, installed by `make lab`)
are valid settings of the installed JupyterLab and turn its news prompt off: the prompt appears
while the setting `fetchNews` is "none" (ask), and the course runs offline."""

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ROOT / "notebooks" / ".jupyter" / "overrides.json"
PLUGIN = "@jupyterlab/apputils-extension:notification"


def installed_schema() -> dict:
    commands = pytest.importorskip("jupyterlab.commands")
    path = Path(commands.get_app_dir()) / "schemas/@jupyterlab/apputils-extension/notification.json"
    if not path.exists():
        pytest.skip(f"JupyterLab's schema is not installed at {path}")
    return json.loads(path.read_text())


def test_overrides_are_valid_settings_that_turn_the_news_prompt_off(tmp_path):
    from jupyterlab_server.settings_utils import _get_overrides, _override

    settings = json.loads(OVERRIDES.read_text())
    schema = installed_schema()
    jsonschema.validate(settings[PLUGIN], schema)
    (tmp_path / "overrides.d").mkdir()
    shutil.copy(OVERRIDES, tmp_path / "overrides.d" / "joimternet-course.json")
    overrides, error = _get_overrides(str(tmp_path))
    assert not error
    defaults = _override(PLUGIN, schema, overrides)["properties"]
    assert defaults["fetchNews"]["default"] == "false"
    assert defaults["checkForUpdates"]["default"] is False


def test_make_lab_installs_the_overrides_then_starts_jupyterlab_on_notebooks():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # --no-print-directory: under `make test` a nested make would add "Entering directory" lines
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "lab"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    assert "cp notebooks/.jupyter/overrides.json .venv/share/jupyter/lab/settings/overrides.d/" in dry_run
    assert dry_run.rstrip().endswith("jupyter lab --notebook-dir=notebooks")
