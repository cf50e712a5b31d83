"""The course in a real browser: JupyterLab from this environment, driven by headless Chromium.

nbmake runs the notebooks' code, but not the page a learner sees: widget views, the widget
extension, slider callbacks. This module starts JupyterLab on 127.0.0.1, opens notebooks 01, 06
and 11 (temporary copies) in Debian's ``chromium`` through Playwright, runs every cell in smoke
mode, fails on any error output, then moves every slider with the keyboard and fails when the
picture or text under it does not change. A fourth notebook, written here with one dead slider
and one failing cell, must be caught by the same checks, so the checks themselves cannot rot.

Screenshots go to ``$JOIMTERNET_SCREENSHOTS`` (default: a pytest temporary folder); the folder is
printed. Without Chromium or Playwright the tests skip, naming the install command; CI sets
``JOIMTERNET_REQUIRE_BROWSER=1`` so that the skip becomes a failure there.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = ("install with: sudo apt-get install chromium && "
                ".venv/bin/pip install -c constraints.txt -e '.[dev,notebooks]'")
COURSE = ["01_chest_xrays_and_reports", "06_region_word_attention", "11_attention_and_grounding"]
SELF_CHECK = "zz_broken"       # the notebook the checks must reject
RUN_TIMEOUT_S = 600            # one notebook's smoke run, on a slow shared machine
SLIDER_TIMEOUT_S = 60          # a slider's callback, from the key press to an idle kernel
DEAD_SLIDER_TEXT = "the same every time"
SLIDER_ERROR = "the slider's callback failed"
# Parameter lines switched in the copies, when present: notebook 11 draws its slider only on request.
PARAMETER_EDITS = {"11_attention_and_grounding": ("SLIDER = False", "SLIDER = True")}


def _skip_or_fail(reason: str) -> None:
    """Skip outside CI; fail where the browser tests are required (``JOIMTERNET_REQUIRE_BROWSER=1``)."""
    if os.environ.get("JOIMTERNET_REQUIRE_BROWSER", "0") == "1":
        pytest.fail(f"{reason} and JOIMTERNET_REQUIRE_BROWSER=1; {INSTALL_HINT}")
    pytest.skip(f"{reason}; {INSTALL_HINT}")


# --- JupyterLab ------------------------------------------------------------------------------------

# User settings the server reads from its own folder, so the runner's ~/.jupyter cannot change the
# page: no news / update prompt over the outputs, and every cell in the DOM (no windowing).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _broken_notebook() -> dict:
    """A notebook with a slider whose output never changes, one whose callback raises once moved,
    a cell that raises and one never reached."""
    code = [f"import ipywidgets as widgets\n"
            f"widgets.interact(lambda k: print({DEAD_SLIDER_TEXT!r}), k=widgets.IntSlider(value=0, min=0, max=5))",
            f"def fails_when_moved(k):\n"
            f"    if k:\n"
            f"        raise ValueError({SLIDER_ERROR!r})\n"
            f"widgets.interact(fails_when_moved, k=widgets.IntSlider(value=0, min=0, max=5))",
            "1 / 0",
            "print('never reached')"]
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
             for src in code]
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _copy_notebook(name: str, folder: Path) -> None:
    """Copy a course notebook, with its PARAMETER_EDITS applied to the source of its cells."""
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    if name in PARAMETER_EDITS:
        old, new = PARAMETER_EDITS[name]
        for cell in nb["cells"]:
            cell["source"] = "".join(cell["source"]).replace(old, new)
    (folder / f"{name}.ipynb").write_text(json.dumps(nb))


def _lay_out_notebooks(root: Path) -> dict[str, Path]:
    """Copy each course notebook into a folder of its own (its kernel's working directory, where
    its data goes), write the self-check notebook; returns name -> path relative to ``root``."""
    paths = {}
    for name in COURSE:
        (root / name).mkdir()
        _copy_notebook(name, root / name)
        paths[name] = Path(name) / f"{name}.ipynb"
    (root / SELF_CHECK).mkdir()
    (root / SELF_CHECK / f"{SELF_CHECK}.ipynb").write_text(json.dumps(_broken_notebook()))
    paths[SELF_CHECK] = Path(SELF_CHECK) / f"{SELF_CHECK}.ipynb"
    return paths


def _server_env(home: Path) -> dict[str, str]:
    """The server's environment, which every kernel inherits."""
    env = dict(os.environ)
    env.update({
        "JOIMTERNET_SMOKE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        # relative: each kernel runs in its notebook's folder, so parallel notebooks never share data
        "JOIMTERNET_DATA": "data",
        # four kernels share the machine; one torch thread each, as in conftest.py
        "OMP_NUM_THREADS": "1",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    })
    for rel, value in LAB_SETTINGS.items():
        path = home / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return env


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _wait_until_up(lab: Lab, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout_s:.0f} s:\n{lab.log_tail()}")


