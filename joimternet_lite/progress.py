"""Progress bars: the package's own are plain-text ``tqdm`` bars (``from tqdm import tqdm``, never
``tqdm.auto``), so they read the same in a terminal, a log file and a saved notebook, where a
widget bar would show as a frozen 0 % bar. The libraries' per-call bars (``datasets`` filter and
save, ``transformers`` / ``huggingface_hub`` weight loading) say nothing our bars do not, so the
command line and the course notebooks (through ``joimternet_lite.course``) turn them off.

No notebook teaches it; every notebook uses it through ``joimternet_lite.course`` (notebook 00).
"""

from __future__ import annotations

import os
import sys


def quiet_library_progress_bars() -> None:
    """Turn off the progress bars of ``datasets``, ``transformers`` and ``huggingface_hub``.

    Through their environment variables, so that a command that never loads them does not pay for
    importing them; a library already imported is told directly, as it read the variables then.
    """
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers follows huggingface_hub
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
