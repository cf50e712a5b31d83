"""Test-wide settings: offline hub, one torch thread (small tensors run faster and more
reproducibly on one thread than on two cores shared with other processes)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


TINY_MODEL = ["data.num_studies=24", "data.image_size=64", "data.synth_image_size=128", "train.steps=2",
              "train.batch_size=4", "train.checkpoint_every=2", "train.device=cpu", "model.embed_dim=32",
              "model.image.grid=4", "model.image.widths=[4,8,8,16,16,32,32]", "model.image.attention_heads=2",
              "model.text.layers=1", "model.text.hidden=32", "model.text.heads=2", "model.text.intermediate=64"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder (config.yaml, tokenizer/, one checkpoint) of a tiny model trained 2 steps on
    24 SynthCXR studies at 64 px, and its SynthCXR root; shared by the hub, inference and search tests."""
    from joimternet_lite.config import load_config
    from joimternet_lite.train import train

    root = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config("demo_cpu", TINY_MODEL + [f"data.root={root / 'synth'}", f"train.out_dir={root / 'run'}"])
    train(cfg)
    return root / "run", root / "synth"
