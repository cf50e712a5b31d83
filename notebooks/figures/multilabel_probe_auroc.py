"""Figure for notebook 10: a multi-label linear probe on the frozen image tower (one logistic
regression per finding), and AUROC as the chance that a positive outranks a negative.

Run: .venv/bin/python notebooks/figures/multilabel_probe_auroc.py
Writes multilabel_probe_auroc.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import plt, save_svg
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).with_suffix(".svg")

FINDINGS = ["Atelectasis", "Cardiomegaly", "Pleural Effusion", "...", "Support Devices"]
PROBABILITIES = [0.12, 0.81, 0.64, None, 0.05]
# one class on a toy test set: scores of the positive and the negative studies
POSITIVES = np.array([0.92, 0.81, 0.64, 0.55, 0.30])
NEGATIVES = np.array([0.70, 0.52, 0.41, 0.33, 0.30, 0.22, 0.15, 0.08])


def box(ax, x, y, w, h, text, colour="black", fc="white"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03", fc=fc, ec=colour))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", color=colour)


def probe(ax):
    """Panel 1: image -> frozen tower -> vector -> one logistic regression per finding."""
    box(ax, 0.0, 2.0, 1.2, 1.0, "chest\nX-ray")
    box(ax, 1.45, 1.8, 1.85, 1.4, "image tower\n(frozen)", "tab:blue", "#e8f0fa")
    box(ax, 3.5, 2.1, 1.0, 0.8, "x\n(D,)")
    for a, b in ((1.2, 1.45), (3.3, 3.5)):
        ax.annotate("", xy=(b, 2.5), xytext=(a, 2.5), arrowprops={"arrowstyle": "->"})
    for k, (name, p) in enumerate(zip(FINDINGS, PROBABILITIES, strict=True)):
        y = 4.4 - 1.0 * k
        if p is None:
            ax.text(6.0, y + 0.2, "(14 findings)", ha="center", va="center", color="0.4")
            continue
        ax.annotate("", xy=(5.0, y + 0.2), xytext=(4.5, 2.5), arrowprops={"arrowstyle": "->", "color": "0.5"})
        box(ax, 5.0, y, 2.0, 0.4, r"$\sigma(w_c^\top x + b_c)$", "tab:purple")
        ax.text(7.15, y + 0.2, f"{name}: {p:.2f}", va="center")
    ax.text(0.0, -0.9, "14 independent yes/no questions: several can be yes at once.\n"
            "Only the small heads learn; the tower's weights stay fixed.", va="bottom")
    ax.set(xlim=(-0.1, 10.0), ylim=(-1.0, 5.0), xticks=[], yticks=[], title="1. a multi-label linear probe")


def roc(ax):
    """Panel 2: the ROC curve of the toy class, its area shaded."""
    thresholds = np.unique(np.concatenate([POSITIVES, NEGATIVES, [np.inf]]))[::-1]
    tpr = [(POSITIVES >= t).mean() for t in thresholds]
    fpr = [(NEGATIVES >= t).mean() for t in thresholds]
    ax.fill_between(fpr, tpr, step=None, alpha=0.2, color="tab:blue")
    ax.plot(fpr, tpr, "-o", color="tab:blue", ms=3)
    ax.plot([0, 1], [0, 1], ":", color="gray", label="chance (0.5)")
    auc = ((POSITIVES[:, None] > NEGATIVES[None, :]) + 0.5 * (POSITIVES[:, None] == NEGATIVES[None, :])).mean()
    ax.text(0.45, 0.25, f"AUROC = {auc:.3f}", color="tab:blue")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.02),
           aspect="equal", title="2. ROC: sweep the threshold")
    ax.legend(loc="lower right", fontsize=8)


def pairs(ax):
    """Panel 3: the same number as the share of (positive, negative) pairs in the right order."""
    ax.scatter(np.ones_like(POSITIVES), POSITIVES, color="tab:red", zorder=3, label="positives")
    ax.scatter(np.zeros_like(NEGATIVES), NEGATIVES, color="tab:gray", zorder=3, label="negatives")
    for p in POSITIVES:
        for n in NEGATIVES:
            colour = "tab:green" if p > n else ("tab:orange" if p == n else "tab:red")
            ax.plot([0, 1], [n, p], color=colour, lw=0.6, alpha=0.6)
    wins = int((POSITIVES[:, None] > NEGATIVES[None, :]).sum())
    ties = int((POSITIVES[:, None] == NEGATIVES[None, :]).sum())
    total = POSITIVES.size * NEGATIVES.size
    ax.set(xticks=[0, 1], xticklabels=["negatives", "positives"], ylabel="score", xlim=(-0.4, 1.4),
           ylim=(0, 1), title="3. AUROC = P(positive > negative)",
           xlabel=f"({wins} wins + {ties} tie / 2) / {total} pairs = {(wins + ties / 2) / total:.3f}")


def main(out: Path = OUT) -> None:
    fig = plt.figure(figsize=(12, 3.6))
    grid = fig.add_gridspec(1, 3, width_ratios=[2.1, 1.1, 1.1])
    ax0 = fig.add_subplot(grid[0])
    probe(ax0)
    for side in ax0.spines.values():
        side.set_visible(False)
    roc(fig.add_subplot(grid[1]))
    pairs(fig.add_subplot(grid[2]))
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
