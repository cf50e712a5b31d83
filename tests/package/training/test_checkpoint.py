"""Checkpoints: exact round trip, atomic commit marker, pruning, clear mismatch errors, no pickle."""

import errno
import json
import os
import pickle
import random
import stat

import numpy as np
import pytest
import torch
from damaged_files import DAMAGE_REASONS, damaged_weights
from torch import nn

from joimternet_lite import checkpoint as ckpt
from joimternet_lite.checkpoint import CheckpointError
from joimternet_lite.errors import UserError


class Tiny(nn.Module):
    """A two-tower stand-in with a tied weight, like a BERT MLM head tied to the word embeddings."""

    def __init__(self, vocab: int = 11, dim: int = 6):
        super().__init__()
        self.image_encoder = nn.Sequential(nn.Linear(4, dim), nn.LayerNorm(dim))
        self.text_encoder = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.text_encoder.weight

    def loss(self, x, ids):
        return (self.image_encoder(x) - self.text_encoder(ids)).pow(2).mean() + self.head(self.image_encoder(x)).mean()


def _train(model, opt, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(torch.randn(5, 4, generator=g), torch.randint(0, 11, (5,), generator=g)).backward()
        opt.step()


def _fresh(seed=1):
    torch.manual_seed(seed)
    model = Tiny()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def test_round_trip_continues_exactly_like_the_original(tmp_path):
    model, opt = _fresh()
    _train(model, opt, 3)
    folder = ckpt.save_checkpoint(tmp_path, 3, model, optimizer=opt, progress={"epoch": 1, "consumed": 4})
    other, other_opt = _fresh(seed=2)  # different initial weights and an empty optimizer
    state = ckpt.load_checkpoint(folder, other, optimizer=other_opt)
    assert state["step"] == 3 and state["progress"] == {"epoch": 1, "consumed": 4}
    assert other.head.weight is other.text_encoder.weight  # tying survives the load
    _train(model, opt, 2, seed=5)
    _train(other, other_opt, 2, seed=5)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_rng_states_are_restored_for_torch_numpy_and_python():
    snap = ckpt.rng_snapshot()
    first = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    ckpt.restore_rng(*snap)
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def test_scheduler_and_scaler_state_round_trip(tmp_path):
    model, opt = _fresh()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    for _ in range(3):
        _train(model, opt, 1)
        sched.step()
    folder = ckpt.save_checkpoint(tmp_path, 3, model, optimizer=opt, scheduler=sched)
    other, other_opt = _fresh()
    other_sched = torch.optim.lr_scheduler.LambdaLR(other_opt, lambda s: 0.5 ** s)
    ckpt.load_checkpoint(folder, other, optimizer=other_opt, scheduler=other_sched)
    assert other_sched.last_epoch == 3
    assert other_opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.125)


def test_written_files_are_safetensors_and_json(tmp_path):
    model, opt = _fresh()
    _train(model, opt, 1)
    folder = ckpt.save_checkpoint(tmp_path, 1, model, optimizer=opt, config={"name": "x"})
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "trainer.json", "trainer.safetensors"]
    state = json.loads((folder / "trainer.json").read_text())
    assert state["config"] == {"name": "x"} and set(state["files"]) == {"model.safetensors", "trainer.safetensors"}


def test_the_same_state_gives_the_same_bytes(tmp_path):
    """Identical runs report identical sha256s: no field of the files may depend on hash order."""
    model, opt = _fresh()
    _train(model, opt, 2)
    digests, rng = set(), ckpt.rng_snapshot()
    for i in range(8):  # safetensors orders a header's metadata by a per-call random hash
        folder = ckpt.save_checkpoint(tmp_path / str(i), 2, model, optimizer=opt, rng=rng)
        state = json.loads((folder / ckpt.STATE_FILE).read_text())
        digests.add(tuple(state["files"][name]["sha256"] for name in (ckpt.MODEL_FILE, ckpt.TENSORS_FILE)))
    assert len(digests) == 1


def test_weights_written_by_save_model_still_load_and_stay_tied(tmp_path):
    """Files of earlier versions (safetensors' save_model, which kept head.weight) load unchanged."""
    from safetensors.torch import save_model

    model, opt = _fresh()
    _train(model, opt, 2)
    save_model(model, str(tmp_path / "old.safetensors"))
    other = _fresh(seed=2)[0]
    ckpt.load_weights(tmp_path / "old.safetensors", other)
    assert other.head.weight is other.text_encoder.weight
    assert torch.equal(other.head.weight, model.head.weight)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, opt = _fresh()
    _train(model, opt, 1)
    folder = ckpt.save_checkpoint(tmp_path, 1, model, optimizer=opt)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during checkpoint load")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    ckpt.load_checkpoint(folder, Tiny(), optimizer=torch.optim.AdamW(Tiny().parameters()))


def _save_steps(tmp_path, steps, keep=0):
    model, opt = _fresh()
    for s in steps:
        ckpt.save_checkpoint(tmp_path, s, model, optimizer=opt, keep=keep)
    return model


def test_half_written_checkpoint_is_never_returned_or_loaded(tmp_path):
    model = _save_steps(tmp_path, [10, 20])
    newest = ckpt.checkpoint_dir(tmp_path, 20)
    (newest / "trainer.json").unlink()  # as if killed before the commit marker
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.checkpoint_dir(tmp_path, 10)
    with pytest.raises(CheckpointError, match=r"step_000020.*never completed"):
        ckpt.load_checkpoint(newest, model)


def test_truncated_or_modified_tensor_file_is_refused(tmp_path):
    model = _save_steps(tmp_path, [10, 20])
    weights = ckpt.checkpoint_dir(tmp_path, 20) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.checkpoint_dir(tmp_path, 10)
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(CheckpointError, match="sha256"):
        ckpt.load_checkpoint(ckpt.checkpoint_dir(tmp_path, 20), model)


