"""Figure for notebook 06: the word-to-region attention flow of the local score S_w (DAMSM),
computed for real on a small random pair (4 words, a 3 x 3 grid of regions).

Run: .venv/bin/python notebooks/figures/word_region_attention.py
Writes word_region_attention.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import plt, save_svg
from matplotlib.patches import FancyArrow

OUT = Path(__file__).with_suffix(".svg")

GAMMA1, GAMMA2 = 4.0, 5.0
WORDS = ["left", "effusion", "no", "[SEP]"]
GRID = 3
WORD = 1  # the word whose attention map is drawn over the grid


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def damsm(regions, words):
    """Every intermediate of S_w for one pair: regions (R, D), words (n, D)."""
    s = words @ regions.T                                     # (n, R)
    over_words = softmax(s, axis=0)                           # each region's column sums to 1
    alpha = softmax(GAMMA1 * over_words, axis=1)              # each word's row sums to 1
    context = alpha @ regions                                 # (n, D)
    cosine = (context * words).sum(1) / (np.linalg.norm(context, axis=1) * np.linalg.norm(words, axis=1))
    return s, over_words, alpha, cosine, np.log(np.exp(GAMMA2 * cosine).sum())


def heat(ax, values, title, cmap, digits):
    ax.imshow(values, cmap=cmap, aspect="auto")
    ax.set(title=title, yticks=range(len(WORDS)), yticklabels=WORDS, xticks=range(values.shape[1]),
           xlabel="region j")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.{digits}f}", ha="center", va="center", fontsize=6)


def main(out: Path = OUT) -> None:
    rng = np.random.default_rng(0)
    regions = rng.normal(size=(GRID * GRID, 6))
    words = rng.normal(size=(len(WORDS), 6))
    s, over_words, alpha, cosine, score = damsm(regions, words)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1.3, 1.3, 0.8, 1.0]})
    heat(axes[0], s, "1. $s_{ij} = e_i^\\top v_j$ (raw dot products)", "RdBu_r", 1)
    heat(axes[1], over_words, "2. softmax over words $i$\n(each column sums to 1)", "Greens", 2)
    axes[2].imshow(alpha[WORD].reshape(GRID, GRID), cmap="inferno")
    axes[2].set(title=f"3. $\\alpha_{{ij}}$ = softmax over regions $j$\nof $\\gamma_1$ x (2), word '{WORDS[WORD]}'",
                xticks=[], yticks=[])
    for j, a in enumerate(alpha[WORD]):
        axes[2].text(j % GRID, j // GRID, f"{a:.2f}", ha="center", va="center", fontsize=7,
                     color="black" if a > 0.6 * alpha[WORD].max() else "white")
    axes[2].set_xlabel("$c_i = \\sum_j \\alpha_{ij} v_j$")
    axes[3].barh(range(len(WORDS)), cosine, color="tab:purple")
    axes[3].set(yticks=range(len(WORDS)), yticklabels=WORDS, xlim=(-1, 1), xlabel="$R(c_i, e_i) = \\cos(c_i, e_i)$",
                title=f"4. $S_w = \\log \\sum_i \\exp(\\gamma_2 R(c_i, e_i))$\n= {score:.2f}")
    axes[3].invert_yaxis()
    axes[3].axvline(0, color="0.5", lw=0.8)
    fig.tight_layout()
    for left, right in zip(axes[:-1], axes[1:], strict=True):  # arrows between the steps
        x0 = left.get_position().x1 + 0.002
        x1 = right.get_position().x0 - 0.035
        fig.patches.append(FancyArrow(x0, 0.5, max(x1 - x0, 0.01), 0, width=0.006,
                                                        head_length=0.008, transform=fig.transFigure,
                                                        color="0.4", length_includes_head=True))
    save_svg(fig, out)


if __name__ == "__main__":
    main()
