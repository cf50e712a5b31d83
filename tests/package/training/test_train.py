"""The training engine: optimizer groups, accumulation and clipping against hand computations,
exact resume (in-process and after a real SIGKILL), NaN handling, logs and skips.

Tiny real model (authors' CNN at 32 px, a 1-layer BERT) and a tiny in-memory dataset whose items
draw augmentation noise from the global torch RNG, so resume must restore it exactly.
"""

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from joimternet_lite import checkpoint as ckpt
from joimternet_lite.config import Config, ConfigError, apply_override, load_config, to_dict
from joimternet_lite.data.dataset import Collate
from joimternet_lite.data.skips import TooManySkipsError
from joimternet_lite.data.tokenizer import build_tokenizer
from joimternet_lite.device import make_grad_scaler
from joimternet_lite.distributed import ResumableSampler
from joimternet_lite.models.joimternet import build_model
from joimternet_lite.models.outputs import ModelOutput
from joimternet_lite.training.resume import ResumeError, config_changes
from joimternet_lite.training.schedule import make_scheduler
from joimternet_lite.training.train import (
    Engine,
    NonFiniteLossError,
    optimizer_step,
    param_groups,
    step_kind,
    train,
)

WORDS = "left right lung heart effusion small large no pneumothorax normal cardiomegaly opacity base".split()
TINY = ["data.image_size=32", "model.embed_dim=16", "model.image.widths=[4,4,4,8,8,8,8]", "model.image.grid=4",
        "model.image.attention_heads=2", "model.text.layers=1", "model.text.hidden=16", "model.text.heads=2",
        "model.text.intermediate=32", "train.batch_size=4", "train.device=cpu", "train.warmup_steps=2",
        "train.log_every=1", "train.checkpoint_every=2", "train.keep_checkpoints=2"]


class TinyStudies(Dataset):
    """Deterministic images and reports; a little augmentation noise from the global RNG."""

    def __init__(self, n: int = 16, bad: dict[int, str] | None = None):
        self.n, self.bad = n, bad or {}

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        text = " ".join(WORDS[j] for j in torch.randint(0, len(WORDS), (3 + i % 5,), generator=g).tolist())
        image = torch.rand(1, 32, 32, generator=g) * 2 - 1 + 0.05 * torch.randn(1, 32, 32)
        if self.bad.get(i) == "nan":
            image = torch.full_like(image, float("nan"))
        if self.bad.get(i) == "unreadable":
            return {"skipped": (f"s{i}", f"/data/s{i}.png: file is empty (0 bytes), usually an interrupted copy.")}
        return {"image": image, "text": text, "labels": torch.zeros(14), "study_id": f"s{i}", "index": i}


def tiny_config(out_dir, *overrides) -> Config:
    cfg = Config()
    for item in [*TINY, f"train.out_dir={out_dir}", *overrides]:
        cfg = apply_override(cfg, item)
    return cfg


def tiny_run(cfg: Config, resume: bool = False, dataset: Dataset | None = None, resume_from: str | None = None,
             poison=None):
    """The model and loader every run of a test builds the same way (as a real run would).

    ``poison(model)`` may hook the model before training (fault injection).
    """
    tokenizer = build_tokenizer([" ".join(WORDS)] * 2, min_frequency=1)
    dataset = dataset or TinyStudies()
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, drop_last=True, collate_fn=Collate(tokenizer),
                        sampler=ResumableSampler(dataset, seed=cfg.train.seed, drop_last=True))
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, len(tokenizer), image_size=cfg.data.image_size)
    if poison is not None:
        poison(model)
    return train(cfg, resume=resume, model=model, dataloader=loader, resume_from=resume_from)