def _stop(lab: Lab) -> None:
    """Shut down the kernels and the server (the server's own shutdown), then make sure."""
    request = urllib.request.Request(f"{lab.url}/api/shutdown?token={lab.token}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=10).close()
        lab.process.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            lab.process.kill()


@pytest.fixture(scope="module")
def playwright_api():
    """Playwright's sync API, once Chromium, Playwright and JupyterLab are known to be here."""
    if not CHROMIUM.exists():
        _skip_or_fail(f"no Chromium at {CHROMIUM}")
    try:
        import jupyterlab  # noqa: F401
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        _skip_or_fail(f"{err.name} is not installed")
    return sync_playwright


@pytest.fixture(scope="module")
def lab(playwright_api, tmp_path_factory) -> Iterator[tuple[Lab, dict[str, Path]]]:
    """JupyterLab from this environment on a free local port, with a token, serving the copies."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    paths = _lay_out_notebooks(root / "notebooks")
    port, token = _free_port(), secrets.token_hex(16)
    log = root / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root / 'notebooks'}",
           "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")      # CI containers run as root
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_server_env(root))
    server = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        _wait_until_up(server)
        yield server, paths
    finally:
        _stop(server)


# --- the page --------------------------------------------------------------------------------------

# Open a notebook, clear its saved outputs and start "Run All" without waiting; the outcome lands
# in window.__runs[path] ("ok" or what went wrong), the panel in window.__panels[path].
OPEN_AND_RUN = """async (path) => {
  const app = window.jupyterapp;
  await app.restored;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await panel.context.ready;
  await panel.sessionContext.ready;
  for (let i = 0; app.shell.currentWidget !== panel; i++) {
    if (i > 200) throw new Error('the notebook did not become the current tab: ' + path);
    await new Promise(r => setTimeout(r, 50));
  }
  window.__runs = window.__runs || {};
  window.__panels = window.__panels || {};
  window.__panels[path] = panel;
  await app.commands.execute('notebook:clear-all-cell-outputs');
  window.__runs[path] = 'running';
  app.commands.execute('notebook:run-all-cells').then(
    ok => { window.__runs[path] = ok ? 'ok' : 'Run All reported a failed cell'; },
    err => { window.__runs[path] = 'Run All raised: ' + err; });
  return panel.id;
}"""

# Every sign of failure in a notebook: error outputs in the saved model, unexecuted code cells,
# tracebacks printed to stderr anywhere on the page (widget Output areas included), broken widgets.
FIND_ERRORS = """(path) => {
  const panel = window.__panels[path];
  const found = [];
  const cells = panel.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code' || !cell.sharedModel.getSource().trim()) continue;
    if (cell.executionCount === null) found.push(`cell ${i} was not executed`);
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'error') found.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    }
  }
  const stderr = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]';
  for (const node of panel.node.querySelectorAll(stderr)) {
    const text = node.textContent.trim();
    if (text.includes('Traceback')) found.push('traceback on the page: ' + text.split('\\n').pop());
  }
  for (const node of panel.node.querySelectorAll('.jp-OutputArea-output')) {
    const text = node.textContent;
    if (/Error displaying widget|Error rendering output|Loading widget\\.\\.\\./.test(text)) {
      found.push('widget not shown: ' + text.slice(0, 200));
    }
  }
  return found;
}"""

# Count one busy -> idle cycle of the kernel from now on: the reply to a slider's change.
ARM_IDLE = """(path) => {
  const kernel = window.__panels[path].sessionContext.session.kernel;
  window.__idle = window.__idle || {};
  window.__idle[path] = false;
  let busy = false;
  const watch = (_, status) => {
    if (status === 'busy') busy = true;
    if (status === 'idle' && busy) { window.__idle[path] = true; kernel.statusChanged.disconnect(watch); }
  };
  kernel.statusChanged.connect(watch);
}"""


@dataclass
class SliderResult:
    index: int
    value_before: str
    value_after: str
    output_changed: bool


@dataclass
class NotebookResult:
    run: str = "not run"
    errors: list[str] = field(default_factory=list)
    sliders: list[SliderResult] = field(default_factory=list)


def _dismiss_toasts(page) -> None:
    """Close notifications (a news or update prompt) so that none covers an output being compared."""
    toasts = page.locator(".Toastify__toast")
    if toasts.count():
        for button in page.locator(".jp-Notification-Toast-Close, .Toastify__close-button").all():
            button.click()
        toasts.first.wait_for(state="detached", timeout=10_000)


def _stable_shot(locator, mask, path: Path, timeout_s: float = 10) -> bytes:
    """A screenshot of ``locator`` (``mask`` painted over) once two in a row agree: images load late."""
    shot = locator.screenshot(mask=mask, animations="disabled")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = locator.screenshot(mask=mask, animations="disabled")
        if again == shot:
            break
        shot = again
    path.write_bytes(shot)
    return shot


def _move_sliders(page, panel_id: str, path: str, name: str, shots: Path) -> list[SliderResult]:
    """Press an arrow key on each slider; compare the slider's output (slider masked) before and after."""
    results = []
    sliders = page.locator(f'[id="{panel_id}"] .jp-OutputArea-output .widget-slider')
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        output = slider.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][1]")
        handle = slider.locator(".noUi-handle").first
        before = handle.get_attribute("aria-valuenow")
        at_max = float(before) >= float(handle.get_attribute("aria-valuemax"))
        _dismiss_toasts(page)
        shot_before = _stable_shot(output, [slider], shots / f"{name}_slider{i}_before.png")
        page.evaluate(ARM_IDLE, path)
        handle.focus()
        page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
        page.wait_for_function("p => window.__idle[p]", arg=path, timeout=SLIDER_TIMEOUT_S * 1000)
        after = handle.get_attribute("aria-valuenow")
        shot_after = _stable_shot(output, [slider], shots / f"{name}_slider{i}_after.png")
        results.append(SliderResult(i, before, after, shot_after != shot_before))
    return results


