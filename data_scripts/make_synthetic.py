#!/usr/bin/env python
"""Generate SynthCXR (the built-in dataset), optionally also in a real on-disk layout.

    python data_scripts/make_synthetic.py --out data/synthcxr --num-studies 2000 --image-size 256 --seed 0
    python data_scripts/make_synthetic.py --out data/synthcxr --layout mimic-jpg   # + data/synthcxr/mimic-jpg/

Writes ``<out>/images``, ``<out>/masks`` and the manifest, prints label counts and the time taken.
``--layout`` also writes the OpenI (``openi``) or MIMIC-CXR (``mimic-jpg`` / ``mimic-dcm``) tree
under ``<out>/<layout>``; ``--split-file`` writes the published split list (study ids + sha256).
``--out`` must be new, empty or an earlier SynthCXR dataset (of which only the listed files are
replaced); ``--overwrite`` writes into any folder, deleting nothing that SynthCXR did not write.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from joimternet_lite.data.schema import CHEXPERT_LABELS
from joimternet_lite.data.synthcxr import (
    Difficulty,
    SynthCXRFolderError,
    generate_synthcxr,
    write_mimic_layout,
    write_openi_layout,
    write_split_file,
)

LAYOUTS = ("openi", "mimic-jpg", "mimic-dcm")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (the dataset root)")
    p.add_argument("--num-studies", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=256, help="square image side in px (128-1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
    p.add_argument("--contrast", type=float, default=Difficulty.contrast, help="finding contrast (Difficulty)")
    p.add_argument("--layout", choices=LAYOUTS, help="also write this real-dataset layout under OUT/<layout>")
    p.add_argument("--split-file", type=Path, help="also write the split list (ids per split + sha256) here")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder that is neither empty nor a SynthCXR dataset (deletes nothing else)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        ds = generate_synthcxr(args.out, args.num_studies, args.image_size, args.seed, workers=args.workers,
                               difficulty=Difficulty(contrast=args.contrast), overwrite=args.overwrite)
    except SynthCXRFolderError as err:
        raise SystemExit(f"error: {SynthCXRFolderError(err.folder, err.problem, 'add --overwrite')}") from None
    print(f"SynthCXR: {len(ds)} studies at {args.image_size} px in {time.perf_counter() - start:.1f} s -> {args.out}")
    for name in CHEXPERT_LABELS:
        values = ds["labels"]
        counts = {v: sum(1 for r in values if r[name] == v) for v in (1, -1, 0)}
        print(f"  {name:28s} positive {counts[1]:5d}  uncertain {counts[-1]:4d}  negative {counts[0]:5d}")
    if args.layout == "openi":
        print("OpenI layout:", write_openi_layout(args.out, args.out / "openi", nlm_png=True))
    elif args.layout:
        print("MIMIC layout:", write_mimic_layout(args.out, args.out / args.layout, image_format=args.layout[-3:]))
    if args.split_file:
        payload = write_split_file(args.split_file, args.num_studies, args.seed)
        print(f"split file {args.split_file}: sha256 {payload['sha256']}")


if __name__ == "__main__":
    main()
