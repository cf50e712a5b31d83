"""The headline block and the report's grounding tables, from hand-made evaluation results."""

import math

import pytest

from joimternet_lite.commands.report import controls_table, grounding_table, search_table, with_interval
from joimternet_lite.headline import headline, headline_intervals

KEYS = {"paired_phrase", "pointing", "pointing_best_control", "left_right", "i2r_global_r10", "probe_auroc",
        "search_p10"}


def _results(control_hit=0.3, blind_hit=0.2):
    def row(kind, words, **values):
        return dict(kind=kind, words=words, type="all", n=10, chance=0.083, **values)

    return {
        "retrieval": [dict(direction=d, scoring=s, relevance="instance", **{"R@10": r10})
                      for d, s, r10 in (("image->report", "global", 37.0), ("report->image", "global", 30.0),
                                        ("image->report", "local", 20.0))],
        "classification": [{"mean": 0.85, "mean_ci_low": 0.8, "mean_ci_high": 0.9}],
        "grounding": [row("alpha", "phrase alone", hit=0.12, hit_low=0.08, hit_high=0.16),
                      row("alpha", "phrase", hit=0.5), row("blind", "phrase alone", hit=blind_hit),
                      row("alpha control", "unrelated", hit=control_hit, hit_low=0.25, hit_high=0.35),
                      row("raw control", "unrelated", hit=0.9)],
        "paired_phrase": [row("alpha", "phrase alone", paired=0.59, paired_low=0.5, paired_high=0.68),
                          row("raw", "phrase alone", paired=0.7)],
        "laterality_swap": [row("alpha", "phrase alone", left_right=0.61), row("alpha", "phrase", left_right=0.4)],
        "search": {"k": 10, "mean_precision": 0.22, "mean_prevalence": 0.08,
                   "queries": [dict(query="pacemaker", relevant=7, prevalence=0.035, precision=0.1)]},
    }


def test_headline_reads_the_maps_ground_draws_and_the_best_control():
    block = headline(_results())
    assert set(block) == KEYS
    assert block == dict(paired_phrase=0.59, pointing=0.12, pointing_best_control=0.3, left_right=0.61,
                         i2r_global_r10=37.0, probe_auroc=0.85, search_p10=0.22)
    assert headline(_results(control_hit=0.1, blind_hit=0.2))["pointing_best_control"] == 0.2


def test_headline_without_ground_truth_leaves_grounding_and_search_empty():
    results = _results()
    for key in ("grounding", "paired_phrase", "laterality_swap", "search"):
        del results[key]
    block = headline(results)
    assert block["i2r_global_r10"] == 37.0 and block["probe_auroc"] == 0.85
    assert [k for k, v in block.items() if v is None] == ["paired_phrase", "pointing", "pointing_best_control",
                                                        "left_right", "search_p10"]


def test_tables_show_values_with_their_intervals():
    assert with_interval({"hit": 0.12, "hit_low": 0.08, "hit_high": 0.16}, "hit") == "0.120 [0.080, 0.160]"
    assert with_interval({"hit": 0.12, "hit_low": math.nan, "hit_high": math.nan}, "hit") == "0.120"
    trained, untrained = _results(), _results()
    untrained["paired_phrase"][0]["paired"] = 0.45
    table = controls_table(trained, untrained)
    assert "| alpha | phrase alone | 10 | 0.590 [0.500, 0.680] | 0.450 | 10 | 0.610 | 0.610 |" in table
    assert "| raw | phrase alone | 10 | 0.700 | 0.700 | n/a | n/a | n/a |" in table
    assert "0.120 [0.080, 0.160]" in grounding_table(trained["grounding"], untrained["grounding"])
    assert "| pacemaker | 7 | 0.035 | 0.100 | 0.100 |" in search_table(trained, untrained)


@pytest.mark.parametrize("missing", ["paired_phrase", "laterality_swap"])
def test_controls_table_tolerates_a_model_without_one_test(missing):
    trained = _results()
    trained[missing] = []
    assert "alpha" in controls_table(trained, _results())


def test_headline_intervals_come_with_the_value_they_belong_to():
    ci = headline_intervals(_results())
    assert set(ci) == KEYS
    assert ci["pointing"] == (0.08, 0.16) and ci["paired_phrase"] == (0.5, 0.68) and ci["probe_auroc"] == (0.8, 0.9)
    assert ci["pointing_best_control"] == (0.25, 0.35)   # the unrelated-sentence control won (0.3 > 0.2)
    assert headline_intervals(_results(control_hit=0.1))["pointing_best_control"] is None  # blind won; no interval
    assert ci["left_right"] is None and ci["i2r_global_r10"] is None and ci["search_p10"] is None


def test_the_headline_reads_the_kind_ground_draws_by_default():
    from joimternet_lite.cli import build_parser
    from joimternet_lite.headline import HEADLINE_MAP

    args = build_parser().parse_args(["ground", "--model", "m", "--image", "i.png", "--text", "t", "--out", "o.png"])
    assert HEADLINE_MAP[0] == args.kind


def test_the_recorded_seed_spread_is_the_readme_s_three_seed_table():
    from joimternet_lite.headline import seed_spread

    spread = seed_spread("demo_grounding")      # the README's numbers, mean ± sd and the worst seed
    assert set(spread) == KEYS
    for key, (mean, sd, worst) in {"paired_phrase": (0.724, 0.025, 0.700), "pointing": (0.289, 0.120, 0.156),
                                   "pointing_best_control": (0.169, 0.059, 0.225),
                                   "left_right": (0.878, 0.067, 0.803), "i2r_global_r10": (42.0, 6.6, 37.0),
                                   "probe_auroc": (0.877, 0.010, 0.868), "search_p10": (0.251, 0.012, 0.238)}.items():
        assert (round(spread[key]["mean"], 3), round(spread[key]["worst"], 3)) == (mean, worst), key
        assert abs(spread[key]["sd"] - sd) < 0.001 * max(1, mean), key
    assert seed_spread("my_own_preset") is None


def test_the_headline_table_says_whether_this_run_lies_inside_the_seeds_range():
    from joimternet_lite.commands.report import headline_table
    from joimternet_lite.headline import seed_spread

    table = headline_table(_results(), _results(), seed_spread("demo_grounding"))
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert rows["i2r_global_r10"].rstrip(" |").endswith("yes")     # 37.0: the lowest seed, inside [37.0, 49.5]
    assert rows["paired_phrase"].rstrip(" |").endswith("no")       # 0.59 below the seeds' 0.700
    assert "0.724 ± 0.025 (0.7)" in rows["paired_phrase"] or "0.724 ± 0.025 (0.700)" in rows["paired_phrase"]
    assert "seeds 42, 43, 44" in table.splitlines()[0]
    assert "seeds" not in headline_table(_results(), _results()).splitlines()[0]
