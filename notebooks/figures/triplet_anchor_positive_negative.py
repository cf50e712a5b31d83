"""Figure for notebook 07: anchor, positive and negatives of the triplet hinge, and where each
negative mode finds its negative in the score matrix.

Run: .venv/bin/python notebooks/figures/triplet_anchor_positive_negative.py
Writes triplet_anchor_positive_negative.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import plt, save_svg
from matplotlib.patches import Circle, Rectangle

OUT = Path(__file__).with_suffix(".svg")

POSITIVE_DISTANCE, MARGIN = 1.0, 0.6
NEGATIVES = {  # name: (x, y) around the anchor at the origin
    "hardest": (0.95, -0.95),
    "random": (-1.6, -1.25),
    "easy": (1.75, 1.35),
}


def geometry(ax):
    """Left panel: the anchor, its positive, the margin band and three negatives."""
    ax.add_patch(Circle((0, 0), POSITIVE_DISTANCE, fill=False, ls="--", color="tab:green"))
    ax.add_patch(Circle((0, 0), POSITIVE_DISTANCE + MARGIN, fill=False, ls=":", color="tab:red"))
    ax.annotate("", xy=(POSITIVE_DISTANCE + MARGIN, 0), xytext=(POSITIVE_DISTANCE, 0),
                arrowprops={"arrowstyle": "<->", "color": "tab:red"})
    ax.text(POSITIVE_DISTANCE + MARGIN / 2, 0.08, "margin", color="tab:red", ha="center", va="bottom")
    ax.plot(0, 0, "s", color="tab:blue", ms=11)
    ax.text(0, -0.2, "anchor\nimage m", color="tab:blue", ha="center", va="top")
    ax.plot(-0.6, 0.8, "*", color="tab:green", ms=16)
    ax.text(-0.75, 0.95, "positive\nreport m", color="tab:green", ha="right")
    for name, (x, y) in NEGATIVES.items():
        inside = np.hypot(x, y) < POSITIVE_DISTANCE + MARGIN
        ax.plot(x, y, "o", color="tab:red" if inside else "tab:gray", ms=9)
        label = {"hardest": "hardest negative\n(inside the margin: loss > 0)",
                 "random": "a random negative\n(outside: loss 0)",
                 "easy": "an easy negative"}[name]
        ax.text(x + 0.12, y - 0.1, label, va="top", color="tab:red" if inside else "tab:gray")
    ax.set(xlim=(-2.8, 3.8), ylim=(-2.6, 2.2), aspect="equal", xticks=[], yticks=[],
           title="image -> report: [d(a, p) - d(a, n) + margin]$_+$")


def score_matrix(ax):
    """Right panel: rows are images, columns reports; where each direction looks for negatives."""
    scores = np.array([[0.9, 0.2, 0.7, 0.1, 0.3],
                       [0.4, 0.8, 0.1, 0.5, 0.2],
                       [0.3, 0.6, 0.7, 0.2, 0.9],
                       [0.1, 0.3, 0.2, 0.6, 0.4],
                       [0.5, 0.1, 0.3, 0.8, 0.7]])
    ax.imshow(scores, cmap="Greys", vmin=0, vmax=1.6)
    m = 2
    for k in range(5):
        ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, ec="tab:green", lw=2))
        for j in range(5):
            ax.text(j, k, f"{scores[k, j]:.1f}", ha="center", va="center", fontsize=8)
    ax.add_patch(Rectangle((-0.5, m - 0.5), 5, 1, fill=False, ec="tab:blue", lw=2))
    ax.add_patch(Rectangle((m - 0.5, -0.5), 1, 5, fill=False, ec="tab:orange", lw=2, ls="--"))
    hardest_row = max((j for j in range(5) if j != m), key=lambda j: scores[m, j])
    hardest_col = max((k for k in range(5) if k != m), key=lambda k: scores[k, m])
    ax.plot(hardest_row, m, "o", mfc="none", mec="tab:red", ms=20, mew=2)
    ax.plot(m, hardest_col, "o", mfc="none", mec="tab:red", ms=20, mew=2, ls="none")
    ax.set(xticks=range(5), yticks=range(5), ylabel="image m",
           title="S: diagonal = positives")
    ax.set_xlabel(f"report k\nblue row: negatives of image {m} (image -> report)\n"
                  f"orange column: negatives of report {m} (report -> image)\n"
                  "red rings: the hardest negatives (the positive excluded)")


def main(out: Path = OUT) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    geometry(left)
    score_matrix(right)
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
