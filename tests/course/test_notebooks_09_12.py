"""Notebooks 09-12 build parts inline; these tests load those definitions and compare them with the
package on tiny inputs, so the notebooks and the package cannot drift apart."""

import dataclasses
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from joimternet_lite.config import ScoreConfig
from joimternet_lite.course import (
    course_model_settings,
    course_run,
    import_definitions,
    paper_recipe_settings,
)
from joimternet_lite.data import openi as pkg_openi
from joimternet_lite.data.synthcxr import generate_synthcxr, write_openi_layout
from joimternet_lite.evaluate import classification as pkg_cls
from joimternet_lite.evaluate import grounding as pkg_ground
from joimternet_lite.evaluate import retrieval as pkg_ret
from joimternet_lite.models.outputs import ImageEmbeddings, ReportEmbeddings
from joimternet_lite.models.similarity import Similarity, global_similarity, word_region_maps

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def nb09():
    return import_definitions(NOTEBOOKS / "09_retrieval_evaluation.ipynb",
                              ["ranks_ties_against", "retrieval_metrics_inline", "make_pools", "pooled_metrics_inline",
                               "same_report_relevance", "combined_score"])


@pytest.fixture(scope="module")
def nb10():
    return import_definitions(NOTEBOOKS / "10_multilabel_classification.ipynb",
                              ["average_ranks", "auroc_rank", "per_class_auroc_inline", "linear_probe",
                               "bootstrap_mean_auroc_ci", "zero_shot_inline"])


@pytest.fixture(scope="module")
def nb11():
    return import_definitions(NOTEBOOKS / "11_attention_and_grounding.ipynb",
                              ["word_maps_inline", "pointing_hit_inline", "mass_inside_inline", "swap_sides",
                               "paired_phrase_inline", "fixed_maps_inline", "owner_map"])


@pytest.fixture(scope="module")
def nb12():
    return import_definitions(NOTEBOOKS / "12_real_data.ipynb", ["parse_openi_xml", "openi_training_text"])


KEYS = ["R@1", "R@5", "R@10", "median_rank", "mean_rank", "mrr"]


# --- 09: retrieval -------------------------------------------------------------------------------

def test_ranks_count_ties_against_the_model(nb09):
    # hand-computed: row 0 ties its true candidate with one wrong one -> rank 2; row 1 all tied -> 3
    sim = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.2, 0.2], [0.9, 0.3, 0.3]])
    assert nb09.ranks_ties_against(sim).tolist() == [2, 3, 3]
    assert nb09.ranks_ties_against(torch.zeros(4, 4)).tolist() == [4, 4, 4, 4]


@pytest.mark.parametrize("with_relevance", [False, True])
def test_retrieval_metrics_match_package(nb09, with_relevance):
    rng = np.random.default_rng(0)
    sim = np.round(rng.normal(size=(12, 12)), 1)           # rounding makes ties
    relevance = None
    if with_relevance:
        relevance = np.eye(12, dtype=bool) | (rng.random((12, 12)) < 0.1)
    ours = nb09.retrieval_metrics_inline(torch.tensor(sim), relevance)
    theirs = pkg_ret.retrieval_metrics(sim, relevance)
    np.testing.assert_allclose([ours[k] for k in KEYS], [theirs[k] for k in KEYS], atol=1e-9)


@pytest.mark.parametrize("mode", ["blocks", "random"])
def test_pools_and_pooled_metrics_match_package(nb09, mode):
    ours = nb09.make_pools(23, 5, mode, seed=3)
    theirs = pkg_ret.pool_indices(23, 5, None, mode, seed=3)
    assert [p.tolist() for p in ours] == [p.tolist() for p in theirs]
    sim = np.random.default_rng(1).normal(size=(23, 23))
    a = nb09.pooled_metrics_inline(torch.tensor(sim), ours)
    b = pkg_ret.pooled_metrics(sim, np.eye(23, dtype=bool), theirs)
    np.testing.assert_allclose([a[k] for k in KEYS], [b[k] for k in KEYS], atol=1e-9)


