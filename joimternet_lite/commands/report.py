"""The demo report: markdown tables (trained vs untrained, with the protocol of every number) and
PNG figures. Written by ``make demo`` to ``runs/demo/report.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..atomic import atomic_write_text
from ..config import Config, flatten, to_dict
from ..headline import (
    HEADLINE_MAP,
    RECORDED_SEEDS,
    headline,
    headline_intervals,
    improvement_checks,
    seed_spread,
)
from ..markdown import format_cell, markdown_table

RETRIEVAL_METRICS = ("R@1", "R@5", "R@10", "mrr")


def retrieval_table(trained: list[dict], baseline: list[dict]) -> str:
    """Rows (direction, scoring, relevance); trained and untrained side by side; ceilings last."""
    base = {(r["direction"], r["scoring"], r["relevance"]): r for r in baseline}
    rows = []
    for r in sorted(trained, key=lambda r: (r["scoring"].startswith("ceiling"), r["direction"], r["relevance"],
                                            r["scoring"])):
        b = base.get((r["direction"], r["scoring"], r["relevance"]))
        is_ceiling = r["scoring"].startswith("ceiling")
        rows.append([r["direction"], r["scoring"], r["relevance"], r["pool_size"]]
                    + [r[m] for m in RETRIEVAL_METRICS]
                    + ([None] * len(RETRIEVAL_METRICS) if is_ceiling or b is None else [b[m] for m in RETRIEVAL_METRICS]))
    header = ["direction", "scoring", "relevance", "pool"] + [f"{m}" for m in RETRIEVAL_METRICS] + \
        [f"untrained {m}" for m in RETRIEVAL_METRICS]
    return markdown_table(header, rows)


def classification_table(trained: dict, baseline: dict) -> str:
    names = [k.split("/", 1)[1] for k in trained if k.startswith("auroc/") and not math.isnan(trained[k])]
    rows = [[n, trained[f"auroc/{n}"], baseline[f"auroc/{n}"]] for n in names]
    rows.append([f"**mean ({trained['classes_used']} classes, No Finding excluded)**", trained["mean"], baseline["mean"]])
    rows.append(["weighted mean", trained["weighted_mean"], baseline["weighted_mean"]])
    table = markdown_table(["class", "trained AUROC", "untrained AUROC"], rows)
    if "mean_ci_low" in trained:
        table += (f"\n\n95% bootstrap interval ({trained['n_boot']} resamples of the test studies, seed "
                  f"{trained['seed']}) of the mean: trained [{format_cell(trained['mean_ci_low'])}, "
                  f"{format_cell(trained['mean_ci_high'])}], untrained [{format_cell(baseline.get('mean_ci_low'))}, "
                  f"{format_cell(baseline.get('mean_ci_high'))}].")
    return table


def with_interval(row: dict, value: str) -> str:
    """``value`` of a summary row with its bootstrap interval over studies, when it has one."""
    text = format_cell(row.get(value))
    low, high = row.get(f"{value}_low"), row.get(f"{value}_high")
    return text if low is None or math.isnan(low) else f"{text} [{format_cell(low)}, {format_cell(high)}]"


def grounding_table(trained: list[dict], baseline: list[dict]) -> str:
    """All findings: every map and word set, trained (with intervals) beside untrained."""
    base = {(r["kind"], r["words"], r["type"]): r for r in baseline}
    rows = []
    for r in (r for r in trained if r["type"] == "all"):
        b = base.get((r["kind"], r["words"], r["type"]), {})
        rows.append([r["kind"], r["words"], r["n"], with_interval(r, "hit"), b.get("hit"), r["chance"],
                     with_interval(r, "mass"), b.get("mass"), with_interval(r, "cnr"), with_interval(r, "cnr_abs"),
                     with_interval(r, "miou"), b.get("miou")])
    return markdown_table(["map", "words", "n", "pointing", "untrained pointing", "chance", "mass in mask",
                           "untrained mass", "CNR", "abs CNR", "mIoU", "untrained mIoU"], rows)


def grounding_by_type_table(trained: list[dict], kind: str, words: str) -> str:
    """One map and word set, per finding type: pointing, its chance, mass and mIoU."""
    rows = [[r["type"], r["n"], with_interval(r, "hit"), r["chance"], with_interval(r, "mass"), with_interval(r, "miou")]
            for r in trained if r["kind"] == kind and r["words"] == words]
    return markdown_table(["finding", "n", "pointing", "chance", "mass in mask", "mIoU"], rows)


def controls_table(trained: dict, baseline: dict) -> str:
    """The paired-phrase and left/right tests of every map, trained (intervals) beside untrained."""
    def index(rows):
        return {(r["kind"], r["words"]): r for r in rows}

    paired, swap = index(trained["paired_phrase"]), index(trained["laterality_swap"])
    base_paired, base_swap = index(baseline["paired_phrase"]), index(baseline["laterality_swap"])
    rows = []
    for key in sorted(set(paired) | set(swap)):
        p, s = paired.get(key, {}), swap.get(key, {})
        rows.append([*key, p.get("n"), with_interval(p, "paired"), base_paired.get(key, {}).get("paired"),
                     s.get("n"), with_interval(s, "left_right"), base_swap.get(key, {}).get("left_right")])
    return markdown_table(["map", "words", "pairs", "paired-phrase test", "untrained", "lateral findings",
                           "left/right test", "untrained"], rows)


def swap_table(rows: list[dict]) -> str:
    return markdown_table(["map", "words", "n", "mass on finding", "mass on mirror", "after swap: on finding",
                           "after swap: on mirror", "moved to mirror"],
                          [[r["kind"], r["words"], r["n"], r["mass_true_before"], r["mass_mirror_before"],
                            r["mass_true_after"], r["mass_mirror_after"], r["moved"]] for r in rows])


def headline_table(trained: dict, baseline: dict, spread: dict | None = None) -> str:
    """results.json's ``headline`` block, trained (with its interval where there is one) beside untrained,
    and, given the preset's recorded ``spread`` (``headline.seed_spread``), the seeds' mean ± sd
    (worst seed) and whether this run lies inside the seeds' range."""
    t, b, ci = headline(trained), headline(baseline), headline_intervals(trained)
    header = ["key", "trained", "95 % interval (studies)", "untrained"]
    rows = [[k, t[k], None if ci[k] is None else f"[{format_cell(ci[k][0])}, {format_cell(ci[k][1])}]", b[k]]
            for k in t]
    if spread:
        header += [f"seeds {', '.join(map(str, RECORDED_SEEDS))}: mean ± sd (worst)", "this run inside their range"]
        for row, key in zip(rows, t, strict=True):
            s = spread[key]
            inside = None if t[key] is None else ("yes" if s["low"] <= t[key] <= s["high"] else "no")
            row += [f"{format_cell(s['mean'])} ± {format_cell(s['sd'])} ({format_cell(s['worst'])})", inside]
    return markdown_table(header, rows)


