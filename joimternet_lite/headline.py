"""The headline metrics of an evaluation: the rows that the demo report and the model card show,
trained beside untrained. Plain dict reading, so that any layer may use it.

Taught in notebook 09 (retrieval) and 10 (classification); ``results.json`` holds the full tables.
"""

from __future__ import annotations


def improvement_checks(trained: dict, baseline: dict) -> list[tuple[str, float, float]]:
    """(metric, trained, untrained) for the headline metrics of the report."""
    def pick(rows, direction, scoring):
        return next(r for r in rows if r["direction"] == direction and r["scoring"] == scoring
                    and r["relevance"] == "instance")

    checks = []
    for direction in ("image->report", "report->image"):
        for scoring in ("global", "local"):
            t, b = pick(trained["retrieval"], direction, scoring), pick(baseline["retrieval"], direction, scoring)
            checks.append((f"retrieval {direction} {scoring} R@10", t["R@10"], b["R@10"]))
    checks.append(("classification mean AUROC (linear probe)", trained["classification"][0]["mean"],
                   baseline["classification"][0]["mean"]))
    if "grounding" in trained:
        def hit(rows):
            return next(r["hit"] for r in rows if r["kind"] == "raw" and r["words"] == "phrase" and r["type"] == "all")
        checks.append(("grounding pointing (raw map, phrase, all findings)", hit(trained["grounding"]),
                       hit(baseline["grounding"])))
    return checks
