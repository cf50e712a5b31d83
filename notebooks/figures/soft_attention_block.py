"""Figure for notebook 03: the authors' soft-attention block. 16 one-by-one convolutions score
every position, each score map is a softmax over the H x W positions, their sum A scales the
features, and a residual connection keeps the block near the identity: Y = X + s (X * A).

Run: .venv/bin/python notebooks/figures/soft_attention_block.py
Writes soft_attention_block.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import arrow, box, finish_diagram, plt

OUT = Path(__file__).with_suffix(".svg")
FEATURE, HEAD, MAP = "#cfe2ff", "#fff1c2", "#ffd6d6"


def heat(ax, x, y, side, seed):
    """A small 6 x 6 map standing for one softmax over the positions."""
    values = np.random.default_rng(seed).random((6, 6)) ** 3
    ax.imshow(values, cmap="inferno", extent=(x, x + side, y, y + side), zorder=2)


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 3.6))
    box(ax, 0.0, 1.2, 1.5, 1.2, "X\n(B, C, H, W)\nstage 4 or 5", FEATURE, fontsize=8)
    box(ax, 2.1, 1.2, 1.9, 1.2, "16 heads:\n1 x 1 conv C -> 16,\nLeakyReLU", HEAD, fontsize=8)
    for k, y in enumerate((2.55, 1.5, 0.45)):
        heat(ax, 4.6, y, 0.8, k)
    ax.text(5.0, 0.3, "softmax over the\nH x W positions,\nper head", ha="center", va="top", fontsize=8)
    ax.text(5.0, 2.33, ":", ha="center", fontsize=12)
    arrow(ax, (4.0, 1.8), (4.55, 1.8))
    arrow(ax, (5.45, 1.8), (6.0, 1.8), "sum")
    heat(ax, 6.05, 1.4, 0.8, 7)
    ax.text(6.45, 1.25, "A (B, 1, H, W)\nsums to 16", ha="center", va="top", fontsize=8)
    box(ax, 7.4, 1.2, 1.6, 1.2, "X * A\nevery channel\nscaled by A", MAP, fontsize=8)
    box(ax, 9.6, 1.2, 1.8, 1.2, "Y = X + s (X * A)\ns learnt,\nstarts in (0, 1)", FEATURE, fontsize=8)
    arrow(ax, (1.5, 1.8), (2.1, 1.8))
    arrow(ax, (6.9, 1.8), (7.4, 1.8))
    arrow(ax, (9.0, 1.8), (9.6, 1.8))
    # the residual path, over the top
    ax.plot([0.75, 0.75], [2.4, 3.4], color="0.4", lw=1.1)
    ax.plot([0.75, 10.5], [3.4, 3.4], color="0.4", lw=1.1)
    ax.annotate("", xy=(10.5, 2.42), xytext=(10.5, 3.4), arrowprops={"arrowstyle": "-|>", "color": "0.4", "lw": 1.1})
    ax.text(5.6, 3.48, "residual: X itself (the block stays near the identity while s is small)", ha="center",
            fontsize=8, color="0.3")
    finish_diagram(fig, ax, (-0.1, 11.5), (-0.4, 3.8), out)


if __name__ == "__main__":
    main()