def test_only_the_newest_k_are_kept_and_stale_partial_folders_go(tmp_path):
    _save_steps(tmp_path, [1, 2])
    (ckpt.checkpoint_dir(tmp_path, 2) / "trainer.json").unlink()  # a killed write at step 2
    _save_steps(tmp_path, [3, 4, 5], keep=2)
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left == ["step_000004", "step_000005"]


def test_vocabulary_mismatch_names_the_file_and_the_fix(tmp_path):
    _save_steps(tmp_path, [1])
    folder = ckpt.checkpoint_dir(tmp_path, 1)
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not fit.*vocabulary of 13.*"
                                              r"text_encoder\.weight: file \(11, 6\) vs model \(13, 6\).*tokenizer"):
        ckpt.load_weights(folder, Tiny(vocab=13), vocab_size=13)


def test_model_size_mismatch_is_refused(tmp_path):
    _save_steps(tmp_path, [1])
    folder = ckpt.checkpoint_dir(tmp_path, 1)
    with pytest.raises(CheckpointError, match=r"does not fit.*image_encoder\.0\.weight: file \(6, 4\) vs model \(8, 4\)"):
        ckpt.load_checkpoint(folder, Tiny(dim=8))


def test_recorded_vocabulary_size_is_checked_before_the_tensors(tmp_path):
    model, opt = _fresh()
    folder = ckpt.save_checkpoint(tmp_path, 1, model, optimizer=opt, vocab_size=11)
    with pytest.raises(CheckpointError, match="vocabulary of 11 words, but this model has 12"):
        ckpt.load_checkpoint(folder, Tiny(), vocab_size=12)


def test_tensor_files_follow_the_umask_like_every_other_output(tmp_path):
    old = os.umask(0o022)
    try:
        folder = ckpt.save_checkpoint(tmp_path, 1, _fresh()[0])
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {"model.safetensors": 0o644, "trainer.safetensors": 0o644, "trainer.json": 0o644}


@pytest.mark.parametrize("failing", ["model.safetensors", "trainer.safetensors"])
def test_a_full_disk_names_the_path_and_leaves_the_older_checkpoint_loadable(tmp_path, monkeypatch, failing):
    model, opt = _fresh()
    ckpt.save_checkpoint(tmp_path, 1, model, optimizer=opt)
    real = ckpt.save_file

    def full(tensors, path, metadata=None):
        if f"{failing}." in path:  # the atomic writer's temporary name starts with the file's
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(ckpt.CheckpointWriteError, match=r"step_000002.*disk is full.*--resume") as err:
        ckpt.save_checkpoint(tmp_path, 2, model, optimizer=opt)
    assert isinstance(err.value, UserError)
    assert not ckpt.checkpoint_dir(tmp_path, 2).exists()  # no half-written folder holds the space
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.checkpoint_dir(tmp_path, 1)
    ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), Tiny(), optimizer=torch.optim.AdamW(Tiny().parameters()))


def test_safetensors_file_too_large_error_is_reported_as_a_full_disk(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def too_large(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 27, kind: FileTooLarge, "
                              "message: \"File too large\" })")

    monkeypatch.setattr(ckpt, "save_file", too_large)
    with pytest.raises(ckpt.CheckpointWriteError, match=r"model\.safetensors.*disk is full"):
        ckpt.save_checkpoint(tmp_path, 1, _fresh()[0])


def test_non_finite_weights_are_never_written(tmp_path):
    model, opt = _fresh()
    with torch.no_grad():
        model.image_encoder[0].weight[0, 0] = float("nan")
    with pytest.raises(ckpt.NonFiniteWeightsError, match=r"image_encoder\.0\.weight"):
        ckpt.save_checkpoint(tmp_path, 1, model, optimizer=opt)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("text", ["{ damaged", "{}", "[1, 2]", '{"files": {"model.safetensors": {}}}'])
def test_a_damaged_commit_marker_is_a_checkpoint_error_naming_it(tmp_path, text):
    _save_steps(tmp_path, [1])
    marker = ckpt.checkpoint_dir(tmp_path, 1) / "trainer.json"
    marker.write_text(text)
    with pytest.raises(CheckpointError, match=r"trainer\.json: .*damaged.*--resume-from"):
        ckpt.read_state(marker.parent)
    assert ckpt.latest_checkpoint(tmp_path) is None


@pytest.mark.parametrize("kind", DAMAGE_REASONS)
def test_damaged_weights_are_a_checkpoint_error_saying_how_before_any_tensor_is_read(tmp_path, kind, monkeypatch):
    model, _ = _fresh()
    path = tmp_path / "model.safetensors"
    ckpt.save_weights(model, path)
    path.write_bytes(damaged_weights(path.read_bytes(), kind))
    monkeypatch.setattr(ckpt, "load_model", lambda *a, **k: pytest.fail("tensor data read from a damaged file"))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: not a whole safetensors file: "
                                              rf"{DAMAGE_REASONS[kind]}.*copy or download it again"):
        ckpt.load_weights(path, Tiny())


def test_the_header_gives_every_tensor_with_its_dtype_and_shape(tmp_path):
    model, _ = _fresh()
    path = tmp_path / "model.safetensors"
    ckpt.save_weights(model, path)
    from safetensors.torch import load_file

    stored = load_file(str(path))  # the whole file, read the ordinary way
    assert {v.dtype for v in stored.values()} == {torch.float32}
    assert ckpt.read_header(path) == {k: ("F32", tuple(v.shape)) for k, v in stored.items()}
