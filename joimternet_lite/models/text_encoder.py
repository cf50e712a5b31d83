"""The text tower: word vectors, a report vector, and the masked-language-model head.

Taught in notebook 04. ``TextEncoder.forward(input_ids, attention_mask, word_ids=None, sentence_ids=None)``
returns ``TextOutput(words (B, L - 1, D), lengths (B,), report_vectors (B, D), units, word_mask)`` for
both encoders:

- word level (the authors'): a ``transformers`` BertModel built from a BertConfig (3 layers, 512
  hidden, 8 heads, 2048 intermediate) over the word vocabulary of ``data/tokenizer.py``. Word
  vectors are Linear_w(h_i) for the tokens after [CLS] ([SEP] kept), zero at padding, and
  lengths = attention_mask.sum(1) - 1. The report vector is Linear_s(h_[CLS]), or Linear_s of the
  masked mean of the word states when ``pool="mean"``.
- ``local_words`` other than ``all`` (word level only): the words it leaves out of the local score
  (:func:`~joimternet_lite.data.tokenizer.local_excluded_ids`, e.g. "the", "is", "no") are False in
  ``TextOutput.word_mask`` (B, L - 1), which the local score and its maps read; they still shape
  the report vector. The excluded ids are a buffer filled from the tokenizer by :meth:`TextEncoder.set_vocabulary`
  and saved with the weights. Taught in notebook 11.
- ``local_units="sentences"``: phrase-level matching. The word vectors of each sentence (the
  ``sentence_ids`` of :func:`~joimternet_lite.data.tokenizer.tokenize_reports`; the separator and
  words left out by ``local_words`` take no part) are averaged into one sentence vector, stored at
  the position of the sentence's first word; the other positions are zero and out of ``word_mask``,
  so the local score and its maps see one unit per sentence and word positions keep their meaning. ``TextOutput.units``
  (B, L - 1) gives, for each word position, the position that holds its sentence's vector, so a
  word's map is its sentence's map. Taught in notebook 11.
- pretrained sub-word encoder from a local folder (``pretrained_path``, e.g. a BERT or RoBERTa
  written by ``save_pretrained``): its batches come from
  :func:`joimternet_lite.data.tokenizer.tokenize_reports` with ``word_ids`` (B, L), the word index
  of each sub-word (-1 for [CLS] and padding), the words being
  :func:`~joimternet_lite.data.tokenizer.split_words` and the final [SEP] counted as one more word,
  as in the word-level sequence. Sub-word states are mean-pooled into word states, so
  ``words[:, k]`` is word k of ``split_words(text)`` in both cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from ..config import TEXT_POOLS, TextModelConfig
from ..data.tokenizer import MASK_ID, SPECIAL_TOKENS, local_excluded_ids

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


class TextOutput(NamedTuple):
    words: torch.Tensor           # (B, L - 1, D), zero at padding
    lengths: torch.Tensor         # (B,) long
    report_vectors: torch.Tensor  # (B, D)
    units: torch.Tensor | None = None  # (B, L - 1) long with local_units=sentences: where word k's vector went
    word_mask: torch.Tensor | None = None  # (B, L - 1) bool: the rows that enter the local score (None: all valid)


class MLMHead(nn.Module):
    """Linear - GELU - LayerNorm - Linear to the vocabulary, on the raw encoder states."""

    def __init__(self, hidden: int, vocab_size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden),
                                 nn.Linear(hidden, vocab_size))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(states)


class TextEncoder(nn.Module):
    """Word-level BERT from scratch, or a pretrained sub-word encoder from a local folder."""

    def __init__(self, cfg: TextModelConfig, vocab_size: int, embed_dim: int = 512):
        super().__init__()
        if cfg.pool not in TEXT_POOLS:
            raise ValueError(f"model.text.pool={cfg.pool!r}: use cls (the authors' trainer) or mean")
        self.pool = cfg.pool
        self.pretrained = bool(cfg.pretrained_path)
        if self.pretrained:
            self.bert = _load_pretrained(cfg.pretrained_path)
        else:
            self.bert = BertModel(BertConfig(
                vocab_size=vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=0.1,
                max_position_embeddings=512, type_vocab_size=2, pad_token_id=0,
            ), add_pooling_layer=False)
        hidden = self.bert.config.hidden_size
        self.word_proj = nn.Linear(hidden, embed_dim)
        self.report_proj = nn.Linear(hidden, embed_dim)
        self.mlm_head = None if self.pretrained else MLMHead(hidden, vocab_size)
        self.local_words = cfg.local_words
        self.local_units = cfg.local_units
        if cfg.local_words != "all":
            # all True until set_vocabulary: a model used before it is told its words fails loudly
            self.register_buffer("local_excluded", torch.ones(vocab_size, dtype=torch.bool))
        else:
            self.local_excluded = None

    def set_vocabulary(self, tokenizer) -> None:
        """Fill the ids that ``local_words`` leaves out of the local score from the run's tokenizer."""
        if self.local_excluded is not None:
            ids = local_excluded_ids(tokenizer, self.local_words)
            if ids.shape != self.local_excluded.shape:
                raise ValueError(f"the tokenizer has {ids.shape[0]} words, the text tower {self.local_excluded.shape[0]}")
            self.local_excluded.copy_(ids)

    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Encoder hidden states (B, L, H)."""
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                word_ids: torch.Tensor | None = None, sentence_ids: torch.Tensor | None = None) -> TextOutput:
        """input_ids, attention_mask (B, L) long; word_ids (B, L) only for a pretrained encoder;
        sentence_ids (B, L - 1) only with ``local_units="sentences"``."""
        states = self.states(input_ids, attention_mask)
        word_states, lengths, valid = self._word_states(states, attention_mask, word_ids)
        local = self._local_mask(input_ids, valid)
        words, units, word_mask = self.word_proj(word_states) * valid[..., None], None, local
        if self.local_units == "sentences":
            sentences = self._sentences(sentence_ids, local)
            words, units = sentence_vectors(words, sentences)
            word_mask = sentence_rows(units, sentences)
        report = self._report_vectors(states, word_states, lengths, valid)
        return TextOutput(words, lengths, report, units, word_mask)

    def report_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       word_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The report vectors (B, D) alone, as ``forward`` computes them."""
        states = self.states(input_ids, attention_mask)
        return self._report_vectors(states, *self._word_states(states, attention_mask, word_ids))

    def _word_states(self, states, attention_mask, word_ids):
        """(B, L, H) states -> word states (B, L - 1, H), lengths (B,) and the valid word rows (B, L - 1)."""
        if word_ids is not None:
            word_states, lengths = pool_subwords(states, word_ids)
        elif self.pretrained:
            raise ValueError("a pretrained sub-word encoder needs word_ids: build the batch with "
                             "joimternet_lite.data.tokenizer.tokenize_reports(tokenizer, texts) and the "
                             "folder's tokenizer (load_pretrained_tokenizer)")
        else:
            word_states, lengths = states[:, 1:], attention_mask.sum(dim=1) - 1
        return word_states, lengths, torch.arange(word_states.shape[1], device=lengths.device) < lengths[:, None]

    def _report_vectors(self, states, word_states, lengths, valid):
        if self.pool == "cls":
            return self.report_proj(states[:, 0])
        return self.report_proj((word_states * valid[..., None]).sum(1) / lengths.clamp_min(1)[:, None])

    def _sentences(self, sentence_ids: torch.Tensor | None, local: torch.Tensor) -> torch.Tensor:
        """(B, L - 1): each word's sentence, -1 for words outside the local score."""
        if sentence_ids is None:
            raise ValueError("model.text.local_units='sentences' needs sentence_ids: build the batch with "
                             "joimternet_lite.data.tokenizer.tokenize_reports(tokenizer, texts) and pass "
                             "its sentence_ids")
        if sentence_ids.shape != local.shape:
            raise ValueError(f"sentence_ids {tuple(sentence_ids.shape)} must match the word positions "
                             f"{tuple(local.shape)}: (B, L - 1), as tokenize_reports returns them")
        return sentence_ids.masked_fill(~local, -1)

    def _local_mask(self, input_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L - 1) bool: the words that enter the local score (all valid words unless ``local_words``)."""
        if self.local_excluded is None:
            return valid
        if bool(self.local_excluded.all()):
            raise ValueError(f"model.text.local_words={self.local_words!r}: the text tower does not know its "
                             "vocabulary yet; call model.text_encoder.set_vocabulary(tokenizer) after building it "
                             "(loading saved weights restores it)")
        return valid & ~self.local_excluded[input_ids[:, 1:]]

    def mlm_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) -> MLM logits (B, L, vocab); word-level encoder only."""
        if self.mlm_head is None:
            raise ValueError("MLM runs on the word-level encoder only; unset model.text.pretrained_path "
                             "or set train.mlm=false")
        return self.mlm_head(self.states(input_ids, attention_mask))