def test_dedup_relevance_and_combined_score_match_package(nb09):
    texts = ["No effusion.", "no effusion", "Small left effusion.", "Heart size is 2 cm.", "heart size is 3 cm"]
    np.testing.assert_array_equal(nb09.same_report_relevance(texts), pkg_ret.relevance_matrix("dedup", texts=texts))
    g = torch.Generator().manual_seed(0)
    images = ImageEmbeddings(torch.randn(3, 8, generator=g), torch.randn(3, 5, 8, generator=g))
    reports = ReportEmbeddings(torch.randn(4, 8, generator=g), torch.randn(4, 6, 8, generator=g),
                               torch.tensor([6, 2, 4, 1]))
    similarity = Similarity(8, ScoreConfig())
    s_global = pkg_ret.similarity_matrix(images, reports, "global")
    s_local = pkg_ret.similarity_matrix(images, reports, "local", similarity)
    torch.testing.assert_close(nb09.combined_score(s_global, s_local, 0.3, 5.0),
                               pkg_ret.similarity_matrix(images, reports, "combined", similarity, combined_weight=0.3))


# --- 10: classification --------------------------------------------------------------------------

def test_rank_auroc_matches_sklearn_and_package(nb10):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(y * 0.7 + rng.normal(size=60), 1)
    assert nb10.average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert nb10.auroc_rank(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    targets = rng.integers(0, 2, (40, 5)).astype(float)
    targets[:, 2] = 1                                         # undefined: no negative
    scores = np.round(rng.normal(size=(40, 5)), 1)
    np.testing.assert_allclose(nb10.per_class_auroc_inline(targets, scores), pkg_cls.per_class_auroc(targets, scores),
                               equal_nan=True)


def test_linear_probe_and_bootstrap_match_package(nb10):
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, (40, 14)).astype(float)
    x = (targets @ rng.normal(size=(14, 6)) + rng.normal(size=(40, 6))).astype(np.float32)
    mask = np.ones_like(targets, dtype=bool)
    np.testing.assert_allclose(nb10.linear_probe(x[:30], targets[:30], mask[:30], x[30:]),
                               pkg_cls.linear_probe_scores(x[:30], targets[:30], mask[:30], x[30:]), atol=1e-6)
    scores = targets * 0.5 + rng.normal(size=targets.shape)
    low, high = nb10.bootstrap_mean_auroc_ci(targets, scores, n_boot=15, seed=2)
    ci = pkg_cls.bootstrap_ci(targets, scores, None, n_boot=15, seed=2)
    np.testing.assert_allclose([low, high], [ci["mean_ci_low"], ci["mean_ci_high"]], atol=1e-12)


def test_zero_shot_matches_package(nb10):
    g = torch.Generator().manual_seed(0)
    images, pos, neg = torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g), torch.randn(2, 8, generator=g)
    expected = pkg_cls.zero_shot_from_similarities(global_similarity(images, pos).numpy(),
                                                   global_similarity(images, neg).numpy())
    np.testing.assert_allclose(nb10.zero_shot_inline(images, pos, neg), expected, atol=1e-6)


# --- 11: grounding -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["alpha", "raw"])
def test_word_maps_match_package(nb11, kind):
    g = torch.Generator().manual_seed(0)
    regions, words, lengths = torch.randn(2, 9, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.tensor([5, 3])
    maps = word_region_maps(regions, words, lengths, kind=kind, gamma1=4.0)
    for b in range(2):
        n = int(lengths[b])
        torch.testing.assert_close(nb11.word_maps_inline(regions[b], words[b], n, kind, 4.0), maps[b, :n])


def test_pointing_and_mass_match_package(nb11):
    inside = np.array([True, False, True, False, False, False])
    for region_map in (np.full(6, 1 / 6), np.array([0.1, 0.3, 0.3, 0.1, 0.1, 0.1]), np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])):
        assert nb11.pointing_hit_inline(region_map, inside) == pytest.approx(pkg_ground.pointing_hit(region_map, inside))
        assert nb11.mass_inside_inline(region_map, inside) == pytest.approx(pkg_ground.mass_inside(region_map, inside))
    assert nb11.pointing_hit_inline(np.full(6, 1 / 6), inside) == pytest.approx(1 / 3)   # flat map = chance


