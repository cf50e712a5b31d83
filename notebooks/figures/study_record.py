"""Figure for notebook 01: what one chest X-ray study holds. Frontal and lateral films, a report
in sections, the 14 CheXpert labels (1 / 0 / -1 / blank) read from it, and what SynthCXR adds:
the truth real data lacks (masks, boxes, the words that name each finding).

Run: .venv/bin/python notebooks/figures/study_record.py
Writes study_record.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import arrow, box, finish_diagram, plt
from matplotlib.patches import Ellipse, Rectangle

OUT = Path(__file__).with_suffix(".svg")

LABELS = [("Atelectasis", "blank"), ("Cardiomegaly", "0"), ("Pleural Effusion", "1"), ("Pneumonia", "-1"),
          ("...", ""), ("No Finding", "blank")]


def film(ax, x, y, w, h, lateral=False):
    """A stylised film: two lungs (frontal) or one side-on chest (lateral)."""
    ax.add_patch(Rectangle((x, y), w, h, fc="0.15", ec="black"))
    centres = [x + 0.5 * w] if lateral else [x + 0.3 * w, x + 0.7 * w]
    for cx in centres:
        ax.add_patch(Ellipse((cx, y + 0.5 * h), (0.6 if lateral else 0.32) * w, 0.7 * h, fc="0.55", ec="none"))


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.0))
    ax.text(0.0, 4.55, "one study", fontsize=11, weight="bold")
    film(ax, 0.0, 2.2, 1.6, 1.9)
    film(ax, 1.85, 2.2, 1.3, 1.9, lateral=True)
    ax.text(0.8, 2.05, "frontal (PA or AP)\npatient's right on the left", ha="center", va="top", fontsize=8)
    ax.text(2.5, 2.05, "lateral\n(often missing)", ha="center", va="top", fontsize=8)
    box(ax, 3.6, 1.6, 3.3, 2.5, "", "white")
    ax.text(3.75, 3.85, "FINDINGS:", fontsize=8, weight="bold", va="top")
    ax.text(3.75, 3.55, "Small right pleural effusion.\nNo pneumothorax. Possible\nright basal pneumonia.",
            fontsize=8, va="top")
    ax.text(3.75, 2.35, "IMPRESSION:", fontsize=8, weight="bold", va="top")
    ax.text(3.75, 2.05, "1. Small right effusion.", fontsize=8, va="top")
    ax.text(5.25, 4.2, "the report, in sections", ha="center", fontsize=8)
    arrow(ax, (6.95, 2.85), (7.5, 2.85))
    ax.text(7.22, 2.7, "labeller", ha="center", va="top", fontsize=7)
    for k, (name, value) in enumerate(LABELS):
        y = 3.9 - 0.42 * k
        ax.text(7.6, y, name, fontsize=8, va="center")
        ax.text(9.7, y, value, fontsize=8, va="center", ha="right", weight="bold")
    ax.text(8.6, 4.3, "14 CheXpert labels", ha="center", fontsize=8)
    ax.text(7.6, 1.25, "1 positive, 0 negative,\n-1 uncertain, blank: not mentioned", fontsize=7, va="center")
    box(ax, 0.0, 0.0, 9.8, 0.65, "SynthCXR adds the truth real data lacks: for each finding its mask, its box "
        "and the words of the report that name it", "#fff1c2", fontsize=8)
    finish_diagram(fig, ax, (-0.1, 10.0), (-0.1, 4.8), out)


if __name__ == "__main__":
    main()
