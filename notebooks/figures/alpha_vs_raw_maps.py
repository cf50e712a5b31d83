"""Figure for notebook 11: how one report's word-region scores become the DAMSM attention map
alpha (words compete for each region first) and the raw map (no competition).

Run: .venv/bin/python notebooks/figures/alpha_vs_raw_maps.py
Writes alpha_vs_raw_maps.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import plt, save_svg

OUT = Path(__file__).with_suffix(".svg")

WORDS = ["left", "small", "effusion"]
GAMMA1 = 4.0
# s_ij = e_i . v_j for 3 words and 6 regions; "left" scores high on the same lung regions as "effusion"
SCORES = np.array([[2.0, 2.2, 0.2, 1.8, 2.4, 0.1],
                   [0.3, 0.2, 0.4, 0.1, 0.3, 0.2],
                   [1.5, 1.2, 0.0, 1.9, 2.0, 0.1]])


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def heat(ax, values, title):
    """A (words, regions) matrix with its values written in the cells."""
    ax.imshow(values, cmap="viridis", aspect="auto", vmin=0)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < 0.6 * values.max() else "black")
    ax.set_yticks(range(len(WORDS)), WORDS)
    ax.set_xticks(range(values.shape[1]), [f"v{j + 1}" for j in range(values.shape[1])])
    ax.set_title(title, fontsize=9)


def main(out: Path = OUT) -> None:
    over_words = softmax(SCORES, axis=0)
    alpha = softmax(GAMMA1 * over_words, axis=1)
    raw = softmax(SCORES, axis=1)
    fig = plt.figure(figsize=(12, 4.2))
    grid = fig.add_gridspec(2, 3, wspace=0.35, hspace=0.7)
    heat(fig.add_subplot(grid[0, 0]), SCORES, "$s_{ij} = e_i^\\top v_j$\n(words i x regions j)")
    heat(fig.add_subplot(grid[0, 1]), over_words,
         "1. softmax over the words i (each column):\nwhich word claims region j")
    heat(fig.add_subplot(grid[0, 2]), alpha,
         f"2. softmax over the regions j of $\\gamma_1\\times$ that\n($\\gamma_1$ = {GAMMA1:g}): alpha, word i's map")
    heat(fig.add_subplot(grid[1, 2]), raw, "raw: softmax over the regions j of $s_{ij}$\n(no competition between words)")
    path = fig.add_subplot(grid[1, 0])
    path.axis("off")
    path.text(0.0, 0.5, "alpha path (top row): steps 1 and 2.\nraw path (right): step 2 only,\n"
              "on $s_{ij}$ itself.", va="center")
    note = fig.add_subplot(grid[1, 1])
    note.axis("off")
    peak_alpha, peak_raw = int(alpha[2].argmax()) + 1, int(raw[2].argmax()) + 1
    note.text(0.0, 0.5, f"'left' wins regions v1, v2, v5 in step 1,\nso alpha sends 'effusion' to v{peak_alpha};\n"
              f"its raw map peaks at v{peak_raw},\nwhere its own score is highest.", va="center")
    save_svg(fig, out, bbox_inches="tight")


if __name__ == "__main__":
    main()
