"""Figure for notebook 09: one query's ranked list, a tie counted against the model, and the
instance-level ceiling when several studies share one report text.

Run: .venv/bin/python notebooks/figures/retrieval_ranks_ties_ceiling.py
Writes retrieval_ranks_ties_ceiling.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import plt, save_svg
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).with_suffix(".svg")

RIGHT, WRONG, TIED = "tab:green", "0.55", "tab:orange"

# (report text, score, is the query's own report)
RANKED = [("small left effusion", 0.81, False), ("left effusion, small", 0.74, False),
          ("moderate effusion", 0.69, True), ("no acute process", 0.40, False),
          ("right pneumothorax", 0.22, False)]
TIES = [("small left effusion", 0.72, False), ("left effusion", 0.60, False),
        ("moderate effusion", 0.60, True), ("right effusion", 0.60, False), ("cardiomegaly", 0.31, False)]
SHARED = [("no acute process", 1.0, False), ("no acute process", 1.0, True), ("no acute process", 1.0, False),
          ("small left effusion", 0.0, False), ("right pneumothorax", 0.0, False)]
TIE_SCORE = 0.60


def card(ax, y, text, score, colour, label=""):
    """One candidate report as a rounded box with its score."""
    ax.add_patch(FancyBboxPatch((0.05, y - 0.32), 3.3, 0.64, boxstyle="round,pad=0.02",
                                fc="white", ec=colour, lw=2 if colour != WRONG else 1))
    ax.text(0.15, y, text, va="center", color="black" if colour == WRONG else colour)
    ax.text(3.25, y, f"{score:.2f}", va="center", ha="right", family="monospace")
    if label:
        ax.text(3.45, y, label, va="center", color=colour)


def candidate_panel(ax, rows, tied_score, own_label, note, title, numbered=False):
    """One panel: the candidates of ``rows`` top-down (the query's own report in green, those tied
    at ``tied_score`` in orange), a note under them and a title."""
    for k, (text, score, own) in enumerate(rows):
        y = len(rows) - k
        if numbered:
            ax.text(-0.05, y, f"{k + 1}", va="center", ha="right")
        card(ax, y, text, score, RIGHT if own else (TIED if score == tied_score else WRONG),
             own_label if own else "")
    ax.text(0.05, -0.2, note, va="top")
    ax.set(xlim=(-0.4, 4.6), ylim=(-1.2, len(RANKED) + 0.8), xticks=[], yticks=[], title=title)


def ranked_list(ax):
    """Panel 1: candidates sorted by score; the true report's position is the rank."""
    candidate_panel(ax, RANKED, None, "true report:\nrank 3", "R@1 miss, R@5 hit,\nreciprocal rank 1/3",
                    "1. a query's ranked list", numbered=True)


def tied_list(ax):
    """Panel 2: the true report ties two wrong ones; ties count against the model."""
    candidate_panel(ax, TIES, TIE_SCORE, "true report:\nrank 4",
                    "rank = 1 + #wrong scoring >= the true one\n= 1 + 3 = 4 (argsort could say 2)",
                    "2. ties count against the model")


def ceiling(ax):
    """Panel 3: a perfect model scores the query's report text 1; m studies share it: rank m."""
    candidate_panel(ax, SHARED, 1.0, "true report:\nrank 3",
                    "a perfect model; m = 3 studies share the text.\nInstance R@1 ceiling = share of unique\n"
                    "reports (ties against), mean of 1/m (random ties)", "3. the ceiling: repeated reports")


def main(out: Path = OUT) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, panel in zip(axes, (ranked_list, tied_list, ceiling), strict=True):
        panel(ax)
        for side in ax.spines.values():
            side.set_visible(False)
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
