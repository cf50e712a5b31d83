"""The text tower: word vectors and lengths, report pooling, MLM masking, the pretrained sub-word path."""

import pytest
import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from joimternet_lite.config import TextModelConfig
from joimternet_lite.data.tokenizer import MASK_ID, build_tokenizer, split_words, tokenize_reports
from joimternet_lite.models.text_encoder import TextEncoder, mlm_mask

TEXTS = ["No pleural effusion.", "Left basal effusion is seen. No pneumothorax.", "Heart size is normal."]
TINY = TextModelConfig(layers=1, hidden=16, heads=2, intermediate=32, dropout=0.0)


@pytest.fixture(scope="module")
def word_batch():
    tok = build_tokenizer(TEXTS * 2, min_frequency=1)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    return tok, enc["input_ids"], enc["attention_mask"]


def encoder(vocab_size, **overrides):
    torch.manual_seed(0)
    cfg = TextModelConfig(**{**TINY.__dict__, **overrides})
    return TextEncoder(cfg, vocab_size, embed_dim=8).eval()


def test_word_vectors_follow_cls_and_keep_sep(word_batch):
    tok, ids, mask = word_batch
    model = encoder(len(tok))
    words, lengths, report, *_ = model(ids, mask)
    assert words.shape == (3, ids.shape[1] - 1, 8) and report.shape == (3, 8)
    assert lengths.tolist() == [len(split_words(t)) + 1 for t in TEXTS]     # the words, then [SEP]
    states = model.states(ids, mask)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(words[b, :n], model.word_proj(states[b, 1:n + 1]))
        assert torch.all(words[b, n:] == 0)
    torch.testing.assert_close(report, model.report_proj(states[:, 0]))


def test_mean_pooling_is_the_masked_mean_of_word_states(word_batch):
    tok, ids, mask = word_batch
    model = encoder(len(tok), pool="mean")
    _, lengths, report, *_ = model(ids, mask)
    states = model.states(ids, mask)
    expected = torch.stack([states[b, 1:n + 1].mean(0) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(report, model.report_proj(expected))


def test_more_padding_changes_nothing(word_batch):
    tok, ids, mask = word_batch
    model = encoder(len(tok))
    words, lengths, report, *_ = model(ids, mask)
    padded_words, padded_lengths, padded_report, *_ = model(torch.nn.functional.pad(ids, (0, 5)),
                                                        torch.nn.functional.pad(mask, (0, 5)))
    assert torch.equal(padded_lengths, lengths)
    torch.testing.assert_close(padded_words[:, :words.shape[1]], words, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded_report, report, atol=1e-5, rtol=1e-5)


def test_mlm_logits_cover_the_vocabulary(word_batch):
    tok, ids, mask = word_batch
    assert encoder(len(tok)).mlm_logits(ids, mask).shape == (*ids.shape, len(tok))


def test_mlm_mask_rates_and_specials():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (200, 100), generator=g)
    ids[:, 0], ids[:, 60] = 1, 2                        # [CLS] ... [SEP], then padding
    ids[:, 61:] = 0
    ids[:, 10] = 3                                      # an [UNK] in every row
    mask = (ids != 0).long()
    masked, labels = mlm_mask(ids, mask, vocab_size=1000, generator=torch.Generator().manual_seed(1))
    picked = labels != -100
    candidates = (ids >= 5) & mask.bool()
    assert not picked[~candidates].any()               # specials and padding never picked
    assert torch.equal(masked[~picked], ids[~picked])
    assert torch.equal(labels[picked], ids[picked])
    assert picked.sum() / candidates.sum() == pytest.approx(0.15, abs=0.01)
    to_mask = (masked == MASK_ID) & picked
    unchanged = (masked == ids) & picked
    assert to_mask.sum() / picked.sum() == pytest.approx(0.8, abs=0.02)
    assert unchanged.sum() / picked.sum() == pytest.approx(0.1 + 0.1 / 995, abs=0.02)
    assert (masked[picked] >= 5).logical_or(masked[picked] == MASK_ID).all()   # random words are never special
    again, _ = mlm_mask(ids, mask, vocab_size=1000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, masked)


SUBWORD_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pneu", "##mo", "##thorax",
                 "left", "basal", "effusion", "is", "seen", "eff", "##usion"]


