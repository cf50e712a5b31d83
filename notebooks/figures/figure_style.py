"""What every course figure script shares: a file-only matplotlib backend, one look, and SVG output
that is byte-stable (fixed hash salt, text kept as text, no date), so a re-run changes a committed
SVG only when its drawing changes. ``tests/test_figures.py`` re-draws each figure and compares.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot loads)

plt.rcParams.update({"svg.hashsalt": "joimternet-course", "svg.fonttype": "none", "font.size": 9})


def save_svg(fig, out: Path, **savefig_kwargs) -> None:
    """Write ``fig`` to ``out`` without the date matplotlib would otherwise embed."""
    fig.savefig(out, metadata={"Date": None}, **savefig_kwargs)
