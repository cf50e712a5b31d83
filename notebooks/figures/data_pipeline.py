"""Figure for notebook 02: from files on disk to one training batch. A folder of studies, the
manifest (one record per study), the Dataset (image transforms, the report text), the tokenizer,
and collate, which pads the token ids into one batch of tensors.

Run: .venv/bin/python notebooks/figures/data_pipeline.py
Writes data_pipeline.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import arrow, box, finish_diagram, plt

OUT = Path(__file__).with_suffix(".svg")
FILES, TABLE, ITEM, BATCH = "#eeeeee", "#fff1c2", "#cfe2ff", "#d7f5d7"


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 3.4))
    box(ax, 0.0, 1.2, 1.9, 1.6, "files\nimages/*.png\nreports, labels\n(section 1)", FILES, fontsize=8)
    box(ax, 2.5, 1.2, 2.0, 1.6, "manifest\none record per study\n(datasets table,\nsections 1-2)", TABLE, fontsize=8)
    box(ax, 5.1, 2.2, 2.2, 1.0, "image transforms\n-> (1, H, W) in [-1, 1]\n(section 4)", ITEM, fontsize=8)
    box(ax, 5.1, 0.6, 2.2, 1.0, "tokenizer\ntext -> [CLS] w1 .. wn [SEP]\n(section 3)", ITEM, fontsize=8)
    box(ax, 7.9, 1.2, 1.5, 1.6, "collate\npad to the\nlongest report\n(section 5)", BATCH, fontsize=8)
    box(ax, 10.0, 0.8, 2.5, 2.4, "one batch\nimages (B, 1, H, W)\ninput_ids (B, L)\nattention_mask (B, L)\n"
        "labels, study ids, ...", BATCH, fontsize=8)
    arrow(ax, (1.9, 2.0), (2.5, 2.0), "read")
    arrow(ax, (4.5, 2.2), (5.1, 2.7))
    arrow(ax, (4.5, 1.8), (5.1, 1.1))
    arrow(ax, (7.3, 2.7), (7.9, 2.2))
    arrow(ax, (7.3, 1.1), (7.9, 1.8))
    arrow(ax, (9.4, 2.0), (10.0, 2.0))
    ax.text(6.2, 3.45, "Dataset: one study -> one item", ha="center", fontsize=8, color="0.3")
    ax.text(8.65, 0.75, "DataLoader: B items\n-> one batch", ha="center", va="top", fontsize=8, color="0.3")
    finish_diagram(fig, ax, (-0.1, 12.6), (0.0, 3.7), out)


if __name__ == "__main__":
    main()
