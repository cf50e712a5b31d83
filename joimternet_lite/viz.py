"""Figures: the SynthCXR contact sheet (more figures join this module with the demo report).

Taught in notebook 01. Matplotlib with the non-interactive Agg backend, so figures render on
headless machines and in CI.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .data.schema import load_manifest, resolve_image_path  # noqa: E402

_FINDING_COLOURS = ("#ff5555", "#55aaff", "#ffcc00", "#66dd66", "#ff88ff", "#ffa040")


def contact_sheet(manifest_root: str | Path, out_png: str | Path, n: int = 16, columns: int = 4,
                  wrap: int = 46) -> Path:
    """Save a grid of the first ``n`` studies: each film with its labelled finding boxes (when the
    manifest has ``findings_gt``) and, beside it, its report text. Returns ``out_png``."""
    ds = load_manifest(manifest_root)
    n = min(n, len(ds))
    if n == 0:
        raise ValueError(f"{manifest_root}: the manifest is empty; nothing to draw")
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(7.0 * columns, 4.2 * rows),
                             gridspec_kw={"width_ratios": [1, 0.95] * columns})
    axes = axes.reshape(rows, 2 * columns)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        record = ds[i]
        image_ax, text_ax = axes[i // columns, 2 * (i % columns)], axes[i // columns, 2 * (i % columns) + 1]
        _draw_study(image_ax, record, Path(manifest_root))
        _draw_report(text_ax, record, wrap)
    fig.tight_layout(pad=0.4, w_pad=0.2, h_pad=0.6)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out_png


def _draw_study(ax, record: dict, root: Path) -> None:
    image = Image.open(resolve_image_path(root, record["image_paths"][0])).convert("L")
    width, height = image.size
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(record["study_id"], fontsize=9)
    for k, gt in enumerate(record.get("findings_gt") or []):
        x0, y0, x1, y1 = gt["box"]
        colour = _FINDING_COLOURS[k % len(_FINDING_COLOURS)]
        ax.add_patch(patches.Rectangle((x0 * width, y0 * height), (x1 - x0) * width, (y1 - y0) * height,
                                       fill=False, edgecolor=colour, linewidth=1.2))
        tag = gt["type"].replace("_", " ") + ("?" if gt.get("certainty") == -1 else "")
        ax.text(x0 * width, max(y0 * height - 2, 8), tag, color=colour, fontsize=7, va="bottom",
                bbox={"facecolor": "black", "alpha": 0.55, "pad": 0.5, "linewidth": 0})


def _draw_report(ax, record: dict, wrap: int) -> None:
    lines = textwrap.wrap("FINDINGS: " + record["findings"], wrap)
    lines += textwrap.wrap("IMPRESSION: " + record["impression"], wrap)
    ax.text(0.0, 1.0, "\n".join(lines[:22]), va="top", ha="left", fontsize=8, family="monospace",
            transform=ax.transAxes)
