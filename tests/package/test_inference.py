"""ImageTextInference against hand-built references: the package's reader + eval transform + the
model's towers, cosine by hand, the slow S_w loop and word_region_maps with the model's gammas."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dicom_files import make_ds, save
from PIL import Image

from joimternet_lite import ImageTextInference, JoImTeRNet
from joimternet_lite.data.errors import ImageReadError
from joimternet_lite.data.images import read_image
from joimternet_lite.data.tokenizer import split_words
from joimternet_lite.data.transforms import build_transforms, to_tensor
from joimternet_lite.inference import InferenceError
from joimternet_lite.models.similarity import local_similarity_reference, word_region_maps

TEXTS = ["Small left pleural effusion.", "No acute cardiopulmonary abnormality. Heart size normal.",
         "Right upper lobe opacity, possibly pneumonia."]


@pytest.fixture(scope="module")
def engine(tiny_run):
    return ImageTextInference(JoImTeRNet.from_pretrained(tiny_run[0]), device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def files(tiny_run, tmp_path_factory):
    """The same 8-bit picture as PNG and DICOM (full 0..255 range, so both read as pixels / 255), and a JPEG."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (80, 96), dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = 0, 255
    Image.fromarray(pixels).save(folder / "a.png")
    Image.fromarray(pixels).save(folder / "a.jpg", quality=90)
    save(make_ds(pixels), folder / "a.dcm")
    synth = sorted((tiny_run[1] / "images").rglob("*.png"))[:3]
    assert len(synth) == 3
    return {"png": folder / "a.png", "jpg": folder / "a.jpg", "dcm": folder / "a.dcm", "pixels": pixels,
            "synth": synth}


def _by_hand(engine, path):
    size = engine.config.data.image_size
    image = build_transforms(size, train=False)(to_tensor(read_image(path)))[None]
    with torch.no_grad():
        return engine.model.encode_images(image)


def test_every_input_kind_embeds_as_the_reader_and_eval_transform_do(engine, files):
    want = _by_hand(engine, files["png"]).image_vectors
    pixels = files["pixels"]
    inputs = [files["png"], str(files["dcm"]), Image.fromarray(pixels), pixels, torch.from_numpy(pixels),
              torch.from_numpy(pixels).float().div(255)[None]]
    got = engine.embed_images(inputs).image_vectors
    for row in got:
        torch.testing.assert_close(row[None], want, rtol=1e-4, atol=1e-5)
    jpeg = engine.embed_images([files["jpg"]])
    torch.testing.assert_close(jpeg.image_vectors, _by_hand(engine, files["jpg"]).image_vectors, rtol=1e-4, atol=1e-5)
    assert jpeg.regions.shape == (1, 16, engine.config.model.embed_dim)