def weights(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ckpt.latest_checkpoint(run_dir) / "model.safetensors"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: far faster on a shared 2-core machine, and the kill test's child matches it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- engine pieces vs hand computations

class StandIn(nn.Module):
    """Two linear towers; its loss is a per-pair mean, so accumulation must equal the full batch."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image_encoder = nn.Linear(3, 2)
        self.text_encoder = nn.Sequential(nn.Linear(4, 2), nn.LayerNorm(2))

    def forward(self, images, input_ids, attention_mask, word_ids=None, sentence_ids=None):
        return ModelOutput(self.image_encoder(images), self.text_encoder(input_ids))


def pair_mse(out, **kwargs):
    loss = (out.image_vectors - out.report_vectors).pow(2).sum(1).mean()
    return loss, {"mse": loss.detach()}


def stand_in_engine(model, **train_overrides) -> Engine:
    cfg = Config()
    for k, v in {"lr_image": 0.1, "lr_text": 0.2, "warmup_steps": 0, "clip_image": 1e9, "clip_text": 1e9,
                 **train_overrides}.items():
        setattr(cfg.train, k, v)
    opt = torch.optim.AdamW(param_groups(model, cfg.train))
    return Engine(model=model, forward=model, loss_fn=pair_mse, optimizer=opt, scheduler=make_scheduler(opt, cfg.train),
                  scaler=make_grad_scaler(torch.device("cpu"), "fp32"), device=torch.device("cpu"),
                  precision="fp32", cfg=cfg)


def _batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"images": torch.randn(n, 3, generator=g), "input_ids": torch.randn(n, 4, generator=g),
            "attention_mask": torch.ones(n, 1), "study_ids": [f"s{i}" for i in range(n)]}


def _reference_grads(batch):
    model = StandIn()
    pair_mse(model(batch["images"], batch["input_ids"], None))[0].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_param_groups_split_towers_and_exempt_norms_and_biases_from_decay():
    cfg = Config().train
    groups = {(g["tower"], g["weight_decay"]): g for g in param_groups(StandIn(), cfg)}
    model = StandIn()
    assert set(groups) == {("image", cfg.weight_decay), ("image", 0.0), ("text", cfg.weight_decay), ("text", 0.0)}
    assert [p.shape for p in groups[("image", 0.0)]["params"]] == [model.image_encoder.bias.shape]
    assert len(groups[("text", 0.0)]["params"]) == 3  # linear bias, LayerNorm weight and bias
    assert groups[("text", 0.0)]["lr"] == cfg.lr_text and groups[("image", 0.0)]["lr"] == cfg.lr_image


def test_accumulated_micro_batches_give_the_full_batch_gradient():
    batch = _batch()
    halves = [{k: v[:3] for k, v in batch.items()}, {k: v[3:] for k, v in batch.items()}]
    model = StandIn()
    terms = optimizer_step(stand_in_engine(model, grad_accum=2), halves)
    full_loss = pair_mse(StandIn()(batch["images"], batch["input_ids"], None))[0]
    assert float(terms["loss"]) == pytest.approx(float(full_loss.detach()), rel=1e-6)
    for name, grad in _reference_grads(batch).items():
        assert torch.allclose(dict(model.named_parameters())[name].grad, grad, atol=1e-6), name


def test_each_tower_is_clipped_to_its_own_global_norm():
    batch = _batch()
    ref = _reference_grads(batch)
    model = StandIn()
    terms = optimizer_step(stand_in_engine(model, clip_image=0.05, clip_text=1e9), [batch])
    image_norm = torch.cat([ref[n].flatten() for n in ref if n.startswith("image")]).norm()
    assert float(terms["grad_norm_image"]) == pytest.approx(float(image_norm), rel=1e-5)
    for name, p in model.named_parameters():
        scale = min(1.0, 0.05 / (float(image_norm) + 1e-6)) if name.startswith("image") else 1.0
        assert torch.allclose(p.grad, ref[name] * scale, atol=1e-7), name
    assert image_norm > 0.05  # the hand computation above did clip


def test_first_adamw_step_matches_the_hand_formula():
    """Step 1: p <- p * (1 - lr * wd) - lr * g / (|g| + eps); no decay on biases / norms."""
    batch = _batch()
    ref = _reference_grads(batch)
    before = {n: p.detach().clone() for n, p in StandIn().named_parameters()}
    model = StandIn()
    engine = stand_in_engine(model, weight_decay=0.5)
    optimizer_step(engine, [batch])
    for name, p in model.named_parameters():
        lr = 0.1 if name.startswith("image") else 0.2
        wd = 0.5 if p.ndim >= 2 else 0.0
        expected = before[name] * (1 - lr * wd) - lr * ref[name] / (ref[name].abs() + 1e-8)
        assert torch.allclose(p.detach(), expected, atol=1e-6), name
    assert engine.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 * (1 + __import__("math").cos(
        __import__("math").pi / 300)))  # the schedule advanced one optimizer step


def test_step_kind_follows_the_itm_probability_and_is_reproducible():
    cfg = Config().train
    cfg.mlm, cfg.itm_probability = True, 0.3
    kinds = [step_kind(cfg, s) for s in range(2000)]
    assert kinds == [step_kind(cfg, s) for s in range(2000)]
    assert kinds.count("itm") / 2000 == pytest.approx(0.3, abs=0.04)
    cfg.mlm = False
    assert {step_kind(cfg, s) for s in range(50)} == {"itm"}


# ---------------------------------------------------------------- resume, logs

def test_resumed_run_ends_with_the_same_weights_and_logs(tmp_path):
    """4 steps straight vs the same run cut after step 2 and resumed.

    3 batches per epoch, so the resumed leg starts mid-epoch and crosses an epoch boundary; steps
    alternate image-text / MLM (itm_probability 0.5 with seed 42), so both kinds are resumed.
    """
    options = ["train.steps=4", "train.mlm=true", "train.itm_probability=0.5"]
    straight = tiny_run(tiny_config(tmp_path / "a", *options), dataset=TinyStudies(12))
    assert [step_kind(straight_cfg := tiny_config(tmp_path, *options).train, s) for s in range(4)] \
        == ["itm", "mlm", "itm", "mlm"] and straight_cfg.seed == 42
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(ckpt.checkpoint_dir(tmp_path / "b", 4))  # as if killed before step 4's checkpoint
    resumed = tiny_run(tiny_config(tmp_path / "b", *options), resume=True, dataset=TinyStudies(12))
    assert straight.steps == resumed.steps == 4
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    last = Path("checkpoints", "step_000004", ckpt.MODEL_FILE)  # byte for byte: report.md's sha256 agrees
    assert (tmp_path / "a" / last).read_bytes() == (tmp_path / "b" / last).read_bytes()
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    straight_lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]  # the killed run's lines after step 2 were replaced
    assert [x["loss"] for x in lines] == [x["loss"] for x in straight_lines]
    assert load_config(str(tmp_path / "b" / "config.yaml")).train.steps == 4
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == ["step_000002", "step_000004"]


def test_a_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    tiny_run(tiny_config(tmp_path, "train.steps=1"))
    with pytest.raises(FileExistsError, match="--resume"):
        tiny_run(tiny_config(tmp_path, "train.steps=2"))


def test_a_fresh_run_refuses_a_folder_whose_only_checkpoint_is_damaged(tmp_path):
    """Damaged trainer.json, intact weights: the run is recoverable, so nothing may be overwritten."""
    tiny_run(tiny_config(tmp_path, "train.steps=2"))
    folder = ckpt.checkpoint_dir(tmp_path, 2)
    (folder / ckpt.STATE_FILE).write_text("{ damaged")
    before = {p: p.read_bytes() for p in [folder / "model.safetensors", tmp_path / "metrics.jsonl"]}
    with pytest.raises(FileExistsError, match=r"step_000002.*--resume"):
        tiny_run(tiny_config(tmp_path, "train.steps=2"))
    with pytest.raises(ResumeError, match=r"step_000002.*damaged.*not valid JSON"):
        tiny_run(tiny_config(tmp_path, "train.steps=2"), resume=True)
    assert {p: p.read_bytes() for p in before} == before


def test_resume_passes_over_a_checkpoint_that_was_never_completed(tmp_path):
    """Killed inside the first checkpoint write: no commit marker, nothing to resume, start over."""
    tiny_run(tiny_config(tmp_path / "a", "train.steps=2"))
    tiny_run(tiny_config(tmp_path / "b", "train.steps=1"))
    (ckpt.checkpoint_dir(tmp_path / "b", 1) / ckpt.STATE_FILE).unlink()
    resumed = tiny_run(tiny_config(tmp_path / "b", "train.steps=2"), resume=True)
    assert resumed.steps == 2
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_resume_from_an_older_step_or_folder_replays_the_same_run(tmp_path):
    tiny_run(tiny_config(tmp_path / "a", "train.steps=4"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    ckpt.checkpoint_dir(tmp_path / "b", 4).joinpath("model.safetensors").write_bytes(b"damaged")
    tiny_run(tiny_config(tmp_path / "b", "train.steps=4"), resume_from="2")
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert (tmp_path / "b" / "abandoned_checkpoints" / "step_000004").is_dir()  # moved aside, not deleted
    tiny_run(tiny_config(tmp_path / "c", "train.steps=4"), resume_from=str(ckpt.checkpoint_dir(tmp_path / "c", 2)))
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))
    with pytest.raises(ResumeError, match=r"no checkpoint of step 3.*step_000002, step_000004"):
        tiny_run(tiny_config(tmp_path / "c", "train.steps=4"), resume_from="3")


def test_a_changed_learning_rate_on_resume_is_applied_logged_and_kept_in_the_history(tmp_path, capsys):
    tiny_run(tiny_config(tmp_path, "train.steps=2", "train.warmup_steps=0"))
    tiny_run(tiny_config(tmp_path, "train.steps=4", "train.warmup_steps=0", "train.lr_image=1e-4",
                         "train.weight_decay=0.01"), resume=True)
    out = capsys.readouterr().out
    assert "train.lr_image: 0.001 -> 0.0001" in out and "train.steps: 2 -> 4" in out
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    cosine = 0.5 * (1 + math.cos(math.pi * 2 / 4))  # the step-3 factor of the new 4-step schedule
    assert lines[2]["lr_image"] == pytest.approx(1e-4 * cosine) and lines[2]["lr_text"] == pytest.approx(1e-3 * cosine)
    history = [json.loads(x) for x in (tmp_path / "config_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [0, 2]
    assert history[1]["changes"]["train.lr_image"] == [1e-3, 1e-4]
    assert load_config(str(tmp_path / "config.yaml")).train.lr_image == 1e-4
    result_cfg = json.loads((ckpt.checkpoint_dir(tmp_path, 4) / ckpt.STATE_FILE).read_text())
    decayed = [g["weight_decay"] for g in result_cfg["optimizer"]["param_groups"]]
    assert sorted(set(decayed)) == [0.0, 0.01]


def test_a_changed_batch_size_on_resume_is_refused(tmp_path):
    tiny_run(tiny_config(tmp_path, "train.steps=2"))
    with pytest.raises(ResumeError, match=r"train\.batch_size.*4.*8"):
        tiny_run(tiny_config(tmp_path, "train.steps=4", "train.batch_size=8"), resume=True)


def test_invalid_settings_are_refused_before_training(tmp_path):
    cfg = tiny_config(tmp_path, "train.steps=2")
    cfg.train.lr_image = float("nan")  # built in code, not through load_config
    with pytest.raises(ConfigError, match="train.lr_image"):
        tiny_run(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_an_out_dir_that_is_a_file_names_the_key_and_the_path(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"train\.out_dir=.*run.*is a file"):
        tiny_run(tiny_config(tmp_path / "run", "train.steps=1"))


def test_an_out_dir_that_is_not_writable_names_the_key_and_the_path(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits, but not into /sys
        target = Path("/sys/joimternet_run")
    else:
        (tmp_path / "read_only").mkdir(mode=0o555)
        target = tmp_path / "read_only" / "run"
    with pytest.raises(ConfigError, match=r"train\.out_dir=.*run.*not writable"):
        tiny_run(tiny_config(target, "train.steps=1"))


def test_a_full_disk_while_checkpointing_stops_clearly_and_resume_recovers(tmp_path, monkeypatch):
    tiny_run(tiny_config(tmp_path / "a", "train.steps=4"))
    real = ckpt.save_weights

    def full_at_step_4(model, path):
        if "step_000004" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(model, path)

    monkeypatch.setattr(ckpt, "save_weights", full_at_step_4)
    with pytest.raises(ckpt.CheckpointWriteError, match=r"step_000004.*model\.safetensors.*disk is full"):
        tiny_run(tiny_config(tmp_path / "b", "train.steps=4"))
    monkeypatch.setattr(ckpt, "save_weights", real)
    tiny_run(tiny_config(tmp_path / "b", "train.steps=4"), resume=True)
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


# ---------------------------------------------------------------- NaN and skipped samples

def test_nan_loss_stops_with_step_ids_terms_after_saving_the_last_good_state(tmp_path):
    dataset = TinyStudies(bad={5: "nan"})
    with pytest.raises(NonFiniteLossError, match=r"optimizer step \d+ .*'s5'.*ce_global_i2t.*nan_policy=skip") as err:
        tiny_run(tiny_config(tmp_path, "train.steps=8"), dataset=dataset)
    good = int(str(err.value).split("(after ")[1].split(" ")[0])
    assert ckpt.latest_checkpoint(tmp_path).name == f"step_{good:06d}"
    assert str(ckpt.checkpoint_dir(tmp_path, good)) in str(err.value)


def nan_gradient_at_step(step: int):
    """Poison the image tower's last gradient at optimizer step ``step`` (1-based): the loss stays finite."""
    def poison(model):
        calls = []

        def hook(grad):
            calls.append(1)
            return grad * float("nan") if len(calls) == step else grad

        next(p for n, p in model.named_parameters() if n.startswith("image_encoder")).register_hook(hook)
    return poison


def test_a_non_finite_gradient_is_never_stepped_on_and_the_last_good_state_is_saved(tmp_path):
    tiny_run(tiny_config(tmp_path / "clean", "train.steps=3", "train.checkpoint_every=3"))
    with pytest.raises(NonFiniteLossError, match=r"optimizer step 4 \(after 3 good steps\).*gradient") as err:
        tiny_run(tiny_config(tmp_path / "bad", "train.steps=8", "train.checkpoint_every=8"),
                 poison=nan_gradient_at_step(4))
    assert str(ckpt.checkpoint_dir(tmp_path / "bad", 3)) in str(err.value)
    assert_same_weights(weights(tmp_path / "clean"), weights(tmp_path / "bad"))  # the state after step 3


def test_nan_policy_skip_passes_over_a_non_finite_gradient(tmp_path):
    result = tiny_run(tiny_config(tmp_path, "train.steps=4", "train.nan_policy=skip"), poison=nan_gradient_at_step(2))
    assert result.steps == 4 and result.nan_skips == 1
    assert all(torch.isfinite(v).all() for v in weights(tmp_path).values())


def test_nan_policy_skip_counts_the_skipped_steps_and_finishes(tmp_path):
    result = tiny_run(tiny_config(tmp_path, "train.steps=6", "train.nan_policy=skip"),
                      dataset=TinyStudies(bad={5: "nan"}))
    assert result.steps == 6 and result.nan_skips >= 1  # s5 comes once per epoch
    assert all(torch.isfinite(v).all() for v in weights(tmp_path).values())


def test_too_many_nan_skips_stop_the_run(tmp_path):
    with pytest.raises(NonFiniteLossError):
        tiny_run(tiny_config(tmp_path, "train.steps=6", "train.nan_policy=skip", "train.max_nan_skips=0"),
                 dataset=TinyStudies(bad={5: "nan"}))


def test_unreadable_samples_are_counted_once_listed_and_summarised(tmp_path, capsys):
    result = tiny_run(tiny_config(tmp_path, "train.steps=6", "data.max_skip_fraction=0.1"),
                      dataset=TinyStudies(bad={3: "unreadable"}))
    assert result.skipped_samples == 1  # met in both epochs, counted once
    listed = [json.loads(x) for x in (tmp_path / "skipped_samples.jsonl").read_text().splitlines()]
    assert [(x["study_id"], x["kind"]) for x in listed] == [("s3", "unreadable")]
    assert listed[0]["reason"].startswith("/data/s3.png: file is empty")
    assert "skipped 1 of 16 training studies (unreadable: 1)" in capsys.readouterr().out


def test_more_skips_than_the_threshold_fail_the_run(tmp_path):
    with pytest.raises(TooManySkipsError, match=r"skipped 2 of 16 .*unreadable: 2.*skipped_samples\.jsonl"):
        tiny_run(tiny_config(tmp_path, "train.steps=6", "data.max_skip_fraction=0.1"),
                 dataset=TinyStudies(bad={1: "unreadable", 2: "unreadable"}))
    assert (tmp_path / "skipped_samples.jsonl").exists()


# ---------------------------------------------------------------- a real SIGKILL, then resume

KILL_OPTIONS = ["train.steps=6", "train.mlm=true", "train.itm_probability=0.5"]


def child_main(out_dir: str, pause: float, only_step: int | None) -> None:
    """What the killed subprocess runs: the same tiny run, resuming whatever is there.

    Each checkpoint write (or only that of ``only_step``) stalls ``pause`` seconds between its
    tensor files and its commit marker, so a kill can land in the middle of a write.
    """
    torch.set_num_threads(1)
    write_marker = ckpt.atomic_write_text

    def stalled(path, text):
        if only_step is None or Path(path).parent == ckpt.checkpoint_dir(out_dir, only_step):
            time.sleep(pause)
        write_marker(path, text)

    ckpt.atomic_write_text = stalled
    tiny_run(tiny_config(out_dir, *KILL_OPTIONS), resume=True, dataset=TinyStudies(12))


def start_child(out_dir: Path, pause: float = 0.0, only_step: int | None = None) -> subprocess.Popen:
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_train; " \
           f"test_train.child_main({str(out_dir)!r}, {pause}, {only_step})"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended first: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the child"
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    torch.set_num_threads(1)
    tiny_run(tiny_config(out, *KILL_OPTIONS), dataset=TinyStudies(12))
    return weights(out)


def test_sigkill_while_writing_a_checkpoint_then_resume_gives_the_same_weights(tmp_path, uninterrupted):
    proc = start_child(tmp_path, pause=5, only_step=4)  # step 4's write stalls 5 s before its commit marker
    step4 = ckpt.checkpoint_dir(tmp_path, 4)
    # step 2 is complete once step 4's write has started; kill inside its 5 s stall
    wait_for(lambda: (step4 / "trainer.safetensors").exists(), proc, timeout=240)
    kill(proc)
    assert not (step4 / ckpt.STATE_FILE).exists()  # killed mid-write: a half-written checkpoint is left
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.checkpoint_dir(tmp_path, 2)
    result = tiny_run(tiny_config(tmp_path, *KILL_OPTIONS), resume=True, dataset=TinyStudies(12))
    assert result.steps == 6
    assert_same_weights(uninterrupted, weights(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_a_random_moment_then_resume_gives_the_same_weights(tmp_path, uninterrupted, seed):
    rng = __import__("random").Random(seed)
    metrics = tmp_path / "metrics.jsonl"
    for _ in range(2):  # killed twice, at random points of the run, then let finish
        proc = start_child(tmp_path, pause=rng.choice([0.0, 0.3]))
        wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, proc, timeout=240)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            kill(proc)
    proc = start_child(tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    assert_same_weights(uninterrupted, weights(tmp_path))


def test_config_changes_list_differences_and_skip_keys_an_older_version_did_not_write():
    cfg = Config()
    saved = to_dict(Config())
    saved["train"]["lr_text"] = 0.5
    saved["train"]["out_dir"] = "elsewhere"  # a moved run folder is the same run
    del saved["train"]["max_nan_skips"]
    assert config_changes(saved, cfg) == {"train.lr_text": [0.5, cfg.train.lr_text]}
    assert config_changes(None, cfg) == {}
