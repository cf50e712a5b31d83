"""Word-level report tokenizer, built with the ``tokenizers`` library (DESIGN.md §1).

Taught in notebook 02. Lower-case, ``\\w+`` words (punctuation dropped), every number becomes the
one token ``number``; the vocabulary holds words seen at least ``min_frequency`` times plus
``[PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 [MASK]=4``. Sequences are ``[CLS] w1 .. wn [SEP]``, at most
``max_length`` (160) tokens. The trained tokenizer is served as a ``transformers``
``PreTrainedTokenizerFast`` and saved with ``save_pretrained``.

Word ``k`` of :func:`split_words` is token position ``k + 1`` of the encoded sequence (after
``[CLS]``), which is how SynthCXR's word indices line up with the model's word vectors.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer
from transformers import PreTrainedTokenizerFast

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
