"""Figure for notebook 08: one training step on N = 2 processes with gathered negatives.

Each rank embeds its own batch, all_gather collects every rank's vectors (with gradients), each
rank scores its own rows against the gathered batch, backward sends gradients back through the
gather, DDP averages the weight gradients, then every rank clips and steps.

Run: .venv/bin/python notebooks/figures/ddp_training_loop.py
Writes ddp_training_loop.svg next to this file (byte-stable across re-runs).
"""

from itertools import pairwise
from pathlib import Path

import numpy as np
from figure_style import plt, save_svg
from matplotlib.patches import FancyBboxPatch, Rectangle

OUT = Path(__file__).with_suffix(".svg")

RANK_X = (0.0, 5.0)          # left edge of each rank's column
WIDTH, HEIGHT = 4.2, 0.8
SHARED = "#fde9c8"           # steps where the ranks talk to each other
LOCAL = "#dceaf7"            # steps each rank does alone


def box(ax, x, y, width, text, color):
    ax.add_patch(FancyBboxPatch((x, y), width, HEIGHT, boxstyle="round,pad=0.05", fc=color, ec="0.3"))
    ax.text(x + width / 2, y + HEIGHT / 2, text, ha="center", va="center")


def arrow(ax, x, y_from, y_to, color="0.2", style="-|>"):
    ax.annotate("", xy=(x, y_to), xytext=(x, y_from), arrowprops={"arrowstyle": style, "color": color, "lw": 1.2})


def flow(ax):
    """Left panel: the step, top to bottom, for rank 0 and rank 1."""
    rows = [  # (y, text per rank or one shared text, shared?)
        (9.0, "rank {r}: its own batch of B pairs", False),
        (7.6, "forward (autocast)\nimage, report vectors (B, D)", False),
        (6.2, "all_gather with gradients: every rank holds all N B vectors (N B, D)", True),
        (4.8, "scores S (B, N B): own rows vs all\npositives at rank_offset + i; loss", False),
        (3.4, "backward: gradients flow back\nthrough the gather to every rank", False),
        (2.0, "DDP all-reduce: the weight gradients are averaged over the N ranks", True),
        (0.6, "clip each tower, optimizer step\n(identical weights on every rank)", False),
    ]
    for y, text, shared in rows:
        if shared:
            box(ax, RANK_X[0], y, RANK_X[1] + WIDTH - RANK_X[0], text, SHARED)
        else:
            for r, x in enumerate(RANK_X):
                box(ax, x, y, WIDTH, text.format(r=r), LOCAL)
    for (y_from, *_), (y_to, *_) in pairwise(rows):
        for x in RANK_X:
            arrow(ax, x + WIDTH / 2, y_from - 0.05, y_to + HEIGHT + 0.1)
    for x in RANK_X:    # the backward pass runs up through the gather
        arrow(ax, x + WIDTH - 0.3, 3.4 + HEIGHT + 0.05, 6.2 - 0.1, color="tab:red")
    ax.text(RANK_X[1] + WIDTH + 0.15, 5.2, "gradients\nof the\ngather", color="tab:red", fontsize=8)
    ax.set(xlim=(-0.3, 10.4), ylim=(0.3, 10.0), xticks=[], yticks=[])
    ax.axis("off")
    ax.set_title("one step on N = 2 processes (torchrun)")


def gathered_scores(ax, batch=4, world=2, rank=1):
    """Right panel: rank 1's score matrix against the gathered batch."""
    g = np.random.default_rng(0)
    scores = g.uniform(0, 0.5, (batch, batch * world))
    offset = rank * batch
    ax.imshow(scores, cmap="Greys", vmin=0, vmax=1.5)
    for i in range(batch):
        ax.add_patch(Rectangle((offset + i - 0.5, i - 0.5), 1, 1, fc="tab:green", ec="tab:green", alpha=0.8))
    ax.axvline(offset - 0.5, color="tab:orange", lw=2)
    ax.set(xticks=range(batch * world), yticks=range(batch),
           xticklabels=[f"{k // batch}:{k % batch}" for k in range(batch * world)],
           xlabel="gathered reports (rank:index)\nrank 0's reports are extra negatives",
           ylabel=f"rank {rank}'s own images",
           title=f"S on rank {rank}: (B, N B)\npositives (green) at rank_offset + i = {offset} + i")


def main(out: Path = OUT) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    flow(left)
    gathered_scores(right)
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
