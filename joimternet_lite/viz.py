"""Figures: the SynthCXR contact sheet (more figures join this module with the demo report).

Taught in notebook 01. The backend is left to matplotlib (inline in notebooks; Agg on headless
machines, which matplotlib picks itself when there is no display), and every figure is closed
after saving.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.patches as patches
import matplotlib.pyplot as plt

from .atomic import atomic_path
from .data.images import ImageReadError, read_image
from .data.schema import load_manifest, resolve_image_path

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
    ax.set_title(record["study_id"], fontsize=9)
    try:
        image = read_image(resolve_image_path(root, record["image_paths"][0]))
    except ImageReadError as err:  # the sheet still shows the study, and says why it has no film
        ax.text(0.0, 0.5, textwrap.fill(f"unreadable image: {err}", 40), fontsize=7, color="#cc0000",
                transform=ax.transAxes, va="center")
        return
    height, width = image.shape
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
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


# ----------------------------------------------------------------------------- demo report figures


def _save(fig, out_png: str | Path, metadata: dict[str, str] | None = None) -> Path:
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return out_png


def loss_curves(metrics_jsonl: str | Path, out_png: str | Path) -> Path:
    """Every logged loss term against the step, from a run's ``metrics.jsonl``. Taught in notebook 08."""
    import json

    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    terms = sorted({k for r in rows for k in r if k == "loss" or k.startswith(("ce_", "triplet_", "mlm"))})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name in terms:
        points = [(r["step"], r[name]) for r in rows if name in r]
        ax = axes[0] if name == "loss" else axes[1]
        ax.plot(*zip(*points, strict=True), label=name, lw=1.5 if name == "loss" else 1)
    axes[0].set_title("total loss")
    axes[1].set_title("loss terms")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return _save(fig, out_png)


def _eval_images(cfg, manifest, split: str = "test"):
    from .data.dataset import make_dataset

    return make_dataset(cfg, manifest, split, train=False)


def _show(ax, image, title: str = "", fontsize: int = 7) -> None:
    ax.imshow(image.squeeze(0).numpy(), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def _embedding_rows(embeddings) -> dict[int, int]:
    """Dataset index -> embedding row: studies the dataset could not read have no row."""
    return {int(index): row for row, index in enumerate(embeddings.index.tolist())}


STOP_WORDS = ("the", "of", "and", "is", "in", "with", "at", "there")  # attention_examples draws one


def attention_examples(model, tokenizer, manifest, embeddings, cfg, out_png: str | Path, device,
                       studies: int = 2, max_words: int = 6) -> Path:
    """For test studies with a positive finding: the image with the finding's box, then the maps of
    each word of the finding's phrase and of one stop word of the report, upsampled over the image:
    alpha rows first, then raw rows, each kind on one colour scale with its colourbar (a map's share
    of its mass per cell), so a stop word and a finding word compare at a glance. Taught in notebook 11."""
    from .data.tokenizer import split_words
    from .evaluate.grounding import word_maps_for

    images = _eval_images(cfg, manifest)
    rows = manifest.filter(lambda s: s == "test", input_columns="split")  # the dataset's order, all columns
    row_of = _embedding_rows(embeddings)
    picked = [(i, row) for i, row in enumerate(rows) if row.get("findings_gt") and i in row_of][:studies]
    if not picked:
        return _save(plt.figure(), out_png)
    panels = {"alpha": [], "raw": []}  # kind -> [(title, image, box, [(word, (R,) map) ...])]
    for i, row in picked:
        gt = row["findings_gt"][0]
        names = [w for w, _ in split_words(row["text"])]
        stop = next((k for k, w in enumerate(names) if w in STOP_WORDS and k not in gt["phrase_words"]), None)
        words = gt["phrase_words"][:max_words] + ([stop] if stop is not None else [])
        for kind, found in panels.items():
            maps = word_maps_for(model, tokenizer, embeddings.images.regions, [(row_of[i], row["text"])], kind, device)[0]
            shown = [(f"'{names[k]}'" + (" (stop word)" if k == stop else ""), maps[k]) for k in words
                     if k < maps.shape[0]]
            found.append((f"{row['study_id']} ({kind})\n{gt['type']}", images[i]["image"], gt["box"], shown))
    columns = 1 + max(len(shown) for found in panels.values() for *_, shown in found)
    fig, axes = plt.subplots(2 * len(picked), columns, figsize=(1.8 * columns + 1.0, 2.0 * 2 * len(picked)),
                             squeeze=False)
    for k, (kind, found) in enumerate(panels.items()):
        group = axes[k * len(picked):(k + 1) * len(picked)]
        top = max(float(m.max()) for *_, shown in found for _, m in shown)
        for axes_row, (title, image, box, shown) in zip(group, found, strict=True):
            drawn = _draw_word_maps(axes_row, title, image, box, shown, model.grid, top)
        fig.colorbar(drawn, ax=group.ravel().tolist(), shrink=0.8, label=f"{kind}: share of the map per cell")
    return _save(fig, out_png)


def _draw_word_maps(axes_row, title: str, image, box, shown, grid, top: float):
    """One figure row: the image and its box, then each (word, (R,) map) on the scale [0, top]."""
    size = image.shape[-1]
    x0, y0, x1, y1 = (v * size for v in box)
    _show(axes_row[0], image, title)
    for ax, (word, heat) in zip(axes_row[1:], shown, strict=False):
        _show(ax, image, word)
        drawn = ax.imshow(heat.reshape(grid).numpy(), cmap="inferno", alpha=0.6, vmin=0.0, vmax=top,
                          extent=(0, size, size, 0), interpolation="nearest")
    for ax in axes_row[:len(shown) + 1]:
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#ff5555", lw=0.8))
    for ax in axes_row[len(shown) + 1:]:
        ax.axis("off")
    return drawn


def query_panel(search: dict, embeddings, manifest, cfg, out_png: str | Path, top: int = 5,
                queries=("left pleural effusion", "right pneumothorax", "cardiomegaly", "pacemaker")) -> Path:
    """Query -> its top images (``evaluate.finding_search.search_precision``'s ranking), framed green
    when relevant, red when not. Taught with the search command (docs/API.md)."""
    images = _eval_images(cfg, manifest)
    index_of = dict(zip(embeddings.study_ids, embeddings.index.tolist(), strict=True))
    chosen = [q for q in search["queries"] if q["query"] in queries] or search["queries"][:len(queries)]
    fig, axes = plt.subplots(len(chosen), top + 1, figsize=(1.9 * (top + 1), 2.1 * len(chosen)), squeeze=False)
    for axes_row, q in zip(axes, chosen, strict=True):
        axes_row[0].text(0, 0.5, textwrap.fill(f"'{q['query']}'\nP@{search['k']} {q['precision']:.2f}, "
                                               f"prevalence {q['prevalence']:.2f}", 22), va="center", fontsize=8)
        axes_row[0].axis("off")
        for rank, ax in enumerate(axes_row[1:]):
            if rank >= len(q["top"]):
                ax.axis("off")
                continue
            _show(ax, images[int(index_of[q["top"][rank]])]["image"], f"#{rank + 1} {q['top'][rank]}")
            colour = "#33cc33" if q["top_relevant"][rank] else "#ee3333"
            ax.add_patch(patches.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec=colour, lw=3))
    return _save(fig, out_png)