def test_batching_does_not_change_embeddings(engine, files):
    one_batch = ImageTextInference(engine.model, device="cpu", batch_size=8)
    a, b = engine.embed_images(files["synth"]), one_batch.embed_images(files["synth"])
    torch.testing.assert_close(a.regions, b.regions, rtol=1e-4, atol=1e-5)
    r1, r2 = engine.embed_reports(TEXTS), one_batch.embed_reports(TEXTS)
    torch.testing.assert_close(r1.report_vectors, r2.report_vectors, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_the_cpu_stays_close_to_fp32(engine, files):
    fast = ImageTextInference(engine.model, device="cpu", precision="bf16", batch_size=engine.batch_size)
    exact, rounded = engine.embed_images(files["synth"]), fast.embed_images(files["synth"])
    assert rounded.image_vectors.dtype == torch.float32
    error = float((exact.image_vectors - rounded.image_vectors).norm() / exact.image_vectors.norm())
    assert 1e-4 < error < 0.02  # bf16 keeps 8 significant bits: a visible but small change
    scores = fast.similarity(rounded, TEXTS)
    assert scores.dtype == torch.float32


def test_reports_embed_as_the_text_tower_does(engine):
    got = engine.embed_reports(TEXTS)
    enc = engine.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = engine.model.encode_texts(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(got.report_vectors, want.report_vectors, rtol=1e-4, atol=1e-5)
    assert got.lengths.tolist() == [len(split_words(t)) + 1 for t in TEXTS]  # + [SEP]


def test_scores_match_hand_formulas_with_the_models_gammas(engine, files):
    images = engine.embed_images(files["synth"])
    reports = engine.embed_reports(TEXTS)
    cosine = F.normalize(images.image_vectors, dim=-1) @ F.normalize(reports.report_vectors, dim=-1).T
    torch.testing.assert_close(engine.similarity(files["synth"], TEXTS, "global"), cosine, rtol=1e-4, atol=1e-5)
    score = engine.model.similarity.score
    loop = local_similarity_reference(images.regions, reports.words, reports.lengths, score.gamma1, score.gamma2)
    torch.testing.assert_close(engine.similarity(images, reports, "local"), loop, rtol=1e-4, atol=1e-4)
    w = engine.config.eval.combined_weight
    torch.testing.assert_close(engine.similarity(images, reports, "combined"),
                               (1 - w) * cosine + w * loop / score.gamma2, rtol=1e-4, atol=1e-4)


def test_local_scoring_follows_the_model_config_not_a_literal(engine, files):
    images, reports = engine.embed_images(files["synth"]), engine.embed_reports(TEXTS)
    original = engine.model.similarity.score
    try:
        engine.model.similarity.score = dataclasses.replace(original, gamma1=1.5, gamma2=2.5, chunk_size=1)
        loop = local_similarity_reference(images.regions, reports.words, reports.lengths, 1.5, 2.5)
        torch.testing.assert_close(engine.similarity(images, reports, "local"), loop, rtol=1e-4, atol=1e-4)
    finally:
        engine.model.similarity.score = original


def test_word_maps_are_the_models_maps_of_each_word(engine, files):
    text = TEXTS[2]
    image = files["synth"][0]
    regions = _by_hand(engine, image).regions
    enc = engine.tokenizer([text], return_tensors="pt")
    for kind in ("alpha", "raw", "sparc"):
        found = engine.word_maps(image, text, kind)
        with torch.no_grad():
            txt = engine.model.encode_texts(enc["input_ids"], enc["attention_mask"])
            want = word_region_maps(regions, txt.words, txt.lengths, kind, engine.model.similarity.score.gamma1)
        assert found.words == [w for w, _ in split_words(text)]
        assert found.maps.shape == (len(found.words), *engine.model.grid)
        torch.testing.assert_close(found.maps.flatten(1), want[0, :len(found.words)], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(found.maps.flatten(1).sum(1), torch.ones(len(found.words)))


def test_with_sentence_units_each_word_gets_its_sentences_map(engine, files, tiny_run):
    # the tiny model's weights with sentence units switched on (the option adds no weights)
    model = JoImTeRNet.from_pretrained(tiny_run[0])
    model.text_encoder.local_units = "sentences"
    sentences = ImageTextInference(model, device="cpu", batch_size=2)
    text, groups = "Small left pleural effusion. Heart size normal.", [[0, 1, 2, 3], [4, 5, 6]]
    image = files["synth"][0]
    regions = _by_hand(engine, image).regions
    words = engine.embed_reports([text]).words[0]            # word-level vectors, same weights
    pooled = torch.stack([words[g].mean(dim=0) for g in groups])[None]
    for kind in ("alpha", "raw"):
        want = word_region_maps(regions, pooled, torch.tensor([2]), kind, model.similarity.score.gamma1)[0]
        found = sentences.word_maps(image, text, kind).maps.flatten(1)
        for s, group in enumerate(groups):
            for k in group:
                torch.testing.assert_close(found[k], want[s], rtol=1e-4, atol=1e-6)


def test_word_map_figure_is_written(engine, files, tmp_path):
    out = engine.plot_word_maps(files["synth"][0], TEXTS[0], "raw", out=tmp_path / "maps.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_clear_errors(engine, files, tmp_path):
    with pytest.raises(InferenceError, match="has no words"):
        engine.word_maps(files["png"], " .. ")
    with pytest.raises(InferenceError, match=r"shape \(4, 4, 3\)"):
        engine.embed_images([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(InferenceError, match=r"span \[-1, 1\]"):
        engine.embed_images([torch.linspace(-1, 1, 16).view(4, 4)])
    with pytest.raises(ImageReadError, match="missing.png: file not found"):
        engine.embed_images([tmp_path / "missing.png"])
    with pytest.raises(InferenceError, match="a list of texts"):
        engine.embed_reports("one text")