def search_table(trained: dict, baseline: dict) -> str:
    base = {q["query"]: q["precision"] for q in baseline["search"]["queries"]}
    rows = [[q["query"], q["relevant"], q["prevalence"], q["precision"], base.get(q["query"])]
            for q in trained["search"]["queries"]]
    rows.append(["**mean**", None, trained["search"]["mean_prevalence"], trained["search"]["mean_precision"],
                 baseline["search"]["mean_precision"]])
    k = trained["search"]["k"]
    return markdown_table(["query", "relevant images", f"prevalence (random P@{k})", f"P@{k}", f"untrained P@{k}"],
                          rows)


def grounding_sections(trained: dict, baseline: dict, attention_png: Path, preset: str = "") -> list[str]:
    """The report's grounding: the controls and the attention figure first, then the full tables.
    ``preset``: the run's config name; a shipped demo preset's headline is set beside its recorded seeds."""
    kind, words = HEADLINE_MAP
    spread = seed_spread(preset)
    seeds_note = ("" if spread is None else f" The last two columns: the `{preset}` preset as shipped, trained "
                  f"with seeds {', '.join(map(str, RECORDED_SEEDS))} (bench/RESULTS.md). A run is one more draw: "
                  "it varies around that spread, and three seeds do not bound it (another thread count or "
                  "machine gives other weights). A run with other settings than the preset's is not that recipe.")
    return [
        "## Does the map read the words?\n\nA map that ignores the words (the same map for every phrase) "
        "scores exactly 0.5 on both tests below, whatever the image. **Paired-phrase test**: in a study with "
        "two findings whose footprints share no grid cell, finding A's phrase map must put more mass on A's "
        "footprint than finding B's phrase map does (every ordered pair; ties count 0.5). **Left/right "
        "test**: a left or right finding's phrase (one that names its side) must put more mass on the "
        "finding than the same phrase with left and right swapped. `phrase` reads the phrase inside its "
        "report, `phrase alone` types it alone as `ground` does; `alpha` are the maps `ground` draws. "
        "In brackets: 95 % bootstrap intervals over the test studies.\n\n" + controls_table(trained, baseline),
        f"![attention maps]({attention_png.name})\n\nEach study's finding: its phrase's words and one stop "
        "word in the report; `alpha` rows, then `raw` rows, each kind on one colour scale for all its words "
        "(its colourbar: a map's share of its mass per cell; a flat map is 1 / cells everywhere). The red "
        "box is the finding.",
        "## The headline block\n\n`results.json` holds it under `headline`. Grounding keys: the "
        f"`{kind}` map of each finding's phrase typed alone (`{words}`); `pointing_best_control` is the "
        "better pointing of two maps that read no finding word, on the same findings: the `blind` map (region "
        f"lengths) and `{kind} control` (the model's mean map over unrelated sentences). `search_p10`: "
        "the mean of the search table's P@10. Intervals: bootstrap over the test studies; R@10 and P@10 "
        f"have none here (the ablation table bootstraps R@10).{seeds_note}\n\n"
        + headline_table(trained, baseline, spread),
        "## Grounding\n\nFor each positive finding: the map of its head word, of its whole phrase "
        "(mean over the phrase's words) in the report, or of the phrase typed alone. `alpha` is the DAMSM "
        "attention; `raw` the word-region similarity softmaxed over regions; `blind` a baseline that reads no "
        "word (the image's region vector lengths); `<map> control` the model's mean map over a fixed set of "
        "unrelated sentences (`evaluate.grounding.UNRELATED_SENTENCES`), one map per image whatever the "
        "finding. Where a map scores no better than the controls, its hits come from the image, not from "
        "the words. Pointing: the map's maximum lies in the finding's mask; chance is the mask's share of "
        "the grid. CNR (signed, and absolute) and mIoU (thresholds 0.1 to 0.5) are MS-CXR's, on each map "
        "min-max normalised. All findings:\n\n" + grounding_table(trained["grounding"], baseline["grounding"])
        + f"\n\nPer finding type, `{kind}` map, `{words}`:\n\n"
        + grounding_by_type_table(trained["grounding"], kind, words),
        "### Laterality swap\n\nLeft and right swapped in the text, same image: how much of the phrase "
        "map moves to the mirrored finding.\n\n" + swap_table(trained["laterality_swap"]),
    ]


