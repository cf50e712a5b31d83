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


def check(name: str, yours, expected, atol: float = 1e-5, mistakes: dict | None = None) -> bool:
    """Compare an exercise answer with the expected value; prints "correct" or the difference.

    ``mistakes`` maps a description of a common mistake to the value that mistake gives; when the
    answer matches one, the description is printed with the difference, so the learner reads what
    went wrong, not only by how much. An empty expected value is never correct: a check over
    nothing would pass any answer."""
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
    if ok:
        print(f"{name}: correct")
        return True
    why = next((what for what, value in (mistakes or {}).items()
                if _as_array(value).shape == a.shape and np.max(np.abs(a - _as_array(value)), initial=0.0) <= atol),
               None)
    print(f"{name}: max difference {diff:.3g}" + (f"; this looks like {why}" if why else ""))
    return False


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


# The local score of the course model: no softmax over words, cosine scores times 10, gamma1 = 1 (the
# demo_grounding preset holds the same three settings for the CPU model). docs/DECISIONS.md says why.
GROUNDING_SCORE = {"word_softmax": False, "cosine_scale": 10, "gamma1": 1}


def course_model_settings(device_type: str, smoke: bool) -> dict:
    """Size and recipe of the course model that notebooks 09, 10 and 11 share, for a device type
    ("cuda", "mps", "cpu").

    Every device trains the grounding recipe that ``make demo`` trains: the paper's model without the
    local score's softmax over words, with cosine word-region scores (``GROUNDING_SCORE``), whose word
    maps follow the words (notebook 11). Any device but CUDA trains ``demo_grounding`` itself (its
    towers, its ``train.steps``) on 2,000 studies drawn at 128 px, in fp32 (minutes on 2 CPU cores).
    A CUDA GPU trains the paper-sized ``synth_gpu`` towers with the same local score on 4,000
    SynthCXR studies at 256 px, in bf16 where the GPU supports it (precision ``auto``): the GPU buys
    a better model, not only speed. Smoke mode (CI) is tiny everywhere. Returns preset, score (the
    local-score overrides the preset lacks, empty when it holds them), num_studies, synth_size,
    image_size, steps, batch and precision.
    """
    if smoke:
        return {"preset": "demo_grounding", "score": {}, "num_studies": 64, "synth_size": 128, "image_size": 64,
                "steps": 10, "batch": 16, "precision": "fp32"}
    if device_type == "cuda":
        return {"preset": "synth_gpu", "score": dict(GROUNDING_SCORE), "num_studies": 4000, "synth_size": 256,
                "image_size": 256, "steps": 1000, "batch": 128, "precision": "auto"}
    return {"preset": "demo_grounding", "score": {}, "num_studies": 2000, "synth_size": 128, "image_size": 128,
            "steps": load_config("demo_grounding").train.steps, "batch": 32, "precision": "fp32"}


def paper_recipe_settings(settings: dict) -> dict:
    """The course model's sizes with the paper's local score (DAMSM's softmax over words, raw dot
    products): ``demo_cpu`` where the course model is ``demo_grounding``, the preset alone on a GPU.
    Notebook 11 trains both, so that the two differ in the local score only."""
    preset = "demo_cpu" if settings["preset"] == "demo_grounding" else settings["preset"]
    return dict(settings, preset=preset, score={})


def course_run(settings: dict, device_type: str, seed: int = 0):
    """The config, data folder and run folder of the course model for ``course_model_settings``.

    The run folder's name holds every setting that changes the model, so smoke, CPU and GPU runs
    never share a checkpoint. Returns (cfg, synth_root, run_dir). ``make workshop-prep`` trains the
    same run before a session (``notebooks/workshop_prep.py``)."""
    s = settings
    synth_root = data_dir() / f"synthcxr_{s['num_studies']}_{s['synth_size']}"
    local = "_grounding" if s.get("score") else ""    # a preset with the grounding score added
    run_dir = data_dir() / "runs" / (f"course_{s['preset']}{local}_n{s['num_studies']}_s{s['synth_size']}"
                                     f"_px{s['image_size']}_steps{s['steps']}_b{s['batch']}")
    cfg = load_config(s["preset"], [
        f"data.root={synth_root}", f"data.num_studies={s['num_studies']}", f"data.synth_image_size={s['synth_size']}",
        f"data.image_size={s['image_size']}", f"train.steps={s['steps']}", f"train.batch_size={s['batch']}",
        f"train.out_dir={run_dir}", f"train.checkpoint_every={s['steps']}", f"train.seed={seed}",
        f"train.device={device_type}", f"train.precision={s['precision']}",
        *(f"model.score.{k}={str(v).lower()}" for k, v in s.get("score", {}).items()),
    ])
    return cfg, synth_root, run_dir