def test_swap_owner_and_paired_phrase_helpers(nb11):
    for text in ("Small left pleural effusion. Right lung is clear.", "LEFT apical pneumothorax; no right effusion.",
                 "Leftover bright lines."):
        assert nb11.swap_sides(text) == pkg_ground.swap_laterality(text)
    g = torch.Generator().manual_seed(0)
    regions, words = torch.randn(7, 4, generator=g), torch.randn(5, 4, generator=g)
    over_words = (words[:3] @ regions.T).softmax(dim=0)      # the softmax over words, per region
    assert nb11.owner_map(regions, words, 3).tolist() == over_words.argmax(dim=0).tolist()
    inside = np.array([True, True, False, False])
    a, b = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.1, 0.4, 0.4])
    assert (nb11.paired_phrase_inline(a, b, inside), nb11.paired_phrase_inline(b, a, inside),
            nb11.paired_phrase_inline(a, a, inside)) == (1.0, 0.0, 0.5)
    assert nb11.paired_phrase_inline(a, b, inside) == pkg_ground.beats(pkg_ground.mass_inside(a, inside),
                                                                       pkg_ground.mass_inside(b, inside))


def test_fixed_maps_match_the_model_maps_without_word_softmax(nb11):
    """The fix of notebook 11: softmax over the regions of scale * cos(e_i, v_j), as the package's
    maps of a model with word_softmax false, cosine_scale 10 and gamma1 1 (the course model)."""
    g = torch.Generator().manual_seed(1)
    regions, words, lengths = torch.randn(2, 9, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.tensor([5, 3])
    unit, scaled = torch.nn.functional.normalize(regions, dim=-1), 10 * torch.nn.functional.normalize(words, dim=-1)
    maps = word_region_maps(unit, scaled, lengths, kind="alpha", gamma1=1.0, word_softmax=False)
    for b in range(2):
        n = int(lengths[b])
        torch.testing.assert_close(nb11.fixed_maps_inline(regions[b], words[b], n), maps[b, :n])


# --- 09-11: the shared course model, sized for the device -----------------------------------------

@pytest.mark.parametrize("smoke", [False, True])
def test_course_model_settings_train_the_grounding_recipe_everywhere(smoke):
    """The course model trains the grounding recipe (no softmax over words, cosine scores x 10,
    gamma1 1) on every device: demo_grounding itself on a CPU or MPS (fp32) and in smoke mode, the
    synth_gpu towers with the same local score on CUDA (bf16 where supported). The paper-recipe
    settings differ in the local score only. Each loads as a config with its run folder."""
    for device_type in ("cuda", "cpu", "mps"):
        settings = course_model_settings(device_type, smoke)
        cfg, _, run_dir = course_run(settings, device_type)
        assert (cfg.model.score.word_softmax, cfg.model.score.cosine_scale, cfg.model.score.gamma1) == (False, 10, 1)
        if device_type == "cuda" and not smoke:
            assert (settings["preset"], settings["image_size"], settings["precision"]) == ("synth_gpu", 256, "auto")
        else:
            assert settings["preset"] == "demo_grounding" and settings["precision"] == "fp32"
            assert settings["image_size"] == (64 if smoke else 128)
        assert cfg.data.image_size == settings["image_size"] and cfg.train.batch_size == settings["batch"]
        paper_cfg, _, paper_dir = course_run(paper_recipe_settings(settings), device_type)
        assert (paper_cfg.model.score.word_softmax, paper_cfg.model.score.cosine_scale) == (True, None)
        assert paper_dir != run_dir and paper_cfg.data == cfg.data
        assert paper_cfg.train == dataclasses.replace(cfg.train, out_dir=paper_cfg.train.out_dir)
        assert paper_cfg.model.image == cfg.model.image and paper_cfg.model.text == cfg.model.text


def test_notebooks_09_to_11_take_the_course_model_settings_from_the_package():
    for name in ("09_retrieval_evaluation", "10_multilabel_classification", "11_attention_and_grounding"):
        source = "\n".join(c.source for c in nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4).cells
                           if c.cell_type == "code")
        assert "def course_model_settings" not in source and "course_model_settings(" in source, name