@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory):
    """A tiny sub-word BERT and its fast tokenizer, saved the way a downloaded model is."""
    path = tmp_path_factory.mktemp("tiny_bert")
    wordpiece = Tokenizer(WordPiece({w: i for i, w in enumerate(SUBWORD_VOCAB)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wordpiece, pad_token="[PAD]", unk_token="[UNK]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tok.save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(SUBWORD_VOCAB), hidden_size=12, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=24)).save_pretrained(path)
    return path, tok


def test_pretrained_subwords_are_mean_pooled_into_words(pretrained_folder):
    path, tok = pretrained_folder
    model = encoder(0, pretrained_path=str(path))
    texts = ["No pneumothorax.", "Left basal effusion is seen, no pneumothorax."]
    batch = tokenize_reports(tok, texts)
    words, lengths, report, *_ = model(**batch)
    assert lengths.tolist() == [len(split_words(t)) + 1 for t in texts]
    assert report.shape == (2, 8)
    for b, text in enumerate(texts):                     # pool by hand from the tokenizer's own word_ids
        enc = tok([w for w, _ in split_words(text)], is_split_into_words=True, return_tensors="pt")
        states = model.bert(**enc).last_hidden_state[0]
        ids = enc.word_ids(0)
        for k in range(len(split_words(text))):
            pieces = [pos for pos, w in enumerate(ids) if w == k]
            torch.testing.assert_close(words[b, k], model.word_proj(states[pieces].mean(0)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(words[b, lengths[b] - 1], model.word_proj(states[len(ids) - 1]),
                                   atol=1e-5, rtol=1e-5)                       # [SEP], the last word
        assert torch.all(words[b, lengths[b]:] == 0)


def test_pretrained_encoder_needs_word_ids(pretrained_folder):
    path, tok = pretrained_folder
    model = encoder(0, pretrained_path=str(path))
    batch = tokenize_reports(tok, ["No pneumothorax."])
    with pytest.raises(ValueError, match="word_ids"):
        model(batch["input_ids"], batch["attention_mask"])


def test_local_words_content_masks_stop_words_and_keeps_the_report_vector(word_batch):
    tok, ids, mask = word_batch
    every = encoder(len(tok), pool="mean")
    content = encoder(len(tok), pool="mean", local_words="content")
    content.load_state_dict(every.state_dict(), strict=False)  # same weights; the buffer stays unset
    with pytest.raises(ValueError, match="set_vocabulary"):
        content(ids, mask)
    content.set_vocabulary(tok)
    words_all, lengths_all, report_all, *_ = every(ids, mask)
    words, lengths, report, _, word_mask = content(ids, mask)
    torch.testing.assert_close(report, report_all)          # the report vector still reads every word
    torch.testing.assert_close(words, words_all)            # left out by the mask, not by zeroing
    assert torch.equal(lengths, lengths_all)
    for b, text in enumerate(TEXTS):
        tokens = [w for w, _ in split_words(text)] + ["[SEP]"]
        assert word_mask[b, : len(tokens)].tolist() == [w not in {"no", "is", "[SEP]"} for w in tokens], text
        assert not word_mask[b, len(tokens):].any()         # padding


def test_sentence_units_average_each_sentence_at_its_first_word(word_batch):
    from joimternet_lite.data.tokenizer import sentence_of_words
    from joimternet_lite.models.similarity import local_similarity, local_similarity_reference

    tok, ids, mask = word_batch
    every = encoder(len(tok), pool="mean")
    sentences = encoder(len(tok), pool="mean", local_units="sentences")
    sentences.load_state_dict(every.state_dict())
    batch = tokenize_reports(tok, TEXTS)
    with pytest.raises(ValueError, match="sentence_ids"):
        sentences(ids, mask)
    words_all, lengths_all, report_all, units_all, _ = every(ids, mask, sentence_ids=batch["sentence_ids"])
    words, lengths, report, units, word_mask = sentences(ids, mask, sentence_ids=batch["sentence_ids"])
    assert units_all is None and torch.equal(lengths, lengths_all)
    torch.testing.assert_close(report, report_all)          # the report vector is not pooled by sentence
    by_hand = torch.zeros(len(TEXTS), 2, 8)                 # (reports, sentences, D), built by a loop
    for b, text in enumerate(TEXTS):
        of_word = sentence_of_words(text)
        firsts = {s: of_word.index(s) for s in set(of_word)}
        for s, first in firsts.items():
            members = [k for k, sk in enumerate(of_word) if sk == s]
            by_hand[b, s] = words_all[b, members].mean(dim=0)
            torch.testing.assert_close(words[b, first], by_hand[b, s])
        assert units[b, : len(of_word)].tolist() == [firsts[s] for s in of_word]
        others = [k for k in range(words.shape[1]) if k not in firsts.values()]
        assert torch.all(words[b, others] == 0)            # [SEP], padding and the sentences' other words
        assert word_mask[b].tolist() == [k in firsts.values() for k in range(words.shape[1])]
    # the local score meets one unit per sentence: the formula on the hand-pooled sentences
    regions = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(local_similarity(regions, words, lengths, word_mask=word_mask),
                               local_similarity_reference(regions, by_hand, torch.tensor([1, 2, 1])))