def write_report(cfg: Config, out_dir: Path, stats: dict, trained: dict, baseline: dict, model, tokenizer,
                 manifest, device, provenance: dict) -> Path:
    """Write ``report.md`` and ``results.json`` (and the figures) into ``out_dir``.

    ``provenance``: the checkpoint measured (``checkpoint``, ``step``, ``model_sha256``), the newer
    ones passed over (``skipped_checkpoints``), where the config came from (``config_from``) and
    the command-line settings the run's config overrode (``command_line_settings_ignored``).
    """
    from .. import viz

    out_dir = Path(out_dir)
    figures = {
        "loss curves": viz.loss_curves(out_dir / "metrics.jsonl", out_dir / "loss_curves.png"),
        "retrieval grid": viz.retrieval_grid(trained["embeddings"], manifest, cfg, out_dir / "retrieval_grid.png"),
        "contact sheet": out_dir / "contact_sheet.png",
    }
    checks = improvement_checks(trained, baseline)
    n_test = len(trained["embeddings"].study_ids)
    parts = [
        f"# JoImTeRNet-lite report: {cfg.name}",
        "Trained model against the same architecture untrained (same initialisation seed), on the "
        f"`{n_test}`-study test split of `{cfg.data.root}`, one image per study (the first frontal image).",
        recipe_line(cfg),
        checkpoint_section(provenance),
        "## Data\n\n```json\n" + json.dumps(stats, indent=2) + "\n```",
        skipped_studies_section(trained["skipped_studies"]),
        "## Headline: trained vs untrained\n\n" + markdown_table(
            ["metric", "trained", "untrained", "better"],
            [[name, t, b, "yes" if t > b else "**no**"] for name, t, b in checks]),
        "## Retrieval\n\nFull test pool; R@K in percent, ties counted against the model. `dedup` counts "
        "identical report texts as one; `ceiling` is a perfect model whose identical reports tie (ties "
        "against), `ceiling_random_ties` its expectation under random tie-breaking.\n\n"
        + retrieval_table(trained["retrieval"], baseline["retrieval"]),
        "## Classification\n\nLinear probe (logistic regression) on frozen global image vectors, fit on "
        f"the training split, uncertain labels as `{cfg.eval.uncertain_policy}`; per-class ROC-AUC on the "
        "test split (classes with both values only).\n\n"
        + classification_table(trained["classification"][0], baseline["classification"][0]),
    ]
    if "grounding" in trained:
        attention = viz.attention_examples(model, tokenizer, manifest, trained["embeddings"], cfg,
                                           out_dir / "attention_maps.png", device)
        parts += grounding_sections(trained, baseline, attention, cfg.name)
    if "search" in trained:
        panel = viz.query_panel(trained["search"], trained["embeddings"], manifest, cfg, out_dir / "search_top5.png")
        parts.append(f"## Search\n\nOne plain query per SynthCXR finding, each ranking the "
                     f"{trained['search']['images']} test images by the score `search` ranks with (global "
                     "cosine); relevant: the image holds the finding (on the query's side, when it names one). "
                     "Prevalence is what a random ranking scores.\n\n" + search_table(trained, baseline)
                     + f"\n\n![search top 5]({panel.name})\n\nThe top 5 images of four queries; green frame: "
                     "relevant, red: not.")
    parts.append("## Figures\n\n" + "\n\n".join(f"### {name}\n\n![{name}]({Path(p).name})"
                                                 for name, p in figures.items()))
    parts.append(f"## Configuration\n\nThe run's own, from `{provenance['config_from']}`; the evaluation "
                 "settings (`eval`) and the device are the command line's.\n\n```json\n"
                 + json.dumps(to_dict(cfg), indent=2) + "\n```")
    report = out_dir / "report.md"
    atomic_write_text(report, "\n\n".join(parts) + "\n")
    atomic_write_text(out_dir / "results.json", json.dumps(
        {"checkpoint": provenance, "headline": headline(trained), "headline_untrained": headline(baseline),
         "skipped_studies": trained["skipped_studies"], "trained": _jsonable(trained),
         "untrained": _jsonable(baseline), "checks": checks}, indent=2))
    return report


