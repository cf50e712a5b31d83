"""Past one machine: two `torchrun --nnodes=2` launchers meeting at a c10d rendezvous on 127.0.0.1
(gloo, one process each) train exactly as one launcher with two processes, and only rank 0 writes."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import TINY_MODEL

from joimternet_lite.data.synthcxr import generate_synthcxr

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
STEPS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(root, out_dir) -> list[str]:
    overrides = [o for o in TINY_MODEL if not o.startswith(("train.steps", "train.checkpoint_every"))]
    return ["-m", "joimternet_lite", "train", "--config", "demo_cpu", *overrides, f"data.root={root}",
            f"train.steps={STEPS}", f"train.checkpoint_every={STEPS}", "train.log_every=1", f"train.out_dir={out_dir}"]


def _env():
    # the same thread count in both layouts (torchrun sets 1 only when a launcher starts several)
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _losses(out_dir) -> list[float]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("multinode") / "synth"
    generate_synthcxr(root, num_studies=24, image_size=128, progress=False)
    return root


def test_two_node_launchers_give_the_one_launcher_loss_curve(synth, tmp_path):
    single = tmp_path / "single"
    done = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node=2", *_train_args(synth, single)],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    port = _free_port()
    launchers = [subprocess.Popen([*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
                                   f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=joimternet-test",
                                   *_train_args(synth, tmp_path / f"node{k}")],
                                  env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in range(2)]
    outputs = [p.communicate(timeout=600) for p in launchers]
    assert all(p.returncode == 0 for p in launchers), [err[-3000:] for _, err in outputs]

    written = [k for k in range(2) if _files(tmp_path / f"node{k}")]
    assert len(written) == 1, [_files(tmp_path / f"node{k}") for k in range(2)]  # rank 0's launcher only
    rank0 = tmp_path / f"node{written[0]}"
    assert len(_losses(single)) == STEPS
    assert _losses(rank0) == pytest.approx(_losses(single), rel=0, abs=1e-6)