# --- 12: real data -------------------------------------------------------------------------------

def test_openi_parser_matches_package(nb12, tmp_path):
    generate_synthcxr(tmp_path / "synth", num_studies=3, image_size=128, workers=1, progress=False)
    write_openi_layout(tmp_path / "synth", tmp_path / "openi")
    for path in sorted((tmp_path / "openi" / "ecgen-radiology").glob("*.xml")):
        data = path.read_bytes()
        report_id, findings, impression, major, images = nb12.parse_openi_xml(data)
        pkg = pkg_openi.parse_report_xml(data, str(path))
        assert (report_id, findings, impression, major, images) == (
            pkg.report_id, pkg.sections["FINDINGS"], pkg.sections["IMPRESSION"], pkg.mesh_major, pkg.image_ids)
    for findings, impression in (("Clear lungs.", "Normal."), ("", "Normal."), ("", "")):
        assert nb12.openi_training_text(findings, impression) == pkg_openi.study_text(
            findings, impression, "findings_or_impression")


# --- the workshop: one run time per notebook, and the models trained before the session ----------

ROOT = NOTEBOOKS.parent


def header_times(name: str) -> tuple[str, str | None, str | None]:
    """(CPU time, measured seconds or None, GPU estimate or None) from a notebook's first cell."""
    header = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4).cells[0].source
    cpu = re.search(r"Run time(?: \(full mode\))?: (\d+ (?:min|s))", header).group(1)
    measured = re.search(r"measured: (\d+ s)", header)
    gpu = re.search(r"On one GPU: (\d+ min) \(estimated\)", header)
    return cpu, measured and measured.group(1), gpu and gpu.group(1)


def readme_row(number: str) -> list[str]:
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| {number} |"))
    return [cell.strip() for cell in row.strip("|").split(" | ")]


@pytest.mark.parametrize("name", ["09_retrieval_evaluation", "10_multilabel_classification",
                                  "11_attention_and_grounding", "12_real_data", "13_appendix_experiments"])
def test_each_notebook_has_one_run_time_in_its_header_and_the_readme(name):
    cpu, measured, gpu = header_times(name)
    row = readme_row(name[:2])
    assert row[3].startswith(cpu), (name, cpu, row[3])
    if measured:
        assert f"({measured} measured)" in row[3], (name, measured, row[3])
    if gpu:
        assert row[4] == gpu, (name, gpu, row[4])


def test_the_workshop_runs_09_and_11_on_prepared_models_within_their_slots():
    readme = (ROOT / "README.md").read_text()
    assert "make workshop-prep" in readme and "workshop-prep:" in (ROOT / "Makefile").read_text()
    prep = (NOTEBOOKS / "workshop_prep.py").read_text()
    assert "course_run(settings" in prep and "paper_recipe_settings(course)" in prep   # the runs 09-11 load
    slots = [line for line in readme.splitlines() if re.match(r"\| \d:\d\d–\d:\d\d \|", line)]
    for number in ("09", "11"):
        slot = next(line for line in slots if f"| {number} " in line)
        start, end = re.match(r"\| (\d):(\d\d)–(\d):(\d\d)", slot).group(1, 2), re.match(
            r"\| \d:\d\d–(\d):(\d\d)", slot).group(1, 2)
        minutes = (int(end[0]) * 60 + int(end[1])) - (int(start[0]) * 60 + int(start[1]))
        gpu = header_times(next(p.stem for p in NOTEBOOKS.glob(f"{number}_*.ipynb")))[2]
        assert slot.rstrip(" |").split(" | ")[-1].startswith(gpu), slot
        assert int(gpu.split()[0]) < minutes, (number, gpu, minutes)
    assert slots[-1].split(" | ")[1].startswith("11"), "the route ends on notebook 11's fix"
