"""Figure for notebook 05: the batch's cosine matrix S and the two cross-entropy directions
(image -> report over a row, report -> image over a column), both at temperature gamma3.

Run: .venv/bin/python notebooks/figures/similarity_matrix_ce.py
Writes similarity_matrix_ce.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import plt, save_svg
from matplotlib.patches import Rectangle

OUT = Path(__file__).with_suffix(".svg")

GAMMA3 = 10.0
ROW = 1       # the image whose row is drawn as a classifier
COLUMN = 3    # the report whose column is drawn as a classifier
S = np.array([[0.62, 0.05, 0.18, -0.02, 0.11],
              [0.10, 0.55, 0.31, 0.02, -0.08],
              [0.20, 0.12, 0.71, -0.05, 0.09],
              [-0.04, 0.24, 0.08, 0.48, 0.15],
              [0.07, -0.10, 0.13, 0.41, 0.66]])


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def matrix(ax):
    m = len(S)
    ax.imshow(S, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(m):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=2))
        for t in range(m):
            ax.text(t, i, f"{S[i, t]:.2f}", ha="center", va="center", fontsize=8)
    ax.add_patch(Rectangle((-0.5, ROW - 0.5), m, 1, fill=False, ec="tab:blue", lw=2.5))
    ax.add_patch(Rectangle((COLUMN - 0.5, -0.5), 1, m, fill=False, ec="tab:orange", lw=2.5, ls="--"))
    ax.set(xticks=range(m), yticks=range(m), xlabel="report t", ylabel="image i",
           title="$S_{it} = \\cos(v_i, t_t)$, diagonal = true pairs")


def bars(ax, probabilities, target, color, title, xlabel):
    colors = [color if k == target else "0.7" for k in range(len(probabilities))]
    ax.bar(range(len(probabilities)), probabilities, color=colors)
    ax.set(ylim=(0, 1), xticks=range(len(probabilities)), xlabel=xlabel, title=title)
    loss = -np.log(probabilities[target])
    ax.text(target, probabilities[target] + 0.03, f"-log p = {loss:.2f}", ha="center", fontsize=8)


def main(out: Path = OUT) -> None:
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    matrix(left)
    bars(mid, softmax(GAMMA3 * S[ROW]), ROW, "tab:blue",
         f"image -> report: softmax over row {ROW}\nof $\\gamma_3 S$ ($\\gamma_3$ = {GAMMA3:g}), target report {ROW}",
         "report t")
    bars(right, softmax(GAMMA3 * S[:, COLUMN]), COLUMN, "tab:orange",
         f"report -> image: softmax over column {COLUMN}\nof $\\gamma_3 S$, target image {COLUMN}", "image i")
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
