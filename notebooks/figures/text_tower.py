"""Figure for notebook 04: tokens -> BERT states -> word vectors (after [CLS], zero at padding)
and the report vector (from [CLS]).

Run: .venv/bin/python notebooks/figures/text_tower.py
Writes text_tower.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import plt, save_svg
from matplotlib.patches import FancyBboxPatch, Rectangle

OUT = Path(__file__).with_suffix(".svg")

TOKENS = ["[CLS]", "no", "pleural", "effusion", "[SEP]", "[PAD]", "[PAD]"]
MASK = [1, 1, 1, 1, 1, 0, 0]
STEP = 1.25  # horizontal distance between tokens


def cell(ax, x, y, text, fc, w=1.05, h=0.5, **kw):
    ax.add_patch(Rectangle((x - w / 2, y - h / 2), w, h, fc=fc, ec="black", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", **kw)


def down(ax, x, y0, y1, color="black"):
    ax.annotate("", xy=(x, y1), xytext=(x, y0), arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1})


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(10, 5.0))
    xs = [k * STEP for k in range(len(TOKENS))]
    for x, token, m in zip(xs, TOKENS, MASK, strict=True):
        cell(ax, x, 5.0, token, "#eeeeee" if m else "white", family="monospace", fontsize=8)
        cell(ax, x, 4.3, str(m), "white", h=0.35, fontsize=8)
        down(ax, x, 4.1, 3.55)
    ax.text(xs[-1] + 0.8, 5.0, "input_ids (B, L)", va="center")
    ax.text(xs[-1] + 0.8, 4.3, "attention_mask (B, L)", va="center")
    ax.add_patch(FancyBboxPatch((-0.55, 2.65), xs[-1] + 1.1, 0.8, boxstyle="round,pad=0.02,rounding_size=0.1",
                                fc="#d7f5d7", ec="black"))
    ax.text(xs[-1] / 2, 3.05, "BERT: 3 layers, hidden 512, 8 heads; attention never looks at mask 0",
            ha="center", va="center")
    for k, x in enumerate(xs):
        down(ax, x, 2.6, 2.1)
        cell(ax, x, 1.85, f"$h_{k}$", "#c4efc4" if MASK[k] else "#f4f4f4")
    ax.text(xs[-1] + 0.8, 1.85, "states h (B, L, H)", va="center")
    # report vector from [CLS]
    down(ax, xs[0], 1.6, 0.35, "tab:green")
    cell(ax, xs[0], 0.1, "$t$", "#8fd98f")
    ax.text(xs[0], -0.35, "report vector\nLinear$_s(h_0)$", ha="center", va="top", fontsize=8)
    # word vectors after [CLS]
    for k, x in enumerate(xs[1:], start=1):
        down(ax, x, 1.6, 0.35, "tab:blue")
        real = MASK[k] == 1
        cell(ax, x, 0.1, f"$e_{k}$" if real else "0", "#cfe2ff" if real else "white")
    ax.text(xs[1] + 1.5 * STEP, -0.35, "word vectors $e_i$ = Linear$_w(h_i)$: words and [SEP]",
            ha="center", va="top", fontsize=8)
    ax.text(xs[5] + 0.5 * STEP, -0.35, "padding: zero rows", ha="center", va="top", fontsize=8)
    ax.text(xs[-1] + 0.8, 0.1, "words (B, L-1, D)\nlengths = mask.sum(1) - 1 = 4", va="center")
    ax.set(xlim=(-0.8, xs[-1] + 4.2), ylim=(-1.0, 5.5), aspect="equal")
    ax.axis("off")
    fig.tight_layout()
    save_svg(fig, out)


if __name__ == "__main__":
    main()
