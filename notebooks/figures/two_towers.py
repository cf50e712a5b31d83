"""Figure for notebooks 03 and 04: the two towers, the image's region grid and the report's words.

Run: .venv/bin/python notebooks/figures/two_towers.py
Writes two_towers.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import V_BAR, plt, save_svg
from matplotlib.patches import Ellipse, FancyBboxPatch, Rectangle

OUT = Path(__file__).with_suffix(".svg")

GRID = 8          # drawn grid side (the model's is 16 x 16; 8 keeps the drawing legible)
WORDS = ["no", "pleural", "effusion", "[SEP]"]


def box(ax, x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec="black", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center")


def arrow(ax, start, end, text="", color="black"):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.2})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text, ha="center", va="bottom",
                fontsize=8, color=color)


def xray(ax, x, y, side):
    """A stylised chest film with the region grid on top."""
    ax.add_patch(Rectangle((x, y), side, side, fc="0.15", ec="black"))
    for cx in (x + 0.3 * side, x + 0.7 * side):
        ax.add_patch(Ellipse((cx, y + 0.5 * side), 0.32 * side, 0.7 * side, fc="0.55", ec="none"))
    ax.add_patch(Ellipse((x + 0.55 * side, y + 0.35 * side), 0.3 * side, 0.25 * side, fc="0.8", ec="none"))
    for k in range(1, GRID):
        ax.plot([x + k * side / GRID] * 2, [y, y + side], color="#ffcc00", lw=0.5)
        ax.plot([x, x + side], [y + k * side / GRID] * 2, color="#ffcc00", lw=0.5)
    cell = side / GRID
    ax.add_patch(Rectangle((x + 2 * cell, y + (GRID - 3) * cell), cell, cell, fc="#ff5555", ec="none", alpha=0.8))
    ax.text(x + side / 2, y - 0.15, "image (B, 1, H, W)", ha="center", va="top")


def vectors(ax, x, y, count, labels, color, zero_from=None):
    """A stack of thin bars standing for vectors, one labelled per bar."""
    for k in range(count):
        fc = "white" if zero_from is not None and k >= zero_from else color
        ax.add_patch(Rectangle((x + k * 0.32, y), 0.24, 1.0, fc=fc, ec="black", lw=0.8))
        if labels:
            ax.text(x + k * 0.32 + 0.12, y - 0.08, labels[k], ha="center", va="top", fontsize=8, rotation=90)


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(10, 5.2))
    # image tower (top)
    xray(ax, 0.2, 3.0, 1.8)
    arrow(ax, (2.1, 3.9), (2.9, 3.9))
    box(ax, 3.0, 3.35, 2.0, 1.1, "image tower\nAuthors' CNN\n(notebook 03)", "#cfe2ff")
    arrow(ax, (5.1, 4.25), (7.1, 4.75), "stage 5, 1x1 conv")
    arrow(ax, (5.1, 3.55), (7.1, 3.1), "stage 6, pool, Linear")
    vectors(ax, 7.2, 4.3, 8, ["$v_1$", "$v_2$", "...", "", "", "", "", "$v_R$"], "#ffd6d6")
    ax.text(9.85, 4.8, "regions (B, R, D)\nR = 16 x 16 = 256,\nrow-major grid", va="center", fontsize=8)
    vectors(ax, 7.2, 2.6, 1, [V_BAR], "#ffa0a0")
    ax.text(7.65, 3.1, "global image vector (B, D)", va="center", fontsize=8)
    # text tower (bottom)
    ax.text(1.1, 1.05, "\"No pleural effusion.\"", ha="center", va="center", fontsize=10)
    ax.text(1.1, 0.6, "[CLS] no pleural effusion [SEP]", ha="center", va="center", fontsize=8, family="monospace")
    arrow(ax, (2.3, 0.85), (2.9, 0.85))
    box(ax, 3.0, 0.3, 2.0, 1.1, "text tower\nBERT\n(notebook 04)", "#d7f5d7")
    arrow(ax, (5.1, 1.2), (7.1, 1.55), "tokens after [CLS]")
    arrow(ax, (5.1, 0.5), (7.1, 0.2), "[CLS], Linear")
    vectors(ax, 7.2, 1.1, 4, ["$e_1$", "$e_2$", "$e_3$", "$e_4$"], "#c4efc4")
    ax.text(8.6, 1.6, "words (B, L-1, D):\n" + ", ".join(WORDS), va="center", fontsize=8)
    vectors(ax, 7.2, -0.75, 1, ["$t$"], "#8fd98f")
    ax.text(7.65, -0.25, "report vector (B, D)", va="center", fontsize=8)
    # the joint space
    ax.add_patch(Rectangle((6.95, -1.35), 4.6, 6.9, fill=False, ls="--", ec="0.4"))
    ax.text(9.25, 5.65, "one joint space, D = 512", ha="center", color="0.3")
    ax.text(11.7, 3.6, f"global match:\ncos({V_BAR}, t)\n(notebook 05)", fontsize=8, va="center")
    ax.text(11.7, 1.6, "local match:\nwords attend\nto regions\n(notebook 06)", fontsize=8, va="center")
    ax.set(xlim=(0, 13.0), ylim=(-1.5, 6.0), aspect="equal")
    ax.axis("off")
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
