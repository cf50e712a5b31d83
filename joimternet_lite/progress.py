"""Progress bars: the package's own are plain-text ``tqdm`` bars (``from tqdm import tqdm``, never
``tqdm.auto``), so they read the same in a terminal, a log file and a saved notebook, where a
widget bar would show as a frozen 0 % bar. The libraries' per-call bars (``datasets`` filter and
save, ``transformers`` / ``huggingface_hub`` weight loading) say nothing our bars do not, so the
command line and the course notebooks (through ``joimternet_lite.course``) turn them off.

No notebook teaches it; every notebook uses it through ``joimternet_lite.course`` (notebook 00).
"""

from __future__ import annotations


def quiet_library_progress_bars() -> None:
    """Turn off the progress bars of ``datasets``, ``transformers`` and ``huggingface_hub``."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()  # also turns off huggingface_hub's bars
