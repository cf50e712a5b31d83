"""End to end on tiny data: the demo pipeline, and the OpenI path (SynthCXR written in the OpenI
layout -> `prepare openi` -> `build_cache` -> `train --config openi_gpu`), through the real CLI."""

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from joimternet_lite.cli import main as cli_main
from joimternet_lite.data.schema import load_manifest
from joimternet_lite.data.synthcxr import generate_synthcxr, write_openi_layout

TINY = ["data.num_studies=40", "data.image_size=64", "data.synth_image_size=128", "train.steps=3",
        "train.batch_size=8", "train.checkpoint_every=2", "eval.bootstrap=5"]
SECRET = "s3cret-physionet-password"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A tiny demo run made with a PhysioNet password in the environment; its console output too."""
    root = tmp_path_factory.mktemp("demo")
    overrides = TINY + [f"data.root={root / 'synth'}", f"train.out_dir={root / 'run'}"]
    console = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        env.setenv("PHYSIONET_USERNAME", "someone")
        env.setenv("PHYSIONET_PASSWORD", SECRET)
        code = cli_main(["demo", "--config", "demo_cpu", *overrides])
    assert code == 0, console.getvalue()[-4000:]
    return root / "run", overrides, console.getvalue()


@pytest.fixture(scope="module")
def damaged_evaluation(demo_run, tmp_path_factory):
    """``evaluate`` on a copy of the demo run whose newest checkpoint was cut short, with one test
    image truncated, and with settings on the command line that the run's config must override."""
    run, overrides, _ = demo_run
    copy = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(run, copy)
    newest = copy / "checkpoints" / "step_000003" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])  # cut short, as by a full disk
    data_root = next(Path(o.split("=", 1)[1]) for o in overrides if o.startswith("data.root="))
    manifest = load_manifest(data_root)
    study = next(r for r in manifest if r["split"] == "test")
    image = data_root / study["image_paths"][0]
    original = image.read_bytes()
    console = io.StringIO()
    try:
        image.write_bytes(original[: len(original) // 3])  # a truncated PNG
        with contextlib.redirect_stdout(console):
            code = cli_main(["evaluate", "--config", "demo_cpu", f"train.out_dir={copy}", "eval.bootstrap=7",
                             "model.embed_dim=8", "data.num_studies=5"])
    finally:
        image.write_bytes(original)
    assert code == 0, console.getvalue()[-4000:]
    n_test = sum(s == "test" for s in manifest["split"])
    return copy, console.getvalue(), study["study_id"], n_test


def test_demo_writes_the_report_with_every_section_and_figure(demo_run):
    run, _, _ = demo_run
    report = (run / "report.md").read_text()
    for section in ("## Retrieval", "## Classification", "## Grounding", "Laterality swap", "## Figures",
                    "ceiling", "chance", "## Does the map read the words?", "## The headline block", "## Search"):
        assert section in report
    for png in ("loss_curves.png", "attention_maps.png", "retrieval_grid.png", "contact_sheet.png",
                "search_top5.png"):
        data = (run / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
        assert len(data) > 20_000, f"{png} is almost empty ({len(data)} bytes)"
    results = json.loads((run / "results.json").read_text())
    assert {"trained", "untrained", "checks", "headline", "headline_untrained"} <= set(results)
    assert set(results["headline"]) == {"paired_phrase", "pointing", "pointing_best_control", "left_right",
                                        "i2r_global_r10", "probe_auroc", "search_p10"}
    assert 0.0 <= results["headline"]["search_p10"] <= 1.0
    assert len(list((run / "checkpoints").iterdir())) >= 1


def test_demo_rerun_resumes_and_only_reevaluates(demo_run, capsys):
    run, overrides, _ = demo_run
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert cli_main(["demo", "--config", "demo_cpu", *overrides]) == 0
    assert "resuming at step 3" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_no_credential_reaches_logs_configs_or_reports(demo_run):
    run, _, console = demo_run
    written = [p for p in run.parent.rglob("*") if p.is_file()]
    assert any(p.suffix == ".yaml" for p in written) and any(p.name == "report.md" for p in written)
    assert console.count("\n") > 10
    assert SECRET not in console
    assert not [p for p in written if SECRET.encode() in p.read_bytes()]


def test_the_report_names_the_checkpoint_step_and_its_sha256(demo_run):
    run, _, _ = demo_run
    weights = run / "checkpoints" / "step_000003" / "model.safetensors"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    report = (run / "report.md").read_text()
    assert f"Weights of step 3: `{weights.parent}`" in report and sha in report
    assert "No newer checkpoint was passed over" in report
    checkpoint = json.loads((run / "results.json").read_text())["checkpoint"]
    assert (checkpoint["step"], checkpoint["model_sha256"], checkpoint["skipped_checkpoints"]) == (3, sha, [])


def test_evaluate_passes_over_a_damaged_newest_checkpoint_and_says_so(damaged_evaluation):
    copy, console, _, _ = damaged_evaluation
    newest = copy / "checkpoints" / "step_000003" / "model.safetensors"
    assert "checkpoint step_000003 passed over" in console
    report = (copy / "report.md").read_text()
    assert "Weights of step 2:" in report and "Newer checkpoints passed over" in report
    assert f"| step_000003 | {newest}: missing or not the size" in report
    checkpoint = json.loads((copy / "results.json").read_text())["checkpoint"]
    assert checkpoint["step"] == 2 and [s["checkpoint"] for s in checkpoint["skipped_checkpoints"]] == ["step_000003"]
    sha = hashlib.sha256((copy / "checkpoints" / "step_000002" / "model.safetensors").read_bytes()).hexdigest()
    assert checkpoint["model_sha256"] == sha


def test_evaluate_uses_the_runs_config_and_only_the_command_lines_eval_settings(damaged_evaluation):
    copy, _, _, _ = damaged_evaluation
    report = (copy / "report.md").read_text()
    config = json.loads(report.split("## Configuration", 1)[1].split("```json", 1)[1].split("```", 1)[0])
    assert config["eval"]["bootstrap"] == 7                                           # the command line's
    assert config["model"]["embed_dim"] != 8 and config["data"]["num_studies"] == 40  # the run's
    assert config["train"]["steps"] == 3 and config["train"]["out_dir"] == str(copy)
    assert "`data.num_studies`" in report and "`model.embed_dim`" in report  # named: the run's values won
    assert json.loads((copy / "results.json").read_text())["trained"]["classification"][0]["n_boot"] == 7


def test_an_unreadable_test_image_is_a_counted_skip_in_the_report(damaged_evaluation):
    copy, _, study_id, n_test = damaged_evaluation
    report = (copy / "report.md").read_text()
    assert f"- test: 1 of {n_test} studies skipped" in report and f"| test | {study_id} |" in report
    skipped = json.loads((copy / "results.json").read_text())["skipped_studies"]
    assert [s["study_id"] for s in skipped["test"]["skipped"]] == [study_id]
    assert skipped["train"]["skipped"] == []
    for png in ("retrieval_grid.png", "attention_maps.png"):
        assert (copy / png).stat().st_size > 20_000


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


def test_ignored_settings_names_the_dotted_keys_the_run_overrides_except_eval():
    from joimternet_lite.commands.pipeline import ignored_settings
    from joimternet_lite.config import load_config

    run = load_config("demo_cpu", ["train.steps=600", "model.image.grid=8"])
    asked = load_config("demo_cpu", ["train.steps=10", "model.image.grid=4", "eval.bootstrap=7"])
    assert ignored_settings(run, asked) == ["model.image.grid", "train.steps"]
    assert ignored_settings(run, run) == []


def test_skipped_studies_section_names_both_kinds_of_exclusion():
    from joimternet_lite.commands.report import skipped_studies_section

    text = skipped_studies_section({"test": {"studies": 5, "skipped": [
        {"study_id": "s1", "reason": "no frontal image"}, {"study_id": "s2", "reason": "unreadable"}]}})
    assert "- test: 2 of 5 studies skipped" in text
    assert "without a frontal image" in text and "could not be read" in text
    assert "| test | s1 | no frontal image |" in text


def test_recipe_line_names_each_setting_that_leaves_the_papers_local_alignment():
    from joimternet_lite.commands.report import recipe_line
    from joimternet_lite.config import load_config

    assert "the paper's local alignment" in recipe_line(load_config("demo_cpu"))
    line = recipe_line(load_config("demo_grounding"))
    assert "`model.score.word_softmax=False` (paper: True)" in line
    assert "`model.score.cosine_scale=10.0` (paper: None)" in line and "`model.score.gamma1=1.0` (paper: 4.0)" in line
    assert "gamma2" not in line
