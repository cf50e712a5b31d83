"""Grounding scores against hand-made maps, masks and boxes; the CSV loader; the swap counterfactual."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from joimternet_lite.config import ScoreConfig, load_config
from joimternet_lite.data.tokenizer import split_words
from joimternet_lite.evaluate.grounding import (
    LATERALITY_VALUES,
    GroundingTarget,
    box_targets,
    cell_fractions_from_box,
    cell_fractions_from_mask,
    chance_level,
    inside_cells,
    load_phrase_boxes,
    mass_inside,
    mirror_cells,
    pointing_hit,
    score_target,
    summarize_grounding,
    swap_laterality,
    synthcxr_targets,
)
from joimternet_lite.models.text_encoder import TextOutput


def test_mask_fractions_on_the_grid():
    mask = np.zeros((8, 8), bool)
    mask[0:2, 0:2] = True      # fills cell (0, 0) of a 4x4 grid
    mask[7, 7] = True          # one pixel of cell (3, 3): a quarter of it
    frac = cell_fractions_from_mask(mask, (4, 4))
    assert frac[0] == 1.0 and frac[15] == 0.25 and frac.sum() == 1.25
    assert inside_cells(frac).sum() == 2                       # any pixel counts
    assert inside_cells(frac, min_overlap=0.5).tolist() == [True] + [False] * 15


def test_box_fractions_are_exact():
    frac = cell_fractions_from_box([0.0, 0.0, 0.375, 0.25], (4, 4)).reshape(4, 4)
    assert frac[0].tolist() == [1.0, 0.5, 0.0, 0.0] and frac[1:].sum() == 0
    # a box and the mask it rasterises to agree
    mask = np.zeros((16, 16), bool)
    mask[4:10, 2:13] = True
    assert np.allclose(cell_fractions_from_box([2 / 16, 4 / 16, 13 / 16, 10 / 16], (4, 4)),
                       cell_fractions_from_mask(mask, (4, 4)))


def test_mirror_cells():
    cells = np.arange(6.0)  # a 2x3 grid
    assert mirror_cells(cells, (2, 3)).tolist() == [2, 1, 0, 5, 4, 3]


def test_pointing_mass_and_chance_by_hand():
    inside = np.array([False, True, True, False])
    assert pointing_hit([0.1, 0.6, 0.2, 0.1], inside) == 1.0
    assert pointing_hit([0.7, 0.1, 0.1, 0.1], inside) == 0.0
    assert pointing_hit([0.4, 0.4, 0.1, 0.1], inside) == 0.5   # tied maxima count fractionally
    assert pointing_hit([0.25] * 4, inside) == chance_level(inside) == 0.5
    assert mass_inside([0.1, 0.6, 0.2, 0.1], inside) == pytest.approx(0.8)
    assert mass_inside([0.05, 0.3, 0.1, 0.05], inside) == pytest.approx(0.8)  # among real regions


def test_score_target_word_sets_and_truncation(caplog):
    maps = torch.tensor([[0.7, 0.1, 0.1, 0.1],    # word 0 "left": outside
                         [0.0, 0.1, 0.9, 0.0]])   # word 1 "effusion": inside
    target = GroundingTarget(row=0, text="left effusion", cells=np.array([0, 0.3, 1.0, 0]), type="effusion",
                             word_sets={"head": [1], "phrase": [0, 1], "cut": [5]}, study_id="s1")
    rows = {r["words"]: r for r in score_target(maps, target, "raw")}
    assert set(rows) == {"head", "phrase"} and "cut by truncation" in caplog.text
    assert rows["head"]["hit"] == 1.0 and rows["head"]["mass"] == pytest.approx(1.0)
    # phrase map = [0.35, 0.1, 0.5, 0.05]
    assert rows["phrase"]["hit"] == 1.0 and rows["phrase"]["mass"] == pytest.approx(0.6)
    assert rows["phrase"]["chance"] == 0.5


def test_summary_per_type_and_overall():
    rows = [dict(kind="raw", words="head", type="a", hit=1.0, mass=0.5, chance=0.1),
            dict(kind="raw", words="head", type="a", hit=0.0, mass=0.3, chance=0.3),
            dict(kind="raw", words="head", type="b", hit=1.0, mass=0.1, chance=0.2)]
    out = {r["type"]: r for r in summarize_grounding(rows)}
    assert out["a"]["n"] == 2 and out["a"]["hit"] == 0.5 and out["a"]["mass"] == pytest.approx(0.4)
    assert out["all"]["n"] == 3 and out["all"]["hit"] == pytest.approx(2 / 3)
    assert out["all"]["chance"] == pytest.approx(0.2)


def test_swap_laterality_keeps_word_positions():
    text = "Small LEFT effusion. Right lung clear; leftover words stay."
    swapped = swap_laterality(text)
    assert swapped == "Small RIGHT effusion. Left lung clear; leftover words stay."
    assert [w for w, _ in split_words(swapped)][1] == "right"
    assert len(split_words(swapped)) == len(split_words(text))


CSV = """study_id,label_text,x,y,w,h,image_width,image_height,category_name
s1,left effusion,0,0,50,25,100,100,Pleural Effusion
s1,left effusion,50,50,50,50,100,100,Pleural Effusion
s2,cardiomegaly,25,50,50,100,100,200,Cardiomegaly
s9,not embedded,0,0,10,10,100,100,Other
"""


def test_phrase_box_csv_loader(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text(CSV)
    boxes = load_phrase_boxes(path)
    assert [(b.study_id, b.phrase, len(b.boxes)) for b in boxes] == [
        ("s1", "left effusion", 2), ("s2", "cardiomegaly", 1), ("s9", "not embedded", 1)]
    # a 100x200 image: the model sees the centre 100x100 crop (rows 50..150)
    assert boxes[1].boxes[0] == pytest.approx([0.25, 0.0, 0.75, 1.0])
    targets = box_targets(boxes, ["s1", "s2"], (2, 2))
    assert len(targets) == 2 and targets[0].word_sets == {"phrase": [0, 1]}
    assert targets[0].cells.tolist() == [0.5, 0.0, 0.0, 1.0] and targets[0].type == "Pleural Effusion"


@pytest.mark.parametrize("text, message", [
    ("study_id,phrase,x,y,w\ns1,a,1,2,3\n", "missing column"),
    ("study_id,x,y,w,h,image_width,image_height\n", "no phrase column"),
    ("study_id,phrase,x,y,w,h,image_width,image_height\ns1,a,1,two,3,4,10,10\n", ":2: x, y"),
    ("study_id,phrase,x,y,w,h,image_width,image_height\ns1,a,1,2,0,4,10,10\n", "positive"),
])
def test_phrase_box_csv_errors_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_phrase_boxes(path)
    assert "bad.csv" in str(err.value)


def test_synthcxr_targets_read_masks_and_boxes(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[4:8, 0:4] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    gt = dict(type="effusion", label="Pleural Effusion", side="right", zone="lower", box=[0, 0, 0.5, 0.5],
              phrase_span=[0, 14], head_span=[6, 14], phrase_words=[0, 1], head_words=[1])
    records = [{"study_id": "a", "text": "right effusion", "findings_gt": [dict(gt, mask_path="m.png")]},
               {"study_id": "b", "text": "right effusion", "findings_gt": [dict(gt, mask_path=None)]},
               {"study_id": "c", "text": "not embedded", "findings_gt": [gt]}]
    targets = synthcxr_targets(records, ["b", "a"], tmp_path, (2, 2))
    assert [(t.study_id, t.row) for t in targets] == [("a", 1), ("b", 0)]
    assert targets[0].cells.tolist() == [0, 0, 1, 0] and targets[1].cells.tolist() == [1, 0, 0, 0]
    assert targets[0].word_sets == {"head": [1], "phrase": [0, 1]}
    with pytest.raises(FileNotFoundError, match="missing.png"):
        synthcxr_targets([{"study_id": "a", "text": "x", "findings_gt": [dict(gt, mask_path="missing.png")]}],
                         ["a"], tmp_path, (2, 2))


# ----------------------------------------------------------------------------- with a model


class BagOfWordsModel(nn.Module):
    """Word vectors straight from an embedding table, so each word's map is known by hand."""

    def __init__(self, vocab_size, dim=4):
        from joimternet_lite.models.similarity import Similarity

        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.similarity = Similarity(dim, ScoreConfig())
        nn.init.zeros_(self.embed.weight)

    def encode_texts(self, input_ids, attention_mask, word_ids=None, sentence_ids=None):
        words = self.embed(input_ids[:, 1:]) * attention_mask[:, 1:, None]
        lengths = attention_mask.sum(1) - 1
        return TextOutput(words, lengths, words.sum(1))