def _load_pretrained(path: str) -> nn.Module:
    """The encoder of a local pretrained folder, without its pooler (never used here; DDP needs a
    gradient for every parameter)."""
    if not (Path(path) / "config.json").exists():
        raise FileNotFoundError(f"model.text.pretrained_path={path}: no config.json there; point it at a folder "
                                "written by save_pretrained (model weights, config.json and tokenizer.json)")
    if torch.get_default_device().type == "meta":  # a shape-only build (model_check): config, no weights
        bert = AutoModel.from_config(AutoConfig.from_pretrained(path))
    else:
        bert = AutoModel.from_pretrained(path)
    if getattr(bert, "pooler", None) is not None:
        bert.pooler = None
    return bert


def sentence_vectors(words: torch.Tensor, sentence_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phrase-level units: (B, W, D) word vectors, (B, W) sentence ids (-1: no sentence) ->
    (B, W, D) with each sentence's mean vector at its first word's position and zero elsewhere,
    and units (B, W) long: the position holding word k's sentence vector (k itself for a word
    without a sentence, whose row is zero). Taught in notebook 11.
    """
    num = int(sentence_ids.max()) + 1 if sentence_ids.numel() else 0
    means, member = _group_means(words, sentence_ids, max(num, 1))                   # (B, S, D), (B, S, W)
    first = member.to(torch.uint8).argmax(dim=-1)                                    # (B, S), 0 when empty
    # an empty sentence adds a zero vector at position 0, which changes nothing
    pooled = torch.zeros_like(words).scatter_add(1, first[..., None].expand_as(means), means)
    positions = torch.arange(words.shape[1], device=words.device).expand_as(sentence_ids)
    units = torch.where(sentence_ids >= 0, first.gather(1, sentence_ids.clamp_min(0)), positions)
    return pooled, units


def sentence_rows(units: torch.Tensor, sentence_ids: torch.Tensor) -> torch.Tensor:
    """(B, W) bool: the rows that hold a sentence vector, from :func:`sentence_vectors`' units and
    the (B, W) sentence ids (-1: no sentence). A word outside every sentence marks nothing."""
    return torch.zeros_like(sentence_ids, dtype=torch.bool).scatter(1, units, sentence_ids >= 0)


def pool_subwords(states: torch.Tensor, word_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the sub-word states of each word: (B, L, H), (B, L) -> (B, L - 1, H), lengths (B,).

    Words without a sub-word (none from :func:`~joimternet_lite.data.tokenizer.tokenize_reports`)
    would be zero vectors.
    """
    num_words = states.shape[1] - 1  # never more words than tokens after [CLS]
    means, _ = _group_means(states, word_ids, num_words)
    return means, word_ids.max(dim=1).values + 1


