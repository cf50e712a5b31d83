"""bench/openi_real.py end to end on SynthCXR written in the OpenI layouts (no real data is needed)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from joimternet_lite.data.synthcxr import generate_synthcxr, write_openi_layout
from joimternet_lite.evaluate.embed import DatasetEmbeddings
from joimternet_lite.models.outputs import ImageEmbeddings, ReportEmbeddings

BENCH = Path(__file__).resolve().parents[2] / "bench" / "openi_real.py"
TINY = ["train.steps=2", "train.batch_size=4", "data.image_size=32", "model.image.widths=[4, 4, 4, 4, 8, 8, 8]",
        "model.image.grid=4", "model.embed_dim=16", "model.text.hidden=16", "model.text.intermediate=32",
        "model.text.layers=1", "train.checkpoint_every=2"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_openi_real", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_mean_is_over_the_seven_openi_classes_only():
    bench = _load_bench()
    labels = np.zeros((8, 14))
    labels[:4] = 1  # every class positive in the first half
    vectors = torch.tensor(np.c_[np.r_[np.ones(4), -np.ones(4)], np.arange(8)], dtype=torch.float32)
    fit = DatasetEmbeddings(ImageEmbeddings(vectors, None), ReportEmbeddings(vectors, None, torch.zeros(8)),
                            torch.tensor(labels), torch.arange(8), [str(k) for k in range(8)], [""] * 8, [])
    row = bench.probe(fit, labels, np.ones_like(labels, dtype=bool), np.arange(8), fit, n_boot=20)
    assert row["classes_used"] == len(bench.OPENI7) == 7 and row["mean"] == pytest.approx(1.0)


@pytest.mark.slow
def test_prepares_trains_evaluates_and_records(tmp_path):
    generate_synthcxr(tmp_path / "syn", num_studies=60, image_size=128, seed=1, workers=1, progress=False)
    write_openi_layout(tmp_path / "syn", tmp_path / "openi")
    record = tmp_path / "RESULTS.md"
    argv = ["--source", str(tmp_path / "openi"), "--out", str(tmp_path / "work"), "--bootstrap", "20", "--pool", "5",
            "--record", "--results-file", str(record), *TINY]
    assert _load_bench().main(argv) == 0
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["steps"] == 2 and results["prepare"]["studies"] == 60
    for name in ("trained", "untrained"):
        pools = {(r["direction"], r["pool"]) for r in results[name]["retrieval"]}
        assert pools == {(d, p) for d in ("image->report", "report->image") for p in ("full", "random")}
        assert set(results[name]["probe"]) == {"all", "1-shot", "5-shot"}
    text = record.read_text()
    assert "## OpenI end to end on a CPU" in text and "python bench/openi_real.py --source" in text
    assert text.count("| trained |") == 4 + 3  # retrieval rows (2 directions x 2 pools) + probe rows