@pytest.fixture
def toy():
    pytest.importorskip("joimternet_lite.models.similarity")
    from joimternet_lite.data.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(["left effusion", "right effusion"], min_frequency=1)
    model = BagOfWordsModel(tokenizer.vocab_size)
    vocab = tokenizer.get_vocab()
    with torch.no_grad():
        model.embed.weight[vocab["left"]] = torch.tensor([3.0, 0, 0, 0])       # -> region 0
        model.embed.weight[vocab["right"]] = torch.tensor([0, 3.0, 0, 0])      # -> region 1 (its mirror)
    regions = 3 * torch.eye(4)[None]                                          # one image, 2x2 grid
    return model, tokenizer, regions


PEAK = math.exp(9) / (math.exp(9) + 3)  # softmax of dot products (9, 0, 0, 0)


def test_evaluate_grounding_end_to_end(toy):
    from joimternet_lite.evaluate.grounding import evaluate_grounding

    model, tokenizer, regions = toy
    with torch.no_grad():
        model.embed.weight[tokenizer.get_vocab()["effusion"]] = torch.tensor([0, 0, 0, 3.0])  # -> region 3
    target = GroundingTarget(row=0, text="left effusion", cells=np.array([0, 0, 0, 1.0]), type="effusion",
                             word_sets={"head": [1], "phrase": [0, 1]}, side="left")
    rows = {(r["kind"], r["words"]): r for r in evaluate_grounding(model, tokenizer, regions, [target], kinds=("raw",))}
    assert rows[("raw", "head")]["hit"] == 1.0
    assert rows[("raw", "head")]["mass"] == pytest.approx(PEAK)
    # phrase: "left" peaks at region 0, "effusion" at 3 -> a tie, half inside
    assert rows[("raw", "phrase")]["hit"] == 0.5
    assert rows[("raw", "phrase")]["mass"] == pytest.approx((PEAK + (1 - PEAK) / 3) / 2)
    assert rows[("raw", "phrase")]["chance"] == 0.25
    # the blind baseline reads no word: one long region vector takes its pointing, whatever the text
    longer = regions.clone()
    longer[0, 3] *= 2
    blind = {r["words"]: r for r in evaluate_grounding(model, tokenizer, longer, [target], kinds=("blind",))}
    assert blind["head"]["hit"] == blind["phrase"]["hit"] == 1.0
    assert blind["phrase"]["mass"] == pytest.approx(6 / 15)              # lengths 3, 3, 3, 6


