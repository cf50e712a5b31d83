"""The headline metrics of an evaluation: the rows that the demo report and the model card show,
trained beside untrained, and ``results.json``'s ``headline`` block. Plain dict reading, so that any
layer may use it.

Taught in notebook 09 (retrieval) and 10 (classification); ``results.json`` holds the full tables.
"""

from __future__ import annotations


def _retrieval(rows, direction, scoring):
    return next(r for r in rows if r["direction"] == direction and r["scoring"] == scoring
                and r["relevance"] == "instance")


def _overall(rows, kind, words, value):
    """``value`` of the summary row (kind, words, all findings); None when there is none."""
    return next((r.get(value) for r in rows if r["kind"] == kind and r["words"] == words and r["type"] == "all"),
                None)


HEADLINE_MAP = ("alpha", "phrase alone")  # the maps ``ground`` draws by default (its --kind), for a phrase typed alone


def headline(results: dict) -> dict:
    """The ``headline`` block of ``results.json`` for one model's ``evaluate_model`` results.

    Grounding keys read the maps ``ground`` draws (alpha, each finding's phrase typed alone):
    ``paired_phrase`` and ``left_right`` (chance 0.5), ``pointing`` and ``pointing_best_control``
    (the better of the blind map and the model's own mean map over unrelated sentences, on the same
    findings). ``i2r_global_r10``: image -> report R@10 (global, instance relevance, percent);
    ``probe_auroc``: the linear probe's mean AUROC; ``search_p10``: mean precision@10 of the finding
    queries (``evaluate.finding_search``). Keys a dataset cannot measure (no ground truth) are None.
    """
    return {key: value for key, (value, _) in _headline_with_intervals(results).items()}


def headline_intervals(results: dict) -> dict:
    """The headline keys -> (low, high): the 95 % bootstrap interval over test studies where the
    evaluation computed one (grounding keys, probe_auroc), else None."""
    return {key: interval for key, (_, interval) in _headline_with_intervals(results).items()}


def _headline_with_intervals(results: dict) -> dict:
    kind, words = HEADLINE_MAP
    grounding = results.get("grounding", [])

    def grounding_key(rows, kind, words, value):
        low, high = (_overall(rows, kind, words, f"{value}_{end}") for end in ("low", "high"))
        return _overall(rows, kind, words, value), None if low is None else (low, high)

    controls = [grounding_key(grounding, "blind", words, "hit"),
                grounding_key(grounding, f"{kind} control", "unrelated", "hit")]
    controls = [c for c in controls if c[0] is not None]
    probe, search = results["classification"][0], results.get("search")
    return {
        "paired_phrase": grounding_key(results.get("paired_phrase", []), kind, words, "paired"),
        "pointing": grounding_key(grounding, kind, words, "hit"),
        "pointing_best_control": max(controls, key=lambda c: c[0]) if controls else (None, None),
        "left_right": grounding_key(results.get("laterality_swap", []), kind, words, "left_right"),
        "i2r_global_r10": (_retrieval(results["retrieval"], "image->report", "global")["R@10"], None),
        "probe_auroc": (probe["mean"], (probe["mean_ci_low"], probe["mean_ci_high"]) if "mean_ci_low" in probe
                        else None),
        "search_p10": (search["mean_precision"] if search else None, None),
    }


# The headline block of the shipped demo presets trained with seeds 42, 43 and 44 (600 steps, the
# SynthCXR demo data, one torch thread; bench/RESULTS.md, "Grounding controls and finding search"
# and "Local alignment options"). A run is one more draw around that spread, not bounded by it.
RECORDED_SEEDS = (42, 43, 44)
RECORDED_HEADLINES = {
    "demo_grounding": {"paired_phrase": (0.750, 0.721, 0.700), "pointing": (0.390, 0.320, 0.156),
                       "pointing_best_control": (0.225, 0.173, 0.108), "left_right": (0.930, 0.901, 0.803),
                       "i2r_global_r10": (37.0, 49.5, 39.5), "probe_auroc": (0.877, 0.887, 0.868),
                       "search_p10": (0.238, 0.262, 0.254)},
    "demo_cpu": {"paired_phrase": (0.436, 0.600, 0.621), "pointing": (0.096, 0.072, 0.233),
                 "pointing_best_control": (0.338, 0.411, 0.476), "left_right": (0.549, 0.486, 0.613),
                 "i2r_global_r10": (41.0, 40.5, 35.0), "probe_auroc": (0.868, 0.873, 0.868),
                 "search_p10": (0.262, 0.223, 0.215)},
}


def seed_spread(preset: str) -> dict[str, dict] | None:
    """The recorded headline of ``preset`` over :data:`RECORDED_SEEDS`: key -> ``mean``, ``sd``
    (sample), ``worst`` (the highest for the control, the lowest otherwise), ``low`` and ``high``;
    None for a preset without a record."""
    record = RECORDED_HEADLINES.get(preset)
    if record is None:
        return None
    out = {}
    for key, values in record.items():
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        worst = max(values) if key == "pointing_best_control" else min(values)
        out[key] = {"mean": mean, "sd": sd, "worst": worst, "low": min(values), "high": max(values)}
    return out


def improvement_checks(trained: dict, baseline: dict) -> list[tuple[str, float, float]]:
    """(metric, trained, untrained) for the headline metrics of the report."""
    checks = []
    for direction in ("image->report", "report->image"):
        for scoring in ("global", "local"):
            t, b = (_retrieval(r["retrieval"], direction, scoring) for r in (trained, baseline))
            checks.append((f"retrieval {direction} {scoring} R@10", t["R@10"], b["R@10"]))
    checks.append(("classification mean AUROC (linear probe)", trained["classification"][0]["mean"],
                   baseline["classification"][0]["mean"]))
    if "grounding" in trained:
        checks.append(("grounding pointing (raw map, phrase, all findings)",
                       *(_overall(r["grounding"], "raw", "phrase", "hit") for r in (trained, baseline))))
    return checks
