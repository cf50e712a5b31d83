"""``python -m joimternet_lite prepare {openi,mimic-cxr} --source DIR --out DIR``.

Taught in notebook 12. Builds a manifest from a real dataset on disk and ends with the counts and a
skip summary (how many, which kinds, where the list is). ``--max-skip-fraction`` turns too many
failed files into a failure (exit code 1, as every expected failure). The raw source is only read;
``--out`` must be a new or empty folder or an earlier prepare's (``--overwrite`` for any other).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..config import check_fraction
from ..errors import run_command
from .mimic import SPLIT_CHOICES, UNCERTAIN_POLICIES, physionet_steps, prepare_mimic
from .openi import TEXT_CHOICES, prepare_openi
from .report_text import DEDEID_CHOICES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m joimternet_lite prepare", description=__doc__.splitlines()[2])
    sub = parser.add_subparsers(dest="dataset", required=True)
    openi = sub.add_parser("openi", help="OpenI / Indiana University (NLM archives or Kaggle layout)")
    mimic = sub.add_parser("mimic-cxr", help="MIMIC-CXR(-JPG) from your own PhysioNet download",
                           epilog=physionet_steps(), formatter_class=argparse.RawDescriptionHelpFormatter)
    for p in (openi, mimic):
        p.add_argument("--source", required=True, type=Path, help="folder holding the downloaded files")
        p.add_argument("--out", required=True, type=Path, help="output folder for the manifest")
        p.add_argument("--dedeid", choices=DEDEID_CHOICES, default="remove",
                       help="de-identification tokens (XXXX / ___): remove, keep, or replace with 'deid'")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--max-skip-fraction", type=check_fraction, default=0.1,
                       help="fail when more than this fraction of studies is skipped (default 0.1)")
        p.add_argument("--verify-decode", action="store_true",
                       help="decode every image (slower) instead of only checking its file structure")
        p.add_argument("--overwrite", action="store_true",
                       help="write into --out even when it holds other files than an earlier prepare's")
    openi.add_argument("--text", choices=TEXT_CHOICES, default="findings_or_impression",
                       help="training text (default: findings, impression if findings is empty)")
    openi.add_argument("--publish-splits", type=Path, default=None,
                       help="also write the published label/split files to this folder")
    mimic.add_argument("--split", choices=SPLIT_CHOICES, default="official")
    mimic.add_argument("--uncertain", choices=UNCERTAIN_POLICIES, default="zeros",
                       help="CheXpert -1: keep, or map to 0 (zeros) or 1 (ones)")
    mimic.add_argument("--allow-missing-labels", action="store_true",
                       help="go on without mimic-cxr-2.0.0-chexpert.csv (every label blank)")
    mimic.add_argument("--allow-missing-metadata", action="store_true",
                       help="go on without mimic-cxr-2.0.0-metadata.csv (JPG views unknown: laterals may train)")
    return parser


def main(argv: list[str] | None = None, debug: bool = False) -> int:
    """Run ``prepare``; a failure ends with one ``error:`` line and an exit code (``errors.run_command``)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return run_command(lambda: _prepare(args), debug)


def _prepare(args: argparse.Namespace) -> int:
    if args.dataset == "openi":
        summary = prepare_openi(args.source, args.out, text_choice=args.text, dedeid=args.dedeid, seed=args.seed,
                                max_skip_fraction=args.max_skip_fraction, publish_dir=args.publish_splits,
                                verify_decode=args.verify_decode, overwrite=args.overwrite)
    else:
        summary = prepare_mimic(args.source, args.out, split=args.split, uncertain=args.uncertain,
                                dedeid=args.dedeid, seed=args.seed, max_skip_fraction=args.max_skip_fraction,
                                allow_missing_labels=args.allow_missing_labels,
                                allow_missing_metadata=args.allow_missing_metadata, verify_decode=args.verify_decode,
                                overwrite=args.overwrite)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("skip_list", "skips_by_kind")}, indent=2))
    print(f"manifest and summary.json in {args.out}; every skipped file in {summary['skip_list']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
