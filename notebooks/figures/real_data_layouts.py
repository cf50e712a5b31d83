"""Figure for notebook 12: the folder layouts of the two real datasets, as downloaded, and what
`prepare` turns each into (the course's manifest folder).

Run: .venv/bin/python notebooks/figures/real_data_layouts.py
Writes real_data_layouts.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import arrow, box, finish_diagram, plt

OUT = Path(__file__).with_suffix(".svg")

OPENI = """openi_raw/
├── ecgen-radiology/          one XML per report
│   ├── 1.xml                 FINDINGS, IMPRESSION,
│   └── 2.xml ...             MeSH terms, image ids
└── NLMCXR_png/               one PNG per film
    ├── CXR1_1_IM-0001-3001.png
    └── CXR1_1_IM-0001-4001.png ...
  (or Kaggle: indiana_reports.csv,
   indiana_projections.csv, images_normalized/)"""

MIMIC = """mimic-cxr-jpg/
├── files/p10/p10000032/      p + first 2 digits / patient
│   ├── s50414267/            one folder per study
│   │   └── 02aa804e-....jpg  one JPG per image
│   └── s50414267.txt         the free-text report
├── mimic-cxr-2.0.0-metadata.csv    view of each image
├── mimic-cxr-2.0.0-split.csv       official split
└── mimic-cxr-2.0.0-chexpert.csv    labels 1/0/-1/blank"""

MANIFEST = """data/openi or data/mimic/
├── manifest/      one row per study: id, text,
│                  image paths, views, labels, split
├── manifest.json  how it was prepared
├── summary.json   counts
└── skips.jsonl    what was left out, and why"""


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(12, 4.6))
    box(ax, 0.0, 2.4, 5.6, 2.6, "", fc="#eef5ff")
    ax.text(0.15, 4.85, "OpenI (public, NLM)", fontsize=9, weight="bold", va="top")
    ax.text(0.15, 4.5, OPENI, family="monospace", fontsize=7, va="top")
    box(ax, 0.0, -0.6, 5.6, 2.7, "", fc="#fff4e6")
    ax.text(0.15, 1.95, "MIMIC-CXR-JPG (credentialed, PhysioNet)", fontsize=9, weight="bold", va="top")
    ax.text(0.15, 1.6, MIMIC, family="monospace", fontsize=7, va="top")
    box(ax, 7.6, 0.9, 4.3, 2.0, "", fc="#eefbea")
    ax.text(7.75, 2.75, "the course's manifest folder", fontsize=9, weight="bold", va="top")
    ax.text(7.75, 2.4, MANIFEST, family="monospace", fontsize=7, va="top")
    arrow(ax, (5.7, 3.7), (7.5, 2.3), "prepare openi")
    arrow(ax, (5.7, 0.7), (7.5, 1.4), "prepare mimic-cxr")
    finish_diagram(fig, ax, (-0.1, 12.0), (-0.7, 5.1), out)


if __name__ == "__main__":
    main()
