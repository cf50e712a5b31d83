"""What every course figure script shares: a file-only matplotlib backend, one look, and SVG output
that is byte-stable (fixed hash salt, text kept as text, no date), so a re-run changes a committed
SVG only when its drawing changes. ``tests/course/test_figures.py`` re-draws each figure and compares.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot loads)
from matplotlib.patches import FancyBboxPatch  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "joimternet-course", "svg.fonttype": "none", "font.size": 9})


def save_svg(fig, out: Path, **savefig_kwargs) -> None:
    """Write ``fig`` to ``out`` without the date matplotlib would otherwise embed."""
    fig.savefig(out, metadata={"Date": None}, **savefig_kwargs)

# The global image vector "v bar" as plain text: v and a combining macron (U+0304) in one SVG text
# element, which browsers compose into one glyph. Mathtext's $\bar v$ writes the macron as a separate
# <tspan> placed after the v, where it shows as a stray dash.
V_BAR = "v\u0304"


def box(ax, x, y, w, h, text, fc="white", fontsize=9, ec="black"):
    """A rounded box with centred text; (x, y) is its lower-left corner in data units."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=fc, ec=ec, lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, start, end, text="", color="black", fontsize=8):
    """An arrow from ``start`` to ``end`` with an optional label above its middle."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.1})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, text, ha="center", va="bottom",
                fontsize=fontsize, color=color)


def finish_diagram(fig, ax, xlim, ylim, out: Path) -> None:
    """End a box-and-arrow drawing: equal axes over ``xlim`` x ``ylim``, no frame, tight, saved."""
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.axis("off")
    fig.tight_layout()
    save_svg(fig, out)


def grid_panel_frame(ax, cells, grid, title):
    """Outline grid ``cells`` (flat indices into a ``grid`` (rows, cols) image) in red, drop the ticks
    and set the title: the frame of a word-map panel drawn cell by cell."""
    for j in cells:
        r, c = divmod(j, grid[1])
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)

