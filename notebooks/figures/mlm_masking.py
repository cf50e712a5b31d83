"""Figure for notebook 04: BERT's masked-language-model masking. Of the real words, 15% are
picked (never a special token); a picked word becomes [MASK] 80% of the time, a random word 10%,
and stays 10%; the labels keep the original word at picked positions and -100 elsewhere.

Run: .venv/bin/python notebooks/figures/mlm_masking.py
Writes mlm_masking.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import box, finish_diagram, plt
from matplotlib.patches import Rectangle

OUT = Path(__file__).with_suffix(".svg")

TOKENS = ["[CLS]", "small", "left", "pleural", "effusion", "no", "nodule", "[SEP]", "[PAD]"]
MASKED = ["[CLS]", "small", "[MASK]", "pleural", "effusion", "heart", "nodule", "[SEP]", "[PAD]"]
LABELS = ["-100", "-100", "left", "-100", "effusion", "no", "-100", "-100", "-100"]
PICKED = {2: "#ffd6d6", 4: "#d7f5d7", 5: "#fff1c2"}   # position -> colour of its action
SPECIAL = {0, 7, 8}
CELL = 1.25


def row(ax, y, words, title, highlight=True):
    ax.text(-0.2, y + 0.25, title, ha="right", va="center", fontsize=8)
    for k, word in enumerate(words):
        fc = PICKED.get(k, "white") if highlight else ("0.88" if k in SPECIAL else "white")
        ax.add_patch(Rectangle((k * CELL, y), CELL - 0.08, 0.5, fc=fc, ec="black", lw=0.8))
        ax.text(k * CELL + CELL / 2 - 0.04, y + 0.25, word, ha="center", va="center", fontsize=7)


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 3.0))
    row(ax, 2.2, TOKENS, "input_ids", highlight=False)
    row(ax, 1.2, MASKED, "masked input", highlight=True)
    row(ax, 0.2, LABELS, "labels", highlight=True)
    ax.text(0.0, 2.95, "grey: special tokens, never picked; each real word is picked with probability 0.15",
            fontsize=8, color="0.3")
    box(ax, 11.5, 1.95, 3.1, 0.55, "picked -> [MASK] (80%)", PICKED[2], fontsize=8)
    box(ax, 11.5, 1.2, 3.1, 0.55, "picked, kept as is (10%)", PICKED[4], fontsize=8)
    box(ax, 11.5, 0.45, 3.1, 0.55, "picked -> random word (10%)", PICKED[5], fontsize=8)
    ax.text(11.5, 0.1, "loss: cross-entropy at the\npicked positions only (-100: ignored)", fontsize=7, va="top")
    finish_diagram(fig, ax, (-2.3, 14.8), (-0.5, 3.2), out)


if __name__ == "__main__":
    main()
