"""Word-level tokenizer: the authors' rules (lower case, numbers as one token, punctuation dropped), the [CLS]/[SEP] layout, the save/load round trip."""

import pytest

from joimternet_lite.data.tokenizer import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    build_tokenizer,
    load_tokenizer,
    split_words,
)

REPORTS = [
    "Small left basal effusion. No pneumothorax.",
    "No pleural effusion or pneumothorax. Heart size is normal.",
    "Right upper lobe consolidation, 2.5 cm. Heart size is normal.",
    "Heart size is normal. No effusion.",
]


def test_split_words_lowercases_drops_punctuation_and_maps_numbers():
    text = "Right upper lobe, 2.5 cm; XXXX ___ 3 x 4."
    words = split_words(text)
    assert [w for w, _ in words] == ["right", "upper", "lobe", "number", "cm", "xxxx", "number", "x", "number"]
    # Offsets point back at the original characters, numbers included.
    assert [text[a:b] for _, (a, b) in words] == ["Right", "upper", "lobe", "2.5", "cm", "XXXX", "3", "x", "4"]


def test_vocabulary_keeps_words_seen_twice_and_specials_first():
    tok = build_tokenizer(REPORTS, min_frequency=2)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")] == [PAD_ID, CLS_ID, SEP_ID, UNK_ID, MASK_ID]
    assert "effusion" in vocab and "heart" in vocab
    assert "basal" not in vocab  # seen once
    assert "number" not in vocab  # one number in the corpus


def test_encoding_is_cls_words_sep_and_aligns_with_split_words():
    tok = build_tokenizer(REPORTS, min_frequency=1)
    text = REPORTS[2]
    ids = tok(text)["input_ids"]
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID
    words = [w for w, _ in split_words(text)]
    assert tok.convert_ids_to_tokens(ids[1:-1]) == words


def test_truncation_keeps_sep_and_padding_is_zero():
    tok = build_tokenizer(REPORTS, min_frequency=1, max_length=6)
    batch = tok([REPORTS[1], "heart"], padding=True, truncation=True, max_length=6, return_tensors="pt")
    assert batch["input_ids"].shape == (2, 6)
    assert batch["input_ids"][0, -1].item() == SEP_ID
    assert batch["input_ids"][1].tolist() == [CLS_ID, tok.convert_tokens_to_ids("heart"), SEP_ID, 0, 0, 0]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0]


def test_unknown_word_maps_to_unk():
    tok = build_tokenizer(REPORTS, min_frequency=2)
    assert tok("zebra")["input_ids"] == [CLS_ID, UNK_ID, SEP_ID]


def test_save_load_round_trip(tmp_path):
    tok = build_tokenizer(REPORTS, min_frequency=1)
    tok.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    for text in REPORTS:
        assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.get_vocab() == tok.get_vocab()


def test_load_tokenizer_names_the_folder_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_tokenizer(tmp_path)


def test_tokenize_reports_for_the_word_level_tokenizer():
    from joimternet_lite.data.tokenizer import tokenize_reports

    tok = build_tokenizer(["no effusion", "left effusion"], min_frequency=1)
    batch = tokenize_reports(tok, ["No effusion.", "Left effusion, no effusion."])
    assert set(batch) == {"input_ids", "attention_mask", "sentence_ids"}  # one token per word: no word_ids
    assert batch["input_ids"].tolist() == tok(["No effusion.", "Left effusion, no effusion."], padding=True)["input_ids"]
    # one sentence each; the separator and padding belong to none
    assert batch["sentence_ids"].tolist() == [[0, 0, -1, -1, -1], [0, 0, 0, 0, -1]]
    assert {k: v.shape for k, v in tokenize_reports(tok, []).items()} == {
        "input_ids": (0, 0), "attention_mask": (0, 0), "sentence_ids": (0, 0)}


def test_sentence_of_words_splits_at_sentence_ends_and_keeps_list_numbers_with_their_sentence():
    from joimternet_lite.data.tokenizer import sentence_of_words

    text = "Heart size is normal. 1. Large right effusion; 1.5 cm nodule! 2. No pneumothorax?"
    words = [w for w, _ in split_words(text)]
    assert list(zip(words, sentence_of_words(text), strict=True)) == [
        ("heart", 0), ("size", 0), ("is", 0), ("normal", 0),
        ("number", 1), ("large", 1), ("right", 1), ("effusion", 1),      # "1." numbers the sentence
        ("number", 2), ("cm", 2), ("nodule", 2),                         # "1.5" does not end one
        ("number", 3), ("no", 3), ("pneumothorax", 3)]
    assert sentence_of_words("No effusion. . . Clear lungs") == [0, 0, 1, 1]   # empty sentences take no index
    assert sentence_of_words("") == []


def test_sentence_ids_follow_truncation():
    from joimternet_lite.data.tokenizer import tokenize_reports

    tok = build_tokenizer(["no effusion", "left effusion"], min_frequency=1)
    batch = tokenize_reports(tok, ["No effusion. Left effusion. No effusion."], max_length=5)
    # [CLS] no effusion left [SEP]: three words kept, the third opens sentence 1
    assert batch["sentence_ids"].tolist() == [[0, 0, 1, -1]]


def test_load_pretrained_tokenizer_names_the_folder_when_it_has_no_fast_tokenizer(tmp_path):
    from joimternet_lite.data.tokenizer import load_pretrained_tokenizer

    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_pretrained_tokenizer(tmp_path)


def test_local_excluded_ids_leave_out_stop_words_specials_and_optionally_sides():
    import torch

    from joimternet_lite.data.tokenizer import local_excluded_ids

    tok = build_tokenizer(REPORTS, min_frequency=1)
    vocab = tok.get_vocab()

    def left_out(mode):
        ids = local_excluded_ids(tok, mode)
        assert ids.shape == (len(tok),) and ids.dtype == torch.bool
        return {word for word, i in vocab.items() if ids[i]}

    assert left_out("all") == set()
    assert left_out("content") == {"[PAD]", "[CLS]", "[SEP]", "[MASK]", "no", "or", "is"}
    assert left_out("content_no_side") == left_out("content") | {"left", "right"}
    with pytest.raises(ValueError, match="content_no_side"):
        local_excluded_ids(tok, "nouns")