def _jsonable(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("embeddings", "skipped_studies", "grounding_rows")}


def checkpoint_section(provenance: dict) -> str:
    """Which weights the report measured, and every newer checkpoint passed over with its reason."""
    text = (f"## Checkpoint\n\nWeights of step {provenance['step']}: `{provenance['checkpoint']}`, "
            f"model.safetensors sha256 `{provenance['model_sha256']}`.")
    skipped = provenance["skipped_checkpoints"]
    if skipped:
        text += ("\n\n**Newer checkpoints passed over** (they failed verification):\n\n"
                 + markdown_table(["checkpoint", "reason"], [[s["checkpoint"], s["reason"]] for s in skipped]))
    else:
        text += " No newer checkpoint was passed over."
    ignored = provenance["command_line_settings_ignored"]
    if ignored:
        text += ("\n\nSettings given on the command line that differ from the run's (the run's values are "
                 "used): " + ", ".join(f"`{k}`" for k in ignored) + ".")
    return text


# The settings of the local alignment whose defaults are the paper's (the authors' DAMSM).
LOCAL_RECIPE_KEYS = ("model.score.word_softmax", "model.score.cosine_scale", "model.score.gamma1",
                     "model.score.gamma2", "model.null_region", "model.text.local_units", "model.text.local_words",
                     "loss.use_local", "loss.weight_fine_grained")


def recipe_line(cfg) -> str:
    """One sentence: the run's local alignment, and each setting where it leaves the paper's."""
    run, paper = flatten(to_dict(cfg)), flatten(to_dict(Config()))
    changed = [f"`{k}={run[k]}` (paper: {paper[k]})" for k in LOCAL_RECIPE_KEYS if run[k] != paper[k]]
    if not changed:
        return f"Recipe: `{cfg.name}`, the paper's local alignment (DAMSM, as the authors' code)."
    return f"Recipe: `{cfg.name}`, whose local alignment leaves the paper's in " + ", ".join(changed) + "."


def skipped_studies_section(skipped: dict, listed: int = 20) -> str:
    """How many studies of each split the evaluation left out (no frontal image, or an image it could
    not read), and the first ``listed`` of them with their reasons."""
    lines = [f"- {split}: {len(s['skipped'])} of {s['studies']} studies skipped" for split, s in skipped.items()]
    rows = [[split, item["study_id"], item["reason"]] for split, s in skipped.items() for item in s["skipped"]]
    text = ("## Skipped studies\n\nStudies without a frontal image (left out by design) and studies whose "
            "image could not be read are left out of every number; the reason column says which.\n\n")
    text += "\n".join(lines)
    if rows:
        more = f" (the first {listed} of {len(rows)}; all in results.json)" if len(rows) > listed else ""
        text += f"\n\nSkipped{more}:\n\n" + markdown_table(["split", "study", "reason"], rows[:listed])
    return text
