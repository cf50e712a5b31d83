"""Notebooks 00-04 build parts inline; these tests load those definitions and compare them with the
package on tiny inputs, so the notebooks and the package cannot drift apart."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from transformers import BertConfig, BertModel

from joimternet_lite.config import TextModelConfig
from joimternet_lite.course import import_definitions
from joimternet_lite.data import dataset as pkg_dataset
from joimternet_lite.data import tokenizer as pkg_tokenizer
from joimternet_lite.data import transforms as pkg_transforms
from joimternet_lite.data.dicom import read_dicom
from joimternet_lite.data.synthcxr import generate_synthcxr
from joimternet_lite.models import image_encoder as pkg_image
from joimternet_lite.models import text_encoder as pkg_text

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
REPORTS = [
    "Small left basal effusion, 2.5 cm. No pneumothorax.",
    "No pleural effusion or pneumothorax. Heart size is normal.",
    "Right upper lobe consolidation. Heart size is normal. ___",
    "Heart size is normal. No effusion. Lines 3 and 4.",
]


def notebook(name: str, names: list[str]):
    return import_definitions(NOTEBOOKS / name, names)


# --- 01: DICOM display pipeline ------------------------------------------------------------------

def _write_dicom(path: Path, stored: np.ndarray, photometric: str, center: float, width: float,
                 slope: float, intercept: float, bits: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.WindowCenter, ds.WindowWidth = center, width
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("slope,intercept", [(1.0, 0.0), (2.0, -100.0)])
def test_dicom_display_matches_read_dicom(tmp_path, photometric, slope, intercept):
    nb = notebook("01_chest_xrays_and_reports.ipynb", ["dicom_display"])
    stored = np.random.default_rng(0).integers(0, 4096, size=(12, 10))
    path = tmp_path / "x.dcm"
    _write_dicom(path, stored, photometric, center=1500.0, width=2000.0, slope=slope, intercept=intercept, bits=12)
    mine = nb.dicom_display(stored, slope, intercept, 1500.0, 2000.0, 12, photometric)
    np.testing.assert_allclose(mine, read_dicom(path), atol=1e-6)


def test_dicom_display_window_edges_by_hand():
    nb = notebook("01_chest_xrays_and_reports.ipynb", ["dicom_display"])
    # Window c=100, w=11 on 8 stored bits: black up to c - 0.5 - 5 = 94.5, white above 104.5, linear between.
    stored = np.array([[0, 94, 95, 100, 104, 105, 255]])
    out = nb.dicom_display(stored, 1.0, 0.0, 100.0, 11.0, 8, "MONOCHROME2")
    expected = [0.0, 0.0, ((95 - 99.5) / 10 + 0.5), ((100 - 99.5) / 10 + 0.5), ((104 - 99.5) / 10 + 0.5), 1.0, 1.0]
    np.testing.assert_allclose(out[0], expected, atol=1e-12)
    np.testing.assert_allclose(nb.dicom_display(stored, 1.0, 0.0, 100.0, 11.0, 8, "MONOCHROME1"), 1.0 - out)


# --- 02: tokenizer, transforms, dataset ----------------------------------------------------------

@pytest.mark.parametrize("min_frequency", [1, 2])
def test_inline_tokenizer_matches_package(min_frequency):
    nb = notebook("02_data_pipeline.ipynb", ["build_word_tokenizer"])
    mine = nb.build_word_tokenizer(REPORTS, min_frequency=min_frequency)
    package = pkg_tokenizer.build_tokenizer(REPORTS, min_frequency=min_frequency)
    assert mine.get_vocab() == package.get_vocab()
    probes = REPORTS + ["Zebra 1,5 heart_size EFFUSION!"]
    assert [mine(t)["input_ids"] for t in probes] == [package(t)["input_ids"] for t in probes]
    # and against the rules themselves: numbers collapse, "_" splits, case folds
    ids = package("Heart 12.5 heart_size")["input_ids"]
    assert package.convert_ids_to_tokens(ids)[:4] == ["[CLS]", "heart", "number", "heart"]


def test_inline_eval_transform_matches_package():
    nb = notebook("02_data_pipeline.ipynb", ["make_eval_transform"])
    image = torch.rand(1, 40, 50)
    expected = pkg_transforms.build_transforms(16, train=False)(image)
    assert torch.allclose(nb.make_eval_transform(16)(image), expected)
    assert expected.min() >= -1.0 and expected.max() <= 1.0


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    manifest = generate_synthcxr(root, num_studies=6, image_size=128, seed=1, workers=1, progress=False,
                                 split_fractions=(0.0, 0.0, 1.0))
    return root, manifest


def test_inline_dataset_and_collate_match_package(tiny_synth):
    root, manifest = tiny_synth
    nb = notebook("02_data_pipeline.ipynb", ["SimpleStudyDataset", "collate_studies"])
    tok = pkg_tokenizer.build_tokenizer(list(manifest["text"]), min_frequency=1)
    transform = pkg_transforms.build_transforms(32, train=False)
    mine_ds = nb.SimpleStudyDataset(manifest, root, "test", transform)
    package_ds = pkg_dataset.StudyDataset(manifest, root, "test", transform, train=False)
    assert len(mine_ds) == len(package_ds) == 6
    mine = nb.collate_studies([mine_ds[i] for i in range(6)], tok)
    package = pkg_dataset.Collate(tok)([package_ds[i] for i in range(6)])
    for key in ("images", "input_ids", "attention_mask", "index"):
        assert torch.equal(mine[key], package[key]), key
    assert torch.equal(torch.nan_to_num(mine["labels"], -9), torch.nan_to_num(package["labels"], -9))
    assert mine["study_ids"] == package["study_ids"]


# --- 03: soft attention, parameter count, receptive field ----------------------------------------

def test_inline_soft_attention_matches_package():
    nb = notebook("03_image_encoder.ipynb", ["SoftAttentionBlock"])
    torch.manual_seed(0)
    package = pkg_image.SoftAttention(12, heads=4)
    mine = nb.SoftAttentionBlock(12, heads=4)
    mine.load_state_dict(package.state_dict())
    x = torch.randn(3, 12, 5, 7)
    assert torch.allclose(mine(x), package(x), atol=1e-6)
    # A sums to the number of heads; with s = 0 the block is the identity
    assert torch.allclose(mine.attention(x).sum(dim=(1, 2, 3)), torch.full((3,), 4.0), atol=1e-5)
    with torch.no_grad():
        package.scale.zero_()
    assert torch.equal(package(x), x)


@pytest.mark.parametrize("widths,embed", [((8, 16, 32, 64, 128, 256, 512), 512), ((2, 4, 4, 8, 8, 16, 16), 24)])
def test_parameter_count_by_hand_matches_package(widths, embed):
    nb = notebook("03_image_encoder.ipynb", ["count_authors_cnn_parameters"])
    model = pkg_image.AuthorsCNN(embed_dim=embed, widths=widths, image_size=2048, grid=16)
    assert nb.count_authors_cnn_parameters(widths, embed) == sum(p.numel() for p in model.parameters())


def test_paper_widths_give_about_12_4_million_parameters():
    nb = notebook("03_image_encoder.ipynb", ["count_authors_cnn_parameters"])
    assert 12.3e6 < nb.count_authors_cnn_parameters() < 12.5e6


def test_receptive_field_by_hand():
    nb = notebook("03_image_encoder.ipynb", ["receptive_field", "authors_conv_path"])
    assert nb.receptive_field([(3, 1), (3, 1)]) == (5, 1)
    assert nb.receptive_field([(7, 4), (3, 2)]) == (15, 8)
    assert nb.receptive_field(nb.authors_conv_path(2048, 16)) == (1743, 128)


def test_receptive_field_equals_gradient_support():
    """Theory against autograd: the input pixels one output depends on, for a conv stack ("same" padding)."""
    nb = notebook("03_image_encoder.ipynb", ["receptive_field"])
    layers = [(7, 4), (3, 2), (3, 1), (3, 2), (3, 1)]
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, k, s, padding=k // 2) for k, s in layers])
    field, jump = nb.receptive_field(layers)
    assert (field, jump) == (79, 16)  # 7 + 2*4 + 2*8 + 2*8 + 2*16
    probe = torch.randn(1, 1, 256, 256, requires_grad=True)
    out = net(probe)
    row, col = 7, 5
    out[0, 0, row, col].backward()
    ys, xs = torch.nonzero(probe.grad[0, 0] != 0, as_tuple=True)
    half = (field - 1) // 2
    assert (xs.min().item(), xs.max().item()) == (col * jump - half, col * jump + half)
    assert (ys.min().item(), ys.max().item()) == (row * jump - half, row * jump + half)


# --- 04: text vectors, MLM masking, sub-word pooling ---------------------------------------------

@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_inline_text_vectors_match_text_encoder(pool):
    nb = notebook("04_text_encoder.ipynb", ["text_vectors"])
    tok = pkg_tokenizer.build_tokenizer(REPORTS, min_frequency=1)
    batch = tok(REPORTS, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    enc = pkg_text.TextEncoder(TextModelConfig(layers=1, hidden=16, heads=2, intermediate=32, pool=pool),
                               len(tok), embed_dim=8).eval()
    with torch.no_grad():
        out = enc(batch["input_ids"], batch["attention_mask"])
        states = enc.states(batch["input_ids"], batch["attention_mask"])
        words, lengths, reports = nb.text_vectors(states, batch["attention_mask"], enc.word_proj, enc.report_proj, pool)
    assert torch.allclose(words, out.words, atol=1e-6)
    assert torch.equal(lengths, out.lengths)
    assert torch.allclose(reports, out.report_vectors, atol=1e-6)
    assert lengths.tolist() == [len(pkg_tokenizer.split_words(t)) + 1 for t in REPORTS]  # words + [SEP]


def test_inline_mlm_masking_matches_package_with_the_same_seed():
    nb = notebook("04_text_encoder.ipynb", ["mask_tokens"])
    ids = torch.randint(0, 40, (6, 30))
    mask = (torch.arange(30) < torch.tensor([30, 25, 20, 10, 3, 1])[:, None]).long()
    for seed in range(5):
        mine = nb.mask_tokens(ids, mask, 40, 0.5, torch.Generator().manual_seed(seed))
        package = pkg_text.mlm_mask(ids, mask, 40, 0.5, torch.Generator().manual_seed(seed))
        assert torch.equal(mine[0], package[0]) and torch.equal(mine[1], package[1])


def test_inline_mlm_masking_statistics():
    nb = notebook("04_text_encoder.ipynb", ["mask_tokens"])
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 200, (64, 100), generator=gen)
    mask = torch.ones_like(ids)
    masked, labels = nb.mask_tokens(ids, mask, 200, 0.15, gen)
    chosen = labels != -100
    assert not chosen[ids < 5].any()  # specials never picked
    candidates = (ids >= 5).sum().item()
    assert abs(chosen.sum().item() / candidates - 0.15) < 0.02
    assert abs((masked[chosen] == 4).float().mean().item() - 0.8) < 0.04
    assert (masked[~chosen] == ids[~chosen]).all()


def test_inline_subword_pooling_matches_package():
    nb = notebook("04_text_encoder.ipynb", ["pool_subwords_loop"])
    torch.manual_seed(0)
    states = torch.randn(3, 9, 5, dtype=torch.float64)
    word_ids = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, -1],
                             [-1, 0, 1, -1, -1, -1, -1, -1, -1],
                             [-1, 0, 1, 1, 1, 1, 1, 1, 2]])
    mine, mine_lengths = nb.pool_subwords_loop(states, word_ids)
    package, package_lengths = pkg_text.pool_subwords(states, word_ids)
    assert torch.equal(mine_lengths, package_lengths)
    assert torch.allclose(mine, package)
    assert torch.allclose(mine[0, 2], states[0, 4:7].mean(0))  # a hand-checked word


def test_pretrained_folder_round_trip_gives_one_vector_per_word(tmp_path):
    """The notebook's tiny local checkpoint, loaded through the package's pretrained path."""
    nb = notebook("04_text_encoder.ipynb", ["pool_subwords_loop"])
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from tokenizers.processors import TemplateProcessing
    from tokenizers.trainers import WordPieceTrainer
    from transformers import PreTrainedTokenizerFast

    wp = Tokenizer(WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(REPORTS, WordPieceTrainer(vocab_size=60, special_tokens=list(pkg_tokenizer.SPECIAL_TOKENS)))
    wp.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                  unk_token="[UNK]", mask_token="[MASK]")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16), add_pooling_layer=False).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = pkg_text.TextEncoder(TextModelConfig(pretrained_path=str(tmp_path)), vocab_size=0, embed_dim=4).eval()
    batch = pkg_tokenizer.tokenize_reports(pkg_tokenizer.load_pretrained_tokenizer(tmp_path), REPORTS)
    with torch.no_grad():
        out = enc(**batch)
        pooled, lengths = nb.pool_subwords_loop(enc.states(batch["input_ids"], batch["attention_mask"]), batch["word_ids"])
    assert out.lengths.tolist() == [len(pkg_tokenizer.split_words(t)) + 1 for t in REPORTS]
    assert torch.equal(lengths, out.lengths)
    for row, n in enumerate(lengths.tolist()):
        assert torch.allclose(out.words[row, :n], enc.word_proj(pooled[row, :n]), atol=1e-6)


# --- 00: the exercises' expected tables agree with the package ----------------------------------

def test_notebook_00_precision_table_matches_package_on_this_machine():
    nb = notebook("00_welcome_and_setup.ipynb", [])
    from joimternet_lite.device import pick_device, resolve_precision

    device = pick_device()
    expected = dict(zip(nb.PRECISION_CASES, nb.PRECISION_EXPECTED, strict=True))
    if device.type != "cuda":
        assert expected[(device.type, False)] == resolve_precision(device)
    else:
        assert expected[("cuda", torch.cuda.is_bf16_supported())] == resolve_precision(device)


def test_every_notebook_has_one_parameters_cell_and_no_cuda_calls():
    import nbformat

    for path in sorted(NOTEBOOKS.glob("0[0-4]_*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("0[0-4]_*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path
        assert "smoke_mode()" in tagged[0].source, path
        assert not any(".cuda()" in c.source for c in nb.cells if c.cell_type == "code"), path
        assert nb.cells[0].source.startswith(f"# {path.name[:2]} "), path
