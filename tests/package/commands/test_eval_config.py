"""Every ``eval`` setting reaches the evaluation, and retrieval scores with the model's own settings."""

import dataclasses
from types import SimpleNamespace

import pytest

from joimternet_lite.commands import pipeline
from joimternet_lite.config import ConfigError, EvalConfig, ScoreConfig, load_config


def test_evaluate_model_reads_every_eval_field(monkeypatch):
    cfg = load_config("demo_cpu", ["eval.scorings=[global,local]", "eval.relevances=[label]", "eval.pool_size=4",
                                   "eval.num_pools=2", "eval.combined_weight=0.3", "eval.seed=7",
                                   "eval.uncertain_policy=ones", "eval.bootstrap=11"])
    seen = {}
    empty = SimpleNamespace(study_ids=[], skipped=[])
    monkeypatch.setattr(pipeline, "embed_split", lambda *args, **kwargs: empty)
    monkeypatch.setattr(pipeline, "evaluate_retrieval", lambda test, **kw: seen.setdefault("retrieval", kw))
    monkeypatch.setattr(pipeline, "evaluate_frozen", lambda *args, **kw: seen.setdefault("frozen", (args, kw)))
    similarity = SimpleNamespace(score=ScoreConfig(gamma1=2.0, gamma2=3.0, chunk_size=5))
    model = SimpleNamespace(similarity=similarity)
    model.to, model.eval = (lambda device: model), (lambda: model)
    pipeline.evaluate_model(cfg, model, None, SimpleNamespace(column_names=[]), "cpu")
    kw = seen["retrieval"]
    assert kw["scorings"] == ("global", "local") and kw["relevances"] == ("label",)
    assert (kw["pool_mode"], kw["pool_size"], kw["num_pools"]) == ("random", 4, 2)
    assert kw["combined_weight"] == 0.3 and kw["seed"] == 7 and kw["similarity"] is similarity
    args, frozen_kw = seen["frozen"]
    assert args[3] == "ones" and frozen_kw == {"n_boot": 11, "seed": 7}
    read = {"scorings", "relevances", "pool_size", "num_pools", "combined_weight", "seed", "uncertain_policy",
            "bootstrap"}
    assert {f.name for f in dataclasses.fields(EvalConfig)} == read   # a new field needs a reader and a line here


@pytest.mark.parametrize("old, new", [("loss.gamma1=2", "model.score.gamma1"), ("eval.ablation_steps=5", "ablation.steps"),
                                      ("eval.scoring=local", "eval.scorings")])
def test_moved_keys_name_their_new_place(old, new):
    with pytest.raises(ConfigError, match=new.replace(".", r"\.")):
        load_config("demo_cpu", [old])
