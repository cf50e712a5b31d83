"""Accuracy of the frontal / lateral classifier (data/views.py) on real OpenI films.

    python bench/view_accuracy.py [--samples /work/shared/samples/openi]

Reads ``images_256/*.dcm.jpg`` (256 x 256 squashed copies of OpenI's normalized PNGs) and
``images_full/*.dcm.png`` (full size) under ``--samples``, and prints each film's score, the
accuracy and the confusion matrix. The labels below were given by eye, one film at a time (a
lateral shows the spine at one edge and one lung field; a frontal two lung fields either side of
the mediastinum). The classifier's weights were fitted on SynthCXR films only, so these films are
a held-out test; with 21 films (17 distinct films of 8 studies, 4 of them again at full size) one
error moves the accuracy by about 5 points. ``--crops N`` also classifies N random crops (80-100 %
of each side, half of them mirrored) of every 256 px film: a probe of framing and orientation. Result in bench/RESULTS.md, section "View classifier
on real OpenI films".
"""

import argparse
from pathlib import Path

import numpy as np

from joimternet_lite.data.images import read_image
from joimternet_lite.data.views import guess_view, view_score
from joimternet_lite.markdown import markdown_table

LATERAL_IMAGES = {"1000_IM-0003-2001", "1001_IM-0004-1002", "12_IM-0133-2001", "13_IM-0198-2001",
                  "23_IM-0879-2001", "2_IM-0652-2001", "30_IM-1385-2001", "34_IM-1644-2001"}
FRONTAL_IMAGES = {"1000_IM-0003-1001", "1000_IM-0003-3001", "1001_IM-0004-1001", "12_IM-0133-1001",
                  "13_IM-0198-1001", "23_IM-0879-1001", "2_IM-0652-1001", "30_IM-1385-1001", "34_IM-1644-1001"}
VIEWS = ("frontal", "lateral")


def label_of(path: Path) -> str:
    key = path.name.split(".")[0]
    if key in LATERAL_IMAGES:
        return "lateral"
    if key in FRONTAL_IMAGES:
        return "frontal"
    raise SystemExit(f"{path}: no hand label; add it to FRONTAL_IMAGES or LATERAL_IMAGES")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=Path, default=Path("/work/shared/samples/openi"))
    p.add_argument("--crops", type=int, default=20, help="random crops per 256 px film (0: none)")
    args = p.parse_args()
    paths = sorted(args.samples.glob("images_256/*.dcm.jpg")) + sorted(args.samples.glob("images_full/*.dcm.png"))
    if not paths:
        raise SystemExit(f"{args.samples}: no images_256/*.dcm.jpg or images_full/*.dcm.png")
    rows, confusion = [], {(t, g): 0 for t in VIEWS for g in VIEWS}
    for path in paths:
        image = read_image(path)
        truth, guess = label_of(path), guess_view(image)
        confusion[truth, guess] += 1
        rows.append([f"{path.parent.name}/{path.name}", truth, guess, view_score(image)])
    print(markdown_table(["film", "label", "classifier", "score (> 0 frontal)"], rows, digits=[0, 0, 0, 2]))
    correct = confusion["frontal", "frontal"] + confusion["lateral", "lateral"]
    print(f"\naccuracy {correct}/{len(paths)} = {correct / len(paths):.3f}; "
          f"smallest |score| {min(abs(r[3]) for r in rows):.2f}\n")
    print(markdown_table(["label \\ classifier", *VIEWS],
                         [[t, *(confusion[t, g] for g in VIEWS)] for t in VIEWS]))
    if args.crops:
        films = [(read_image(x), label_of(x)) for x in paths if x.parent.name == "images_256"]
        hits = crop_hits(films, args.crops, np.random.default_rng(0))
        print(f"\nrandom crops: {hits}/{len(films) * args.crops} = {hits / (len(films) * args.crops):.3f}")


def crop_hits(films: list[tuple[np.ndarray, str]], n: int, rng: np.random.Generator) -> int:
    """How many of ``n`` random crops (80-100 % of each side, mirrored half the time) per film keep their label."""
    hits = 0
    for image, truth in films:
        h, w = image.shape
        for _ in range(n):
            ch, cw = int(h * rng.uniform(0.8, 1.0)), int(w * rng.uniform(0.8, 1.0))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = image[y:y + ch, x:x + cw]
            hits += guess_view(crop[:, ::-1] if rng.random() < 0.5 else crop) == truth
    return hits


if __name__ == "__main__":
    main()
