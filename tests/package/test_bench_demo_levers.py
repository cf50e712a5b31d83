"""The demo-lever benchmark reads the five target numbers from the rows a demo run writes (bench/demo_levers.py)."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "demo_levers.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_demo_levers", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _retrieval(direction, scoring, relevance, r10):
    return {"direction": direction, "scoring": scoring, "relevance": relevance, "R@10": r10}


def _grounding(kind, words, kind_type, hit, chance=0.08):
    return {"kind": kind, "words": words, "type": kind_type, "hit": hit, "chance": chance}


def test_measures_pick_the_global_instance_retrieval_and_the_phrase_pointing_over_all_findings():
    trained = {
        "classification": [{"mean": 0.87}],
        "retrieval": [_retrieval("image->report", "global", "dedup", 99.0),
                      _retrieval("image->report", "local", "instance", 98.0),
                      _retrieval("image->report", "global", "instance", 40.0),
                      _retrieval("report->image", "global", "instance", 43.5)],
        "grounding": [_grounding("alpha", "head", "all", 0.9), _grounding("alpha", "phrase", "effusion", 0.9),
                      _grounding("alpha", "phrase", "all", 0.12), _grounding("raw", "phrase", "all", 0.46)],
    }
    results = {"trained": trained, "untrained": {"classification": [{"mean": 0.69}]}}
    assert _load_bench().measures(results) == {
        "auroc_trained": 0.87, "auroc_untrained": 0.69, "alpha_pointing": 0.12, "raw_pointing": 0.46,
        "chance": 0.08, "i2r_R@10": 40.0, "r2i_R@10": 43.5}


def test_every_logged_lever_is_still_defined_with_the_overrides_it_ran():
    import json

    bench = _load_bench()
    for line in (BENCH.parent / "demo_levers.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert bench.LEVERS[row["lever"]] == row["overrides"], row["lever"]


def test_the_results_table_joins_the_two_logs_by_lever():
    lever = {"lever": "steps_600", "overrides": ["train.steps=600"], "alpha_pointing": 0.1236, "raw_pointing": 0.4632,
             "i2r_R@10": 40.0, "r2i_R@10": 43.5, "auroc_trained": 0.8741, "auroc_untrained": 0.6895, "seconds": 215.2}
    other = {**lever, "lever": "baseline", "overrides": []}
    owners = [{"lever": "steps_600", "owner_share": 0.968, "blind_pointing": 0.45,
               "owners": [["are", 15.9], ["is", 10.4], ["right", 7.6], ["no", 5.0]]}]
    lines = _load_bench().markdown_table([lever, other], owners).splitlines()
    assert lines[2] == ("| steps_600 | `train.steps=600` | 0.124 | 0.463 | 0.450 | 40.0 | 43.5 | 0.874 / 0.690 "
                        "| 0.968 | are 15.9, is 10.4, right 7.6 | 215 |")
    assert lines[3].startswith("| baseline | (none) | 0.124 | 0.463 | - |")       # no owner row yet


def test_owner_rows_measure_only_the_chosen_levers_and_keep_the_others():
    levers = [{"lever": name} for name in ("a", "b", "c")]
    known = [{"lever": "b", "owner_share": 0.5}, {"lever": "a", "owner_share": 0.1}]
    measured = []

    def measure(name):
        measured.append(name)
        return {"owner_share": 0.9}

    rows = _load_bench().owner_rows(levers, known, ["b"], measure)
    assert measured == ["b"]
    assert rows == [{"lever": "a", "owner_share": 0.1}, {"lever": "b", "owner_share": 0.9}]   # c: never measured
    assert [r["lever"] for r in _load_bench().owner_rows(levers, known, None, measure)] == ["a", "b", "c"]
