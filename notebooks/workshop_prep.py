"""Before a workshop: generate the course data and train the shared course model, timed.

`make workshop-prep` runs this once on the machine the session will use (or on each learner's
machine). Notebooks 09, 10 and 11 then load the finished model instead of training it, and
notebook 12 finds its SynthCXR folders already drawn. Re-running it is cheap: what exists is kept.

    python notebooks/workshop_prep.py [--smoke]
"""

import argparse
import os
import sys
import time

from joimternet_lite import checkpoint as ckpt
from joimternet_lite.course import course_model_settings, course_run, paper_recipe_settings, smoke_mode
from joimternet_lite.data.dataset import load_training_data
from joimternet_lite.device import pick_device
from joimternet_lite.training.train import train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="set JOIMTERNET_SMOKE=1 (a tiny model, for CI)")
    args = parser.parse_args()
    if args.smoke:
        os.environ["JOIMTERNET_SMOKE"] = "1"
    device = pick_device()
    course = course_model_settings(device.type, smoke_mode())
    start = time.perf_counter()
    # the course model (notebooks 09-11), then the paper's recipe at the same size (notebook 11)
    for what, settings in (("course model", course), ("paper-recipe model", paper_recipe_settings(course))):
        began = time.perf_counter()
        cfg, synth_root, run_dir = course_run(settings, device.type)   # seed 0, as in the notebooks
        load_training_data(cfg, tokenizer_dir=run_dir / "tokenizer")   # draws SynthCXR when missing
        found = ckpt.latest_checkpoint(run_dir)
        if found is not None and found.name == ckpt.checkpoint_dir(run_dir, cfg.train.steps).name:
            print(f"{what}: already trained ({found})", flush=True)
            continue
        train(cfg, resume=True)
        print(f"{what}: {cfg.name}, {cfg.train.steps} steps on {device.type}, data and training "
              f"{time.perf_counter() - began:.0f} s, in {run_dir}", flush=True)
    print(f"workshop prep done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