def test_laterality_swap_moves_the_side_word_map(toy):
    from joimternet_lite.evaluate.grounding import laterality_swap

    model, tokenizer, regions = toy
    with torch.no_grad():  # equal dot products with the four regions: a uniform raw map
        model.embed.weight[tokenizer.get_vocab()["effusion"]] = torch.full((4,), 0.5)
    target = GroundingTarget(row=0, text="left effusion", cells=np.array([1.0, 0, 0, 0]), type="effusion",
                             word_sets={"phrase": [0, 1]}, side="left")
    (row,) = laterality_swap(model, tokenizer, regions, [target], grid=(2, 2), kinds=("raw",))
    high, low = (PEAK + 0.25) / 2, ((1 - PEAK) / 3 + 0.25) / 2
    assert row["mass_true_before"] == pytest.approx(high) and row["mass_mirror_before"] == pytest.approx(low)
    assert row["mass_true_after"] == pytest.approx(low) and row["mass_mirror_after"] == pytest.approx(high)
    assert row["moved"] == pytest.approx(high - low)
    summary = summarize_grounding([row], values=LATERALITY_VALUES)
    assert summary[0]["moved"] == pytest.approx(high - low)


def test_word_maps_follow_the_models_gamma1():
    """A model built with model.score.gamma1=1.5 grades its alpha maps with 1.5, not the default 4."""
    from joimternet_lite.data.tokenizer import build_tokenizer
    from joimternet_lite.evaluate.embed import embed_reports
    from joimternet_lite.evaluate.grounding import word_maps_for
    from joimternet_lite.models.joimternet import model_for
    from joimternet_lite.models.similarity import word_region_maps

    cfg = load_config("demo_cpu", ["data.image_size=64", "model.image.grid=4", "model.score.gamma1=1.5"])
    texts = ["left pleural effusion", "no pneumothorax seen"]
    tokenizer = build_tokenizer(texts, min_frequency=1)
    torch.manual_seed(0)
    model = model_for(cfg, len(tokenizer)).eval()
    assert model.similarity.score.gamma1 == 1.5
    with torch.no_grad():
        regions = model.encode_images(torch.rand(2, 1, 64, 64) * 2 - 1).regions
    maps = word_maps_for(model, tokenizer, regions, [(0, texts[0]), (1, texts[1])], "alpha")
    text_side = embed_reports(model, tokenizer, texts, "cpu")
    for gamma1, same in ((1.5, True), (4.0, False)):
        expected = word_region_maps(regions, text_side.words, text_side.lengths, "alpha", gamma1)
        for b, m in enumerate(maps):
            assert torch.allclose(m, expected[b, :len(m)], atol=1e-6) is same


