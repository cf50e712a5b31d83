"""Helpers for the course notebooks: smoke mode, self-checking exercises, and loading what a
notebook defines so tests can compare it with the package. The package is the final copy of
every piece; a notebook builds it step by step, and tests check the two agree on tiny inputs.

Importing this module turns off the progress bars of ``datasets`` and ``transformers``
(``joimternet_lite.progress``): in a saved notebook they would show as frozen 0 % widgets.

Taught in notebook 00.
"""

from __future__ import annotations

import ast
import os
import types
from pathlib import Path

import numpy as np
import torch

from .config import load_config
from .progress import quiet_library_progress_bars

quiet_library_progress_bars()

def smoke_mode() -> bool:
    """True when ``JOIMTERNET_SMOKE=1``: notebooks shrink their parameters, never their code path."""
    return os.environ.get("JOIMTERNET_SMOKE", "0") not in ("", "0", "false", "False")


def data_dir() -> Path:
    """The course data folder: ``$JOIMTERNET_DATA``, default ``data/`` at the repository root."""
    default = Path(__file__).resolve().parents[1] / "data"
    return Path(os.environ.get("JOIMTERNET_DATA", default))


def check(name: str, yours, expected, atol: float = 1e-5) -> bool:
    """Compare an exercise answer with the expected value; prints "correct" or the difference.

    An empty expected value is never correct: a check over nothing would pass any answer."""
    a = _as_array(yours)
    b = _as_array(expected)
    if a.shape != b.shape:
        print(f"{name}: shape {a.shape}, expected {b.shape}")
        return False
    if not b.size:
        print(f"{name}: nothing to compare (the expected value is empty); the check needs inputs")
        return False
    diff = float(np.max(np.abs(a - b)))
    ok = diff <= atol
    print(f"{name}: {'correct' if ok else f'max difference {diff:.3g}'}")
    return ok


def _as_array(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def import_definitions(notebook: str | Path, names: list[str] | None = None) -> types.ModuleType:
    """Execute only the imports, functions and classes a notebook defines; return them as a module.

    Cells that train, plot or load data are skipped, so this runs in a second. Within a cell,
    only top-level ``import``, ``def`` and ``class`` statements (and constants in ALL_CAPS) are kept.
    """
    import nbformat  # the notebook extra; `env` and the other commands import this module without it

    nb = nbformat.read(str(notebook), as_version=4)
    module = types.ModuleType(Path(notebook).stem)
    kept = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        kept.extend(node for node in tree.body if _is_definition(node))
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(notebook), "exec"), module.__dict__)
    missing = [n for n in names or [] if n not in module.__dict__]
    if missing:
        raise AttributeError(f"{notebook} does not define {missing}")
    return module


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
        return True
    return False


def course_model_settings(device_type: str, smoke: bool) -> dict:
    """Size of the course model that notebooks 09, 10 and 11 share, for a device type ("cuda", "mps", "cpu").

    On a CUDA GPU a full run trains the paper-sized ``synth_gpu`` towers on 4,000 SynthCXR studies at
    256 px, in bf16 where the GPU supports it (precision ``auto``): the GPU buys a better model, not
    only speed. Any other device trains what ``make demo`` trains: the ``demo_cpu`` recipe (its towers,
    its ``train.steps``) on 2,000 studies drawn at 128 px, in fp32 (minutes on 2 CPU cores). Smoke
    mode (CI) is tiny everywhere. Returns preset, num_studies, synth_size,
    image_size, steps, batch and precision.
    """
    if smoke:
        return {"preset": "demo_cpu", "num_studies": 64, "synth_size": 128, "image_size": 64, "steps": 10,
                "batch": 16, "precision": "fp32"}
    if device_type == "cuda":
        return {"preset": "synth_gpu", "num_studies": 4000, "synth_size": 256, "image_size": 256, "steps": 1000,
                "batch": 128, "precision": "auto"}
    return {"preset": "demo_cpu", "num_studies": 2000, "synth_size": 128, "image_size": 128,
            "steps": load_config("demo_cpu").train.steps, "batch": 32, "precision": "fp32"}
