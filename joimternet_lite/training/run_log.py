"""The training run's log: a tqdm progress bar, ``metrics.jsonl`` and TensorBoard scalars, written
by rank 0 only. Taught in notebook 08 (the loop's logs, and what a resumed run keeps of them)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_write_text


class RunLog:
    """tqdm progress, ``metrics.jsonl`` and TensorBoard scalars; all no-ops off rank 0.

    On resume, the lines and scalars a killed run logged after its last checkpoint are dropped, so
    the logs read as one uninterrupted run.
    """

    def __init__(self, out_dir: Path, is_main: bool, start_step: int, total_steps: int):
        self.is_main = is_main
        self.metrics_path = out_dir / "metrics.jsonl"
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=not is_main,
                        dynamic_ncols=True)
        self.tb = None
        if is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._truncate_metrics(start_step)
            self.tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step + 1)

    def _truncate_metrics(self, start_step: int) -> None:
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line torn by a kill is dropped
                if json.loads(line)["step"] <= start_step:
                    kept.append(line + "\n")
        atomic_write_text(self.metrics_path, "".join(kept))

    def advance(self) -> None:
        self.bar.update(1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.is_main:
            return
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        for name, value in metrics.items():
            self.tb.add_scalar(f"train/{name}", value, step)
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", pairs_s=f"{metrics['pairs_per_s']:.1f}")

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
