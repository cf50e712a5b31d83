"""End to end on tiny data: the demo pipeline, and the OpenI path (SynthCXR written in the OpenI
layout -> `prepare openi` -> `build_cache` -> `train --config openi_gpu`), through the real CLI."""

import json
import subprocess
import sys

import pytest

from joimternet_lite.cli import main as cli_main
from joimternet_lite.data.synthcxr import generate_synthcxr, write_openi_layout

TINY = ["data.num_studies=40", "data.image_size=64", "data.synth_image_size=128", "train.steps=3",
        "train.batch_size=8", "train.checkpoint_every=2", "eval.bootstrap=5"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    overrides = TINY + [f"data.root={root / 'synth'}", f"train.out_dir={root / 'run'}"]
    assert cli_main(["demo", "--config", "demo_cpu", *overrides]) == 0
    return root / "run", overrides


def test_demo_writes_the_report_with_every_section_and_figure(demo_run):
    run, _ = demo_run
    report = (run / "report.md").read_text()
    for section in ("## Retrieval", "## Classification", "## Grounding", "Laterality swap", "## Figures",
                    "ceiling", "chance"):
        assert section in report
    for png in ("loss_curves.png", "attention_maps.png", "retrieval_grid.png", "contact_sheet.png"):
        data = (run / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
        assert len(data) > 20_000, f"{png} is almost empty ({len(data)} bytes)"
    results = json.loads((run / "results.json").read_text())
    assert {"trained", "untrained", "checks"} <= set(results)
    assert len(list((run / "checkpoints").iterdir())) >= 1


def test_demo_rerun_resumes_and_only_reevaluates(demo_run, capsys):
    run, overrides = demo_run
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert cli_main(["demo", "--config", "demo_cpu", *overrides]) == 0
    assert "resuming at step 3" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_no_credential_reaches_logs_configs_or_reports(demo_run, monkeypatch):
    run, _ = demo_run
    secret = "s3cret-physionet-password"
    monkeypatch.setenv("PHYSIONET_PASSWORD", secret)
    written = [p for p in run.rglob("*") if p.is_file() and p.suffix in (".md", ".json", ".jsonl", ".yaml", ".txt")]
    assert written
    assert not any(secret in p.read_text(errors="ignore") for p in written)


def test_openi_preset_trains_on_a_prepared_openi_manifest_with_the_cache(tmp_path):
    generate_synthcxr(tmp_path / "synth", num_studies=24, image_size=128, seed=3, progress=False)
    write_openi_layout(tmp_path / "synth", tmp_path / "openi_raw")
    raw_before = sorted((p.relative_to(tmp_path), p.stat().st_size) for p in (tmp_path / "openi_raw").rglob("*"))
    assert cli_main(["prepare", "openi", "--source", str(tmp_path / "openi_raw"), "--out", str(tmp_path / "openi")]) == 0
    cache = subprocess.run([sys.executable, "data_scripts/build_cache.py", "--manifest", str(tmp_path / "openi"),
                            "--cache", str(tmp_path / "cache"), "--size", "64", "--workers", "1"],
                           capture_output=True, text=True)
    assert cache.returncode == 0, cache.stderr
    overrides = [f"data.root={tmp_path / 'openi'}", f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=64",
                 "data.num_workers=0", "train.steps=2", "train.batch_size=4", "train.device=cpu",
                 f"train.out_dir={tmp_path / 'run'}", "model.embed_dim=32", "model.text.layers=1",
                 "model.text.hidden=32", "model.text.heads=2", "model.text.intermediate=64", "model.image.grid=4"]
    assert cli_main(["train", "--config", "openi_gpu", *overrides]) == 0
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 2
    assert raw_before == sorted((p.relative_to(tmp_path), p.stat().st_size) for p in (tmp_path / "openi_raw").rglob("*"))
