"""Figure for notebook 00: the whole method at a glance. Two towers map an X-ray and its report
into one space; a global match (image vector vs report vector) and a local match (each word
attends to the image regions) feed the two loss families; the trained towers are then judged by
retrieval, classification and grounding.

Run: .venv/bin/python notebooks/figures/method_overview.py
Writes method_overview.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import V_BAR, plt, save_svg
from matplotlib.patches import Ellipse, FancyBboxPatch, Rectangle

OUT = Path(__file__).with_suffix(".svg")

GRID = 4          # drawn region grid (the model's is 16 x 16)
IMAGE, TEXT, MATCH, LOSS, EVAL = "#cfe2ff", "#d7f5d7", "#fff1c2", "#ffd6d6", "#eeeeee"


def box(ax, x, y, w, h, text, color, fontsize=9):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec="black", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, start, end, text="", dy=0.1):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.1})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + dy, text, ha="center", va="bottom", fontsize=8)


def xray(ax, x, y, side):
    """A stylised chest film with a coarse region grid."""
    ax.add_patch(Rectangle((x, y), side, side, fc="0.15", ec="black"))
    for cx in (x + 0.3 * side, x + 0.7 * side):
        ax.add_patch(Ellipse((cx, y + 0.5 * side), 0.32 * side, 0.7 * side, fc="0.55", ec="none"))
    for k in range(1, GRID):
        ax.plot([x + k * side / GRID] * 2, [y, y + side], color="#ffcc00", lw=0.6)
        ax.plot([x, x + side], [y + k * side / GRID] * 2, color="#ffcc00", lw=0.6)


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 5.0))
    # inputs and towers
    xray(ax, 0.1, 3.0, 1.4)
    ax.text(0.8, 2.85, "chest X-ray", ha="center", va="top", fontsize=8)
    box(ax, 0.0, 0.55, 1.6, 1.0, "\"Small left\npleural effusion.\"", "white", fontsize=8)
    ax.text(0.8, 0.4, "its report", ha="center", va="top", fontsize=8)
    arrow(ax, (1.6, 3.7), (2.2, 3.7))
    arrow(ax, (1.65, 1.05), (2.2, 1.05))
    box(ax, 2.25, 3.15, 1.7, 1.1, "image tower\n(CNN, nb 03)", IMAGE)
    box(ax, 2.25, 0.5, 1.7, 1.1, "text tower\n(BERT, nb 04)", TEXT)
    # what the towers give
    box(ax, 4.6, 4.05, 1.9, 0.6, "regions $v_1 \\ldots v_R$", IMAGE, fontsize=8)
    box(ax, 4.6, 2.95, 1.9, 0.6, f"image vector {V_BAR}", IMAGE, fontsize=8)
    box(ax, 4.6, 1.45, 1.9, 0.6, "report vector $t$", TEXT, fontsize=8)
    box(ax, 4.6, 0.35, 1.9, 0.6, "words $e_1 \\ldots e_T$", TEXT, fontsize=8)
    for y_from, y_to in ((3.85, 4.35), (3.55, 3.25)):
        arrow(ax, (3.95, y_from), (4.6, y_to))
    for y_from, y_to in ((1.3, 1.75), (0.8, 0.65)):
        arrow(ax, (3.95, y_from), (4.6, y_to))
    # the two matches
    box(ax, 7.2, 2.0, 2.3, 1.05, f"global match\ncos({V_BAR}, t)\n(nb 05)", MATCH)
    box(ax, 7.2, 0.3, 2.3, 1.35, "local match\neach word attends\nto the regions: $S_w$\n(nb 06)", MATCH)
    arrow(ax, (6.5, 3.25), (7.2, 2.75))
    arrow(ax, (6.5, 1.75), (7.2, 2.35))
    arrow(ax, (6.5, 4.35), (7.2, 1.45))
    arrow(ax, (6.5, 0.65), (7.2, 0.9))
    # losses and evaluation
    box(ax, 10.1, 1.05, 2.0, 1.5, "loss over the batch:\ncross-entropy\n+ triplet ranking\n(nb 07, trained\nin nb 08)", LOSS,
        fontsize=8)
    arrow(ax, (9.5, 2.5), (10.1, 2.1))
    arrow(ax, (9.5, 1.0), (10.1, 1.45))
    box(ax, 10.1, 3.3, 2.0, 1.35, "judged by\nretrieval (nb 09)\nclassification (nb 10)\ngrounding (nb 11)", EVAL,
        fontsize=8)
    ax.annotate("", xy=(11.1, 3.3), xytext=(11.1, 2.55),
                arrowprops={"arrowstyle": "-|>", "color": "0.4", "lw": 1.1, "ls": "--"})
    ax.text(11.2, 2.9, "trained towers", fontsize=7, color="0.3", va="center")
    ax.text(5.55, 4.95, "one joint space (D = 512)", ha="center", color="0.3")
    ax.add_patch(Rectangle((4.45, 0.2), 2.2, 4.65, fill=False, ls="--", ec="0.5"))
    ax.set(xlim=(-0.1, 12.3), ylim=(0.0, 5.2), aspect="equal")
    ax.axis("off")
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
