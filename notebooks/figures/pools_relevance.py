"""Figure for notebook 09: pools and relevance. Left: a test split of 9 studies cut into 3 pools;
each pool is a square block of the similarity matrix, queried on its own. Right: which candidates
count as right for each query under the three relevances (instance, dedup, label).

Run: .venv/bin/python notebooks/figures/pools_relevance.py
Writes pools_relevance.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import plt, save_svg

OUT = Path(__file__).with_suffix(".svg")
N = 9
POOL = 3
# studies 0, 4 and 7 share one normal report word for word; studies 2 and 5 have the same findings
TEXT = np.array([0, 1, 2, 3, 0, 4, 5, 0, 6])
LABELS = np.array([0, 1, 2, 3, 0, 2, 4, 0, 5])


def matrix(ax, values, title, cmap):
    ax.imshow(values, cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks(range(N))
    ax.set_yticks(range(N))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("candidate report", fontsize=8)
    ax.set_ylabel("query image", fontsize=8)
    ax.set_title(title, fontsize=8)


def main(out: Path = OUT) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
    pool = np.arange(N) // POOL
    matrix(axes[0], 0.5 * (pool[:, None] == pool[None, :]),
           f"pools: {N // POOL} pools of {POOL}\n(only the blue scores compete)", "Blues")
    matrix(axes[1], np.eye(N), "instance: only its own report", "Greens")
    matrix(axes[2], (TEXT[:, None] == TEXT[None, :]).astype(float),
           "dedup: any report with the same text\n(studies 0, 4, 7 share one)", "Greens")
    matrix(axes[3], (LABELS[:, None] == LABELS[None, :]).astype(float),
           "label: any study with the same findings\n(2 and 5 too)", "Greens")
    fig.text(0.01, -0.03, "Green: a right answer for that query. Chance R@1 is 1 / pool size; "
             "a perfect model's instance R@1 is capped by the shared texts (the ceiling).", fontsize=8)
    fig.tight_layout()
    save_svg(fig, out, bbox_inches="tight")


if __name__ == "__main__":
    main()
