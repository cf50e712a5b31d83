"""Figure for notebook 06: the padding traps of the local score and the Gram-matrix form that the
package computes. Left: a padded report against the regions; padding rows must stay out of the
softmax over words and out of the log-sum-exp, and [CLS] is no word. Right: the two numbers each
word needs, computed without the (I, T, L, D) context tensor.

Run: .venv/bin/python notebooks/figures/padding_traps_gram.py
Writes padding_traps_gram.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import box, finish_diagram, plt
from matplotlib.patches import Rectangle

OUT = Path(__file__).with_suffix(".svg")

ROWS = [("[CLS]", "report vector t, not a word", "#eeeeee"), ("small", "", "white"), ("left", "", "white"),
        ("effusion", "", "white"), ("[SEP]", "kept as a word (authors)", "white"),
        ("pad", "masked: 0 vector, no share", "#ffd6d6"), ("pad", "masked", "#ffd6d6")]
REGIONS = 8


def traps(ax):
    """Left panel: rows of the (words, regions) score matrix, real and padded."""
    for r, (word, note, fc) in enumerate(ROWS):
        y = 4.2 - 0.55 * r
        ax.text(-0.15, y + 0.22, word, ha="right", va="center", fontsize=8)
        for j in range(REGIONS):
            ax.add_patch(Rectangle((j * 0.45, y), 0.4, 0.45, fc=fc, ec="0.5", lw=0.6))
        ax.text(REGIONS * 0.45 + 0.15, y + 0.22, note, va="center", fontsize=7, color="0.25")
    ax.plot([0.0, REGIONS * 0.45 - 0.05], [4.2, 4.65], color="black", lw=1)     # [CLS] struck out
    ax.annotate("", xy=(-1.15, 2.0), xytext=(-1.15, 4.1), arrowprops={"arrowstyle": "<->", "color": "tab:blue"})
    ax.text(-1.15, 0.75, "the real words (blue): the only rows in the softmax over words (step 2)\n"
            "and in the log-sum-exp (step 6)",
            fontsize=7, color="tab:blue", va="top")
    ax.text(0.0, 5.0, "1. padding traps: regions (columns) x report tokens (rows)", fontsize=9)
    ax.text(-1.15, 0.1, "and a report of n words gets log n added to $S_w$: longer reports score higher",
            fontsize=7, va="top")


def gram(ax):
    """Right panel: c_i from the attention vs the two numbers from s and G = V V^T."""
    ax.text(7.6, 5.0, "2. the Gram trick: what each word i needs", fontsize=9)
    box(ax, 7.6, 3.3, 3.6, 1.2, r"slow: build every context" "\n" r"$c_i = \sum_j \alpha_{ij} v_j$" "\n" "(I, T, L, D) floats", "#ffd6d6",
        fontsize=8)
    box(ax, 7.6, 1.3, 3.6, 1.5, r"exact, small:" "\n" r"$c_i^\top e_i = \sum_j \alpha_{ij} s_{ij}$" "\n"
        r"$\|c_i\|^2 = \alpha_i^\top G \alpha_i$" "\n" r"$G = V V^\top$ (R x R per image)", "#d7f5d7", fontsize=8)
    ax.text(9.4, 1.1, "largest tensor (I, T, L, R), R < D", ha="center", va="top", fontsize=7)
    ax.text(9.4, 3.05, r"the same cosine $R(c_i, e_i)$", ha="center", va="center", fontsize=7, color="0.3")


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 4.0))
    traps(ax)
    gram(ax)
    finish_diagram(fig, ax, (-1.5, 11.4), (-0.6, 5.3), out)


if __name__ == "__main__":
    main()
