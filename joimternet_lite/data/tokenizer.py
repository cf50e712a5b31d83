"""Report tokenizers: the authors' word-level one, built with the ``tokenizers`` library, and a
pretrained model's sub-word tokenizer, both driven by :func:`tokenize_reports`.

Taught in notebooks 02 (word level) and 04 (sub-words). Lower-case, ``\\w+`` words (punctuation dropped), every number becomes the
one token ``number``; the vocabulary holds words seen at least ``min_frequency`` times plus
``[PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 [MASK]=4``. Sequences are ``[CLS] w1 .. wn [SEP]``, at most
``max_length`` (160) tokens. The trained tokenizer is served as a ``transformers``
``PreTrainedTokenizerFast`` and saved with ``save_pretrained``.

Word ``k`` of :func:`split_words` is token position ``k + 1`` of the encoded sequence (after
``[CLS]``), which is how SynthCXR's word indices line up with the model's word vectors.

A pretrained folder's fast tokenizer (:func:`load_pretrained_tokenizer`) cuts words into sub-words.
:func:`tokenize_reports` hands it the words of :func:`split_words` (as written in the report, so a
cased model sees the case and numbers stay numbers) and returns ``word_ids`` beside the ids: the
index k of the word each sub-word belongs to, the final separator counted as one more word, and -1
for the leading special token and padding. The text tower mean-pools sub-words by ``word_ids``, so
word k is again ``split_words(text)[k]``.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from ..config import LOCAL_WORDS

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")
PAD_ID, CLS_ID, SEP_ID, UNK_ID, MASK_ID = range(5)
MAX_LENGTH = 160
NUMBER_TOKEN = "number"
NUMBER_PATTERN = r"\d+(?:[.,]\d+)*"


def _normalizer() -> normalizers.Normalizer:
    # Numbers (incl. decimals such as "1.5") collapse to one token before punctuation is dropped.
    return normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(NUMBER_PATTERN), f" {NUMBER_TOKEN} "),
        normalizers.Replace(Regex(r"_"), " "),
    ])


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Everything that is not a word character (punctuation, whitespace) separates words and is dropped.
    return pre_tokenizers.Split(Regex(r"[^\w]+"), behavior="removed")


def _bare_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    model = WordLevel(vocab=vocab, unk_token="[UNK]") if vocab else WordLevel(unk_token="[UNK]")
    tok = Tokenizer(model)
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = _pre_tokenizer()
    return tok


# An untrained copy (every word maps to [UNK]) used only for its normalizer, pre-tokenizer and offsets.
_SPLITTER = _bare_tokenizer({"[UNK]": 0})


# Words that name a side, not a place: model.text.local_words=content_no_side leaves them out too.
SIDE_WORDS = frozenset({"left", "right", "bilateral", "bilaterally", "sided"})


def local_excluded_ids(tokenizer: PreTrainedTokenizerBase, local_words: str) -> torch.Tensor:
    """(vocab,) bool: the word ids that ``model.text.local_words`` leaves out of the local score.

    ``all``: none (the authors'). ``content``: scikit-learn's English stop words (articles, copulas,
    prepositions, negations such as "no") and the special tokens other than [UNK], so only content
    words compete for the regions. ``content_no_side``: also :data:`SIDE_WORDS`. Taught in notebook 11.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    vocab = tokenizer.get_vocab()
    excluded = torch.zeros(len(tokenizer), dtype=torch.bool)
    if local_words == "all":
        return excluded
    if local_words not in LOCAL_WORDS:
        raise ValueError(f"local_words={local_words!r}: use one of {LOCAL_WORDS}")
    left_out = set(ENGLISH_STOP_WORDS) | (set(SIDE_WORDS) if local_words == "content_no_side" else set())
    left_out |= set(SPECIAL_TOKENS) - {"[UNK]"}
    for word, index in vocab.items():
        excluded[index] = word in left_out
    return excluded


def split_words(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The words the tokenizer sees in ``text``, with character offsets into the original text.

    Punctuation and whitespace pieces are dropped, so the result is exactly the word sequence that
    follows ``[CLS]`` in the encoded report (before truncation).
    """
    enc = _SPLITTER.encode(text, add_special_tokens=False)
    # The normalizer aligns a replaced number with its last character only; widen it to the number.
    number_starts = {m.end(): m.start() for m in re.finditer(NUMBER_PATTERN, text)}
    words = []
    for a, b in enc.offsets:
        word = _SPLITTER.normalizer.normalize_str(text[a:b]).strip()
        if word == NUMBER_TOKEN and b in number_starts:
            a = number_starts[b]
        words.append((word, (a, b)))
    return words


# A sentence ends at . ! ? or ; before whitespace or the end of the text ("1.5 cm" does not end one).
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)")
_ENUMERATOR = re.compile(r"\s*\d+\s*")


def sentence_of_words(text: str) -> list[int]:
    """The sentence index (0, 1, ...) of each word of :func:`split_words` ``(text)``. Taught in notebook 11.

    Sentences end at ``.``, ``!``, ``?`` or ``;`` followed by whitespace or the end of the text. A
    list number ("1." in "1. Large right effusion.") is not a sentence of its own: it joins the
    sentence it numbers, as the numbered impressions of real reports are written.
    """
    ends, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if not _ENUMERATOR.fullmatch(text[start:match.start()]):
            ends.append(match.end())
            start = match.end()
    raw = [bisect.bisect_right(ends, a) for _, (a, _) in split_words(text)]
    dense = {s: k for k, s in enumerate(dict.fromkeys(raw))}  # sentences without words take no index
    return [dense[s] for s in raw]


def build_tokenizer(texts, min_frequency: int = 2, max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    """Train the word-level vocabulary on ``texts`` (an iterable of report strings)."""
    tok = _bare_tokenizer()
    trainer = WordLevelTrainer(min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS))
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tok, max_length)


def wrap_tokenizer(tok: Tokenizer, max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]", mask_token="[MASK]",
        model_max_length=max_length,
    )
    fast.padding_side = "right"
    fast.truncation_side = "right"
    return fast


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved with ``save_pretrained``; checks the special-token layout."""
    path = Path(path)
    if not (path / "tokenizer.json").exists():
        raise FileNotFoundError(f"{path}: no tokenizer.json here. Build one with build_tokenizer() "
                                "and save it with .save_pretrained(path).")
    fast = PreTrainedTokenizerFast.from_pretrained(str(path))
    got = [fast.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    if got != list(range(len(SPECIAL_TOKENS))):
        raise ValueError(f"{path}: special tokens have ids {got}, expected 0..4 for {SPECIAL_TOKENS}")
    return fast


def load_pretrained_tokenizer(path: str | Path, max_length: int = MAX_LENGTH) -> PreTrainedTokenizerBase:
    """The fast tokenizer of a local pretrained folder (``model.text.pretrained_path``).

    ``max_length`` (``data.max_length``) becomes its ``model_max_length``, the truncation length of
    :func:`tokenize_reports`.
    """
    path = Path(path)
    if not (path / "tokenizer.json").exists():
        raise FileNotFoundError(f"{path}: no tokenizer.json (a fast tokenizer) here; model.text.pretrained_path "
                                "must be a folder written by save_pretrained, holding the model and its tokenizer")
    # Byte-level BPE (RoBERTa) marks a word start with a space; pre-split words need it added, as in
    # running text. Tokenizers without that option ignore it.
    tokenizer = AutoTokenizer.from_pretrained(str(path), add_prefix_space=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{path}: the tokenizer must be a fast tokenizer (tokenizer.json) to map sub-words to words")
    tokenizer.model_max_length = max_length
    return tokenizer


def is_word_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for this module's word-level tokenizer (one token per word), False for sub-word ones."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and isinstance(backend.model, WordLevel)


def tokenize_reports(tokenizer: PreTrainedTokenizerBase, texts: list[str],
                     max_length: int | None = None) -> dict[str, torch.Tensor]:
    """The text tower's input for ``texts``: ``input_ids`` and ``attention_mask`` (B, L) long,
    ``sentence_ids`` (B, L - 1) long (:func:`sentence_ids`, read by ``model.text.local_units=sentences``),
    and for a sub-word tokenizer ``word_ids`` (B, L) long (see the module docstring).

    Sequences are padded to the longest and cut at ``max_length`` tokens (default: the tokenizer's
    ``model_max_length``, set from ``data.max_length`` when it is loaded; ``MAX_LENGTH`` for a
    tokenizer saved without one).
    """
    if max_length is None:
        unset = tokenizer.model_max_length >= VERY_LARGE_INTEGER
        max_length = MAX_LENGTH if unset else tokenizer.model_max_length
    word_level = is_word_level(tokenizer)
    if not texts:  # a batch whose studies were all skipped; tokenizers fail on an empty list
        empty = torch.zeros(0, 0, dtype=torch.long)
        keys = ("input_ids", "attention_mask", "sentence_ids") + (() if word_level else ("word_ids",))
        return {k: empty.clone() for k in keys}
    if word_level:
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        lengths = enc["attention_mask"].sum(dim=1) - 1
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "sentence_ids": sentence_ids(texts, lengths, enc["input_ids"].shape[1] - 1)}
    words = [[text[a:b] for _, (a, b) in split_words(text)] for text in texts]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")
    word_ids = torch.stack([_word_ids_with_separator(enc.word_ids(row), enc["attention_mask"][row])
                            for row in range(len(texts))])
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "word_ids": word_ids,
            "sentence_ids": sentence_ids(texts, word_ids.max(dim=1).values + 1, enc["input_ids"].shape[1] - 1)}


def sentence_ids(texts: list[str], lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) long: the sentence of each word position of the text tower's word vectors.

    ``lengths`` (B,) counts the word positions of each encoded text, the final separator included
    (it is the last one); the separator and padding get -1, so they belong to no sentence.
    """
    out = torch.full((len(texts), width), -1, dtype=torch.long)
    for row, (text, n) in enumerate(zip(texts, lengths.tolist(), strict=True)):
        kept = sentence_of_words(text)[: max(n - 1, 0)]  # truncation keeps the first n - 1 words
        out[row, : len(kept)] = torch.tensor(kept, dtype=torch.long)
    return out


def _word_ids_with_separator(ids: list[int | None], mask: torch.Tensor) -> torch.Tensor:
    """(L,) word index per token; the last real special token (the separator) is word n, others -1."""
    out = torch.tensor([-1 if w is None else w for w in ids], dtype=torch.long)
    n_words = int(out.max()) + 1 if len(out) else 0
    specials = [pos for pos, w in enumerate(ids) if w is None and mask[pos] and pos > 0]
    if specials and specials[-1] > max((pos for pos, w in enumerate(ids) if w is not None), default=0):
        out[specials[-1]] = n_words
    return out