def retrieval_grid(embeddings, manifest, cfg, out_png: str | Path, queries: int = 4, top: int = 5) -> Path:
    """Report -> image retrieval by global cosine: each query report, then its top images; the
    study's own image is framed green. Taught in notebook 09."""
    from .models.similarity import global_similarity

    images = _eval_images(cfg, manifest)
    sim = global_similarity(embeddings.images.image_vectors, embeddings.reports.report_vectors).T  # reports x images
    queries, top = min(queries, sim.shape[0]), min(top, sim.shape[1])
    fig, axes = plt.subplots(queries, top + 1, figsize=(2.0 * (top + 1), 2.3 * queries), squeeze=False)
    for q in range(queries):
        axes[q, 0].text(0, 1, textwrap.fill(embeddings.texts[q], 34), va="top", fontsize=6, wrap=True)
        axes[q, 0].axis("off")
        for rank, j in enumerate(sim[q].argsort(descending=True)[:top].tolist()):
            ax = axes[q, rank + 1]
            _show(ax, images[int(embeddings.index[j])]["image"], f"#{rank + 1}  {float(sim[q, j]):.2f}")
            if j == q:
                ax.add_patch(patches.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec="#33cc33", lw=3))
    return _save(fig, out_png)


def word_map_figure(image, words: list[str], maps, kind: str, title: str = "", columns: int = 6):
    """The image, then each word's map (W, gh, gw) upsampled over it; image (1, S, S) in [-1, 1].

    Used by ``ImageTextInference.plot_word_maps`` and ``python -m joimternet_lite ground``; notebook 11
    draws the same overlay by hand. Returns the open Figure (save it with ``save_figure``).
    """
    size = image.shape[-1]
    panels = len(words) + 1
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, min(panels, columns), figsize=(1.9 * min(panels, columns), 2.1 * rows),
                             squeeze=False)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    _show(axes.flat[0], image, textwrap.fill(title, 28) or "image", fontsize=7)
    for ax, word, heat in zip(axes.flat[1:], words, maps, strict=False):
        _show(ax, image, f"'{word}' ({kind})")
        ax.imshow(heat.float().numpy(), cmap="inferno", alpha=0.55, extent=(0, size, size, 0), interpolation="nearest")
    return fig


def save_figure(fig, out_png: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``fig`` as a PNG atomically and close it; ``metadata`` adds PNG text chunks (key: text)."""
    return _save(fig, out_png, metadata)
