"""Figure for notebook 11: region ownership. With DAMSM's softmax over the words, each region goes
to the word with the largest score there; long vectors make that nearly one-hot, and the words that
every report shares win. A finding's word then owns no region and its map is flat. Without the
softmax over words (and with cosine scores) each word keeps its own map.

Run: .venv/bin/python notebooks/figures/region_ownership.py
Writes region_ownership.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import grid_panel_frame, plt, save_svg

OUT = Path(__file__).with_suffix(".svg")

WORDS = ["the", "heart", "is", "normal", "left", "effusion"]
GRID = (2, 4)
EFFUSION_CELLS = (4, 5)   # the lower-left cells of the 2 x 4 grid: where the effusion is
GAMMA1 = 4.0
# cos(e_i, v_j) of 6 words and 8 regions: "effusion" matches its own cells best, "left" the left half;
# the shared words match every region a little.
COS = np.array([[0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30],
                [0.20, 0.35, 0.40, 0.20, 0.20, 0.35, 0.40, 0.20],
                [0.27, 0.28, 0.28, 0.27, 0.27, 0.28, 0.29, 0.27],
                [0.25, 0.30, 0.30, 0.25, 0.25, 0.30, 0.30, 0.25],
                [0.30, 0.30, 0.05, 0.05, 0.30, 0.30, 0.05, 0.05],
                [0.00, 0.05, 0.00, 0.00, 0.45, 0.40, 0.00, 0.00]])
# lengths: the shared words are trained against every image and grow long; so do the regions
WORD_NORM = np.array([9.0, 8.0, 9.0, 8.0, 5.0, 4.0])
REGION_NORM = 6.0
COSINE_SCALE = 10.0


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def region_grid(ax, values, title, labels=None, vmax=None):
    """Values of the 8 regions on the 2 x 4 grid, with the effusion's cells outlined."""
    image = ax.imshow(values.reshape(GRID), cmap="viridis", vmin=0, vmax=vmax)
    for j in range(values.size):
        r, c = divmod(j, GRID[1])
        text = labels[j] if labels is not None else f"{values[j]:.2f}"
        ax.text(c, r, text, ha="center", va="center", fontsize=7, color="white")
    grid_panel_frame(ax, EFFUSION_CELLS, GRID, title)
    return image


def main(out: Path = OUT) -> None:
    scores = COS * WORD_NORM[:, None] * REGION_NORM             # s_ij = |e_i| |v_j| cos
    over_words = softmax(scores, axis=0)                         # which word claims region j
    owner = over_words.argmax(axis=0)
    alpha = softmax(GAMMA1 * over_words, axis=1)
    fixed = softmax(COSINE_SCALE * COS, axis=1)                  # no softmax over words, 10 cos
    e = WORDS.index("effusion")
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.6))
    region_grid(axes[0], over_words.max(axis=0),
                "1. softmax over the words: each region's owner\n(cell text: the owner; colour: its share)",
                labels=[f"{WORDS[k]}\n{over_words[k, j]:.2f}" for j, k in enumerate(owner)], vmax=1)
    vmax = max(alpha[e].max(), fixed[e].max())
    region_grid(axes[1], alpha[e], "2. the paper's map of 'effusion' (alpha):\nit owns no region, so it is flat",
                vmax=vmax)
    image = region_grid(axes[2], fixed[e], "3. the fix: no softmax over words,\n"
                        "10 x cosine: 'effusion' keeps its cells", vmax=vmax)
    fig.colorbar(image, ax=axes[1:], shrink=0.8, label="share of the word's map")
    fig.text(0.01, -0.04, "red: the effusion's cells.  Words: " + " ".join(WORDS)
             + ".  Long word and region vectors make step 1 one-hot; the shared words win.", fontsize=8)
    save_svg(fig, out, bbox_inches="tight")


if __name__ == "__main__":
    main()