def _group_means(values: torch.Tensor, group_ids: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, H) values, (B, N) group of each (-1: none) -> the mean of each group 0..num_groups - 1
    (B, G, H), zero for an empty group, and the membership (B, G, N) bool."""
    slots = torch.arange(num_groups, device=group_ids.device)
    member = group_ids[:, None, :] == slots[None, :, None]
    return (member.to(values.dtype) @ values) / member.sum(-1, keepdim=True).clamp_min(1), member


def mlm_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int,
             probability: float = 0.15, generator: torch.Generator | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: (masked_ids, labels), both (B, L) long.

    Each real, non-special token (id >= 5; [PAD] [CLS] [SEP] [UNK] [MASK] are never picked) is
    picked with ``probability``; a picked token becomes [MASK] 80% of the time, a random word
    (never a special token) 10%, and stays 10%. ``labels`` holds the original id where picked and
    -100 elsewhere.
    """
    num_special = len(SPECIAL_TOKENS)
    device = input_ids.device
    candidates = attention_mask.bool() & (input_ids >= num_special)
    draw = torch.rand(input_ids.shape, generator=generator, device=device)
    picked = candidates & (draw < probability)
    action = torch.rand(input_ids.shape, generator=generator, device=device)
    random_words = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator, device=device)
    masked = torch.where(picked & (action < 0.8), torch.full_like(input_ids, MASK_ID), input_ids)
    masked = torch.where(picked & (action >= 0.8) & (action < 0.9), random_words, masked)
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels
