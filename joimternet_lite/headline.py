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