def test_with_sentence_units_a_words_map_is_its_sentences_map():
    """model.text.local_units=sentences: every word of a sentence gets the map of the sentence's mean
    vector (computed here from the word-level tower with the same weights), the separator none."""
    from joimternet_lite.data.tokenizer import build_tokenizer
    from joimternet_lite.evaluate.embed import embed_reports
    from joimternet_lite.evaluate.grounding import word_maps_for
    from joimternet_lite.models.joimternet import model_for
    from joimternet_lite.models.similarity import word_region_maps

    tiny = ["data.image_size=64", "model.image.grid=4"]
    texts = ["Left pleural effusion. No pneumothorax.", "Heart is normal."]
    tokenizer = build_tokenizer(texts, min_frequency=1)
    torch.manual_seed(0)
    words_model = model_for(load_config("demo_cpu", tiny), len(tokenizer)).eval()
    model = model_for(load_config("demo_cpu", [*tiny, "model.text.local_units=sentences"]), len(tokenizer)).eval()
    model.load_state_dict(words_model.state_dict())
    with torch.no_grad():
        regions = model.encode_images(torch.rand(2, 1, 64, 64) * 2 - 1).regions
    word_side = embed_reports(words_model, tokenizer, texts, "cpu")
    sentences = [[[0, 1, 2], [3, 4]], [[0, 1, 2]]]          # word positions of each sentence
    for kind in ("alpha", "raw"):
        maps = word_maps_for(model, tokenizer, regions, [(0, texts[0]), (1, texts[1])], kind)
        for b, groups in enumerate(sentences):
            pooled = torch.stack([word_side.words[b, g].mean(dim=0) for g in groups])[None]
            expected = word_region_maps(regions[b:b + 1], pooled, torch.tensor([len(groups)]), kind)[0]
            for s, group in enumerate(groups):
                for k in group:
                    torch.testing.assert_close(maps[b][k], expected[s], atol=1e-6, rtol=1e-5)
            assert torch.all(maps[b][-1] == 0)               # [SEP] belongs to no sentence


def test_pooled_map_skips_the_words_left_out_of_the_local_score():
    from joimternet_lite.evaluate.grounding import pooled_map

    maps = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0], [0.1, 0.5, 0.2, 0.2]])
    np.testing.assert_allclose(pooled_map(maps, [0, 1, 2]), [0.4, 0.3, 0.15, 0.15])  # mean of rows 0 and 2
    np.testing.assert_array_equal(pooled_map(maps, [1]), np.zeros(4))


def test_region_owners_are_the_winners_of_the_softmax_over_words():
    from collections import Counter

    from joimternet_lite.evaluate.grounding import region_owners

    regions = 3 * torch.eye(2)[None]                                          # one image, two regions
    words = torch.tensor([[[2.0, 0], [0, 1.0], [0, 2.0], [0, 3.0]]])          # left, effusion, is, [SEP] left out
    mask = torch.tensor([[True, True, True, False]])
    shares, owned = region_owners(regions, words, torch.tensor([4]), ["left effusion is"], word_mask=mask)
    e = math.e
    np.testing.assert_allclose(shares.numpy(), [e**6 / (e**6 + 2), e**6 / (1 + e**3 + e**6)], rtol=1e-6)
    assert owned == Counter({"left": 1, "is": 1})


# ----------------------------------------------------------------------------- controls and MS-CXR numbers


