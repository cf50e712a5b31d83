"""Tiny pretrained text folders, written the way a downloaded model is (``save_pretrained``).

Two tokenizer families: BERT (WordPiece, ``##`` continuations, lower-cased) and RoBERTa (byte-level
BPE, a leading-space marker, cased). The tokenizers are trained with the ``tokenizers`` library on
a few report sentences, so real words split into several sub-words; the models are random.
"""

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece
from tokenizers.trainers import BpeTrainer, WordPieceTrainer
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    RobertaConfig,
    RobertaModel,
    RobertaTokenizerFast,
)

SENTENCES = [
    "No pleural effusion or pneumothorax.",
    "Left basal effusion is seen; the right lung is clear.",
    "Heart size is normal. Mild cardiomegaly, 1.5 cm nodule in the right upper lobe.",
    "There is a small left pleural effusion with basal atelectasis.",
]
HIDDEN = 12


def bert_folder(path: Path) -> Path:
    """A 1-layer BERT and its WordPiece tokenizer (vocabulary of 60: most words become sub-words)."""
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(SENTENCES, WordPieceTrainer(vocab_size=60, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    tok.decoder = decoders.WordPiece()
    BertTokenizerFast(tokenizer_object=tok).save_pretrained(str(path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=24, max_position_embeddings=256)
              ).save_pretrained(str(path))
    return path


def roberta_folder(path: Path) -> Path:
    """A 1-layer RoBERTa and its byte-level BPE tokenizer (cased; ``<s> ... </s>``)."""
    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(SENTENCES, BpeTrainer(vocab_size=300, special_tokens=specials,
                                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    RobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                         cls_token="<s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                         ).save_pretrained(str(path))
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=24, max_position_embeddings=258,
                               pad_token_id=1, bos_token_id=0, eos_token_id=2)).save_pretrained(str(path))
    return path


FAMILIES = {"bert": bert_folder, "roberta": roberta_folder}