def _check_notebook(page, panel_id: str, path: str, name: str, shots: Path) -> NotebookResult:
    result = NotebookResult()
    page.wait_for_function("p => window.__runs[p] !== 'running'", arg=path, timeout=RUN_TIMEOUT_S * 1000)
    result.run = page.evaluate("p => window.__runs[p]", path)
    page.evaluate(f"() => window.jupyterapp.shell.activateById({json.dumps(panel_id)})")
    _dismiss_toasts(page)
    result.errors = page.evaluate(FIND_ERRORS, path)
    page.screenshot(path=shots / f"{name}_after_run.png")
    result.sliders = _move_sliders(page, panel_id, path, name, shots)
    # a slider's callback that raises shows its traceback in the widget's output
    result.errors += [e for e in page.evaluate(FIND_ERRORS, path) if e not in result.errors]
    return result


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("JOIMTERNET_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser_results(playwright_api, lab, screenshots) -> dict[str, NotebookResult]:
    """All four notebooks run at once in one JupyterLab page (four kernels), then checked in turn."""
    server, paths = lab
    results = {}
    with playwright_api() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/lab?reset&token={server.token}")
            page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
            panel_ids = {name: page.evaluate(OPEN_AND_RUN, path.as_posix()) for name, path in paths.items()}
            for name, path in paths.items():
                results[name] = _check_notebook(page, panel_ids[name], path.as_posix(), name, screenshots)
        finally:
            browser.close()
    return results


def _report(result: NotebookResult, screenshots: Path) -> str:
    sliders = [f"slider {s.index}: {s.value_before} -> {s.value_after}, output changed: {s.output_changed}"
               for s in result.sliders]
    return "\n".join([f"run: {result.run}", *result.errors, *sliders, f"screenshots in {screenshots}"])


@pytest.mark.parametrize("name", COURSE)
def test_notebook_runs_clean_and_sliders_redraw(name, browser_results, screenshots, capsys):
    result = browser_results[name]
    with capsys.disabled():
        print(f"\n{name}: screenshots {name}_*.png in {screenshots}")
    report = _report(result, screenshots)
    assert result.run == "ok", report
    assert result.errors == [], report
    assert result.sliders, f"no slider found in {name}\n{report}"
    for slider in result.sliders:
        assert slider.value_after != slider.value_before, f"the arrow key did not move the slider\n{report}"
        assert slider.output_changed, f"the output under the slider did not change\n{report}"


def test_checks_catch_an_error_and_a_dead_slider(browser_results, screenshots):
    """The same checks on a notebook that raises and whose slider output never changes."""
    result = browser_results[SELF_CHECK]
    report = _report(result, screenshots)
    assert result.run != "ok", report
    # each way of seeing the error must see it: the saved outputs, the page, the cells left unrun
    assert "cell 2: ZeroDivisionError: division by zero" in result.errors, report
    assert any(e.startswith("traceback on the page") and "ZeroDivisionError" in e for e in result.errors), report
    assert "cell 3 was not executed" in result.errors, report
    assert any(e.startswith("traceback on the page") and SLIDER_ERROR in e for e in result.errors), report
    dead, failing = result.sliders
    assert dead.value_after != dead.value_before and not dead.output_changed, report
    assert failing.value_after != failing.value_before, report