def test_cnr_and_miou_by_hand_and_against_pixels():
    from joimternet_lite.evaluate.grounding import contrast_to_noise, map_scores, mean_iou

    region_map, cells = np.array([0.4, 0.3, 0.2, 0.1]), np.array([1.0, 0.5, 0.0, 0.0])
    # normalised map [1, 2/3, 1/3, 0]; inside weights [1, 1/2, 0, 0], outside [0, 1/2, 1, 1]
    mu_in, var_in = 8 / 9, 2 / 81
    mu_out, var_out = 4 / 15, (0.5 * (6 / 15) ** 2 + (1 / 15) ** 2 + (4 / 15) ** 2) / 2.5
    assert contrast_to_noise(region_map, cells) == pytest.approx((mu_in - mu_out) / math.sqrt(var_in + var_out))
    assert contrast_to_noise(region_map[::-1], cells) < 0 < map_scores(region_map[::-1], cells)["cnr_abs"]
    # thresholds 0.1-0.3 pick cells 0-2 (IoU 1.5 / 3), 0.4-0.5 cells 0-1 (IoU 1.5 / 2)
    assert mean_iou(region_map, cells) == pytest.approx((3 * 0.5 + 2 * 0.75) / 5)
    # the slow reference: the map upsampled to 8x8 pixels, the footprint drawn at pixel level
    pixels = np.kron(region_map.reshape(2, 2), np.ones((4, 4)))
    pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min())
    mask = np.zeros((8, 8), dtype=bool)
    mask[:4, :4] = True
    mask[:2, 4:] = True   # half of cell 1
    inside, outside = pixels[mask], pixels[~mask]
    assert contrast_to_noise(region_map, cells_of := cell_fractions_from_mask(mask, (2, 2))) == pytest.approx(
        (inside.mean() - outside.mean()) / math.sqrt(inside.var() + outside.var()))
    ious = [((pixels > t) & mask).sum() / ((pixels > t) | mask).sum() for t in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert mean_iou(region_map, cells_of) == pytest.approx(np.mean(ious))
    # a flat map has no contrast and selects nothing
    assert contrast_to_noise(np.full(4, 0.25), cells) == 0.0 and mean_iou(np.full(4, 0.25), cells) == 0.0


def test_cnr_and_miou_from_a_users_box_csv(tmp_path):
    from joimternet_lite.evaluate.grounding import contrast_to_noise

    path = tmp_path / "boxes.csv"
    path.write_text("study_id,phrase,x,y,w,h,image_width,image_height\ns1,left effusion,0,0,50,50,100,100\n")
    (target,) = box_targets(load_phrase_boxes(path), ["s1"], (2, 2))
    assert target.cells.tolist() == [1, 0, 0, 0]
    (row,) = score_target(torch.tensor([[0.7, 0.3, 0.1, 0.1], [0.7, 0.3, 0.1, 0.1]]), target, "raw")
    # normalised [1, 1/3, 0, 0]: inside mean 1, variance 0; outside mean 1/9, variance 2/81
    assert row["cnr"] == row["cnr_abs"] == pytest.approx((8 / 9) / math.sqrt(2 / 81))
    # thresholds 0.1-0.3 pick cells 0-1 (IoU 1/2), 0.4-0.5 the box alone (IoU 1)
    assert row["miou"] == pytest.approx((3 * 0.5 + 2 * 1.0) / 5)
    # a map that is constant inside and outside has no noise: infinite contrast
    assert contrast_to_noise([0.7, 0.1, 0.1, 0.1], target.cells) == math.inf


def _pair_targets():
    """One study, two findings on cells 0 and 1 (no overlap), and a third overlapping the first."""
    def target(cells, name):
        return GroundingTarget(row=0, text=name, cells=np.array(cells, dtype=float), type=name,
                               word_sets={"phrase": [0]}, study_id="s1")
    return [target([1, 0, 0, 0], "a"), target([0, 1, 0, 0], "b"), target([1, 1, 0, 0], "c")]


def test_paired_phrase_word_blind_scores_one_half_word_specific_one():
    from joimternet_lite.evaluate.grounding import paired_phrase_rows

    targets = _pair_targets()
    blind = np.array([0.1, 0.6, 0.2, 0.1])              # any map, the same for every phrase
    rows = paired_phrase_rows(targets, [blind, blind, blind], "blind", "phrase")
    assert len(rows) == 2 and {(r["type"], r["other"]) for r in rows} == {("a", "b"), ("b", "a")}  # c overlaps
    assert [r["paired"] for r in rows] == [0.5, 0.5]
    specific = [np.array([0.7, 0.1, 0.1, 0.1]), np.array([0.1, 0.7, 0.1, 0.1]), blind]
    assert [r["paired"] for r in paired_phrase_rows(targets, specific, "raw", "phrase")] == [1.0, 1.0]
    swapped = [specific[1], specific[0], blind]
    assert [r["paired"] for r in paired_phrase_rows(targets, swapped, "raw", "phrase")] == [0.0, 0.0]
    assert paired_phrase_rows(targets, [None, specific[1], blind], "raw", "phrase") == []  # cut by truncation


def test_typed_alone_cuts_the_phrase_from_its_report():
    from joimternet_lite.evaluate.grounding import ALONE, typed_alone

    text = "Heart normal. Small LEFT-sided pleural effusion, 5 mm nodule."
    words = [w for w, _ in split_words(text)]
    target = GroundingTarget(row=3, text=text, cells=np.ones(4), type="effusion", side="left", study_id="s",
                             word_sets={"phrase": [2, 3, 4, 5, 6], "head": [6]})
    (alone,) = typed_alone([target])
    assert alone.text == "Small LEFT-sided pleural effusion"
    assert [w for w, _ in split_words(alone.text)] == words[2:7]
    assert alone.word_sets == {ALONE: [0, 1, 2, 3, 4]} and (alone.row, alone.side) == (3, "left")


def test_controls_end_to_end_blind_one_half_and_a_word_reading_model_one(toy):
    from joimternet_lite.evaluate.grounding import ALONE, grounding_results

    model, tokenizer, regions = toy   # "left" -> region 0, "right" -> region 1, "effusion" uniform
    text = "left effusion right effusion"
    targets = [GroundingTarget(row=0, text=text, cells=np.array([1.0, 0, 0, 0]), type="effusion", side="left",
                               word_sets={"phrase": [0, 1]}, study_id="s1"),
               GroundingTarget(row=0, text=text, cells=np.array([0, 1.0, 0, 0]), type="effusion", side="right",
                               word_sets={"phrase": [2, 3]}, study_id="s1")]
    out = grounding_results(model, tokenizer, regions, targets, grid=(2, 2), n_boot=50, seed=0)
    paired = {(r["kind"], r["words"]): r for r in out["paired_phrase"]}
    swap = {(r["kind"], r["words"]): r for r in out["laterality_swap"]}
    for words in ("phrase", ALONE):
        assert paired[("blind", words)]["paired"] == 0.5 and swap[("blind", words)]["left_right"] == 0.5
        assert paired[("raw", words)]["paired"] == 1.0 and swap[("raw", words)]["left_right"] == 1.0
        assert paired[("raw", words)]["n"] == 2 and swap[("raw", words)]["n"] == 2
    grounding = {(r["kind"], r["words"]): r for r in out["grounding"] if r["type"] == "all"}
    assert grounding[("raw", ALONE)]["hit"] == 1.0
    # the control reads unrelated sentences: unknown words with zero vectors, so no map -> uniform
    control = grounding[("raw control", "unrelated")]
    assert control["hit"] == control["chance"] == 0.25 and control["miou"] == 0.0
    assert "hit_low" in control  # one study: the interval is NaN (needs two), tested below


def test_summary_intervals_resample_studies():
    rows = [dict(kind="raw", words="w", type="a", study_id=s, hit=h) for s, h in
            (("s1", 1.0), ("s1", 1.0), ("s2", 0.0), ("s3", 1.0), ("s4", 0.0))]
    (overall,) = [r for r in summarize_grounding(rows, ("hit",), n_boot=200, seed=1) if r["type"] == "all"]
    assert overall["hit"] == pytest.approx(0.6)
    assert 0.0 <= overall["hit_low"] < 0.6 < overall["hit_high"] <= 1.0
    assert "hit_low" not in summarize_grounding(rows, ("hit",))[0]


def test_left_right_test_ignores_where_the_image_alone_puts_mass(toy):
    from joimternet_lite.evaluate.grounding import laterality_swap

    model, tokenizer, regions = toy
    longer = regions.clone()
    longer[0, 0] *= 2   # the blind map (region lengths) leans to the finding's side, whatever the words
    target = GroundingTarget(row=0, text="left effusion", cells=np.array([1.0, 0, 0, 0]), type="effusion",
                             word_sets={"phrase": [0, 1]}, side="left")
    (blind,) = laterality_swap(model, tokenizer, longer, [target], grid=(2, 2), kinds=("blind",))
    assert blind["mass_true_before"] > blind["mass_mirror_before"] and blind["left_right"] == 0.5
    unnamed = GroundingTarget(row=0, text="effusion", cells=target.cells, type="effusion", word_sets={"phrase": [0]},
                              side="left")
    assert laterality_swap(model, tokenizer, longer, [unnamed], grid=(2, 2)) == []  # names no side: left out
