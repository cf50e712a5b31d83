"""Command line: ``python -m joimternet_lite <command>``. Each command imports only what it needs."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from .errors import EXIT_CODES_HELP, EXIT_USAGE, run_command
from .progress import quiet_library_progress_bars
from .terminal import print_line, printable


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (listed in ``--help``, see ``errors``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere: before or after the command (and dataset) name
    argv = [a for a in argv if a != "--debug"]
    quiet_library_progress_bars()  # our own tqdm bars say what runs
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return run_command(lambda: args.func(args), debug)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m joimternet_lite", description=__doc__, epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of expected failures too (also accepted after the command)")
    sub = parser.add_subparsers(title="commands")

    p = sub.add_parser("env", aliases=["doctor"], help="print versions, device, precision and data folders")
    p.set_defaults(func=_env)

    p = sub.add_parser("generate", help="generate SynthCXR into a folder")
    p.add_argument("--out", required=True)
    p.add_argument("--num-studies", type=_positive_int, default=2000)
    p.add_argument("--image-size", type=_synth_image_size, default=256, help="pixels (128-1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder that is neither empty nor a SynthCXR dataset (files of the same "
                        "names are replaced, nothing else is deleted)")
    p.set_defaults(func=_generate)

    for name, helptext, handler in (("train", "train a preset", _train),
                                    ("evaluate", "evaluate a trained run", _evaluate),
                                    ("demo", "generate, train, evaluate and write the report", _demo),
                                    ("ablate", "train and evaluate the paper's ablation variants", _ablate)):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", default="demo_cpu", help="a preset name or a YAML path")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=50")
        if name == "train":
            p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
            p.add_argument("--resume-from", metavar="STEP|PATH",
                           help="continue from this checkpoint (a step number of this run, or a checkpoint folder); "
                                "newer checkpoints are moved to <out_dir>/abandoned_checkpoints")
        if name == "ablate":
            p.add_argument("--seeds", type=_positive_int, default=1,
                           help="train each variant with seeds train.seed .. train.seed + N - 1 (same data); the "
                                "step budget is ablation.steps, else train.steps (demo_cpu: the demo's own)")
        p.set_defaults(func=handler)

    _add_prepare_command(sub)
    _add_model_commands(sub)
    return parser


def _add_prepare_command(sub) -> None:
    """``prepare {openi,mimic-cxr}``: build a manifest from a real dataset on disk; the raw source is only read."""
    from .data import prepare_options as choices

    prepare = sub.add_parser(
        "prepare", help="prepare a real dataset: prepare {openi,mimic-cxr} --source DIR --out DIR",
        description="Taught in notebook 12. Builds a manifest from a real dataset on disk and ends with the counts and a "
                    "skip summary (how many, which kinds, where the list is).")
    datasets = prepare.add_subparsers(dest="dataset", required=True)
    openi = datasets.add_parser("openi", help="OpenI / Indiana University (NLM archives or Kaggle layout)")
    _add_prepare_arguments(openi)
    openi.add_argument("--text", choices=choices.OPENI_TEXT_CHOICES, default="findings_or_impression",
                       help="training text (default: findings, impression if findings is empty)")
    openi.add_argument("--publish-splits", type=Path, default=None,
                       help="also write the published label/split files to this folder")
    openi.set_defaults(func=_prepare_openi)
    mimic = datasets.add_parser("mimic-cxr", help="MIMIC-CXR(-JPG) from your own PhysioNet download",
                                epilog=choices.physionet_steps(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_prepare_arguments(mimic)
    mimic.add_argument("--split", choices=choices.MIMIC_SPLIT_CHOICES, default="official")
    mimic.add_argument("--uncertain", choices=choices.MIMIC_UNCERTAIN_POLICIES, default="zeros",
                       help="CheXpert -1: keep, or map to 0 (zeros) or 1 (ones)")
    mimic.add_argument("--allow-missing-labels", action="store_true",
                       help="go on without mimic-cxr-2.0.0-chexpert.csv (every label blank)")
    mimic.add_argument("--allow-missing-metadata", action="store_true",
                       help="go on without mimic-cxr-2.0.0-metadata.csv (JPG views unknown: laterals may train)")
    mimic.set_defaults(func=_prepare_mimic)


def _add_prepare_arguments(p) -> None:
    """The flags both datasets take."""
    from .data.report_text import DEDEID_CHOICES

    p.add_argument("--source", required=True, type=Path, help="folder holding the downloaded files")
    p.add_argument("--out", required=True, type=Path, help="output folder for the manifest")
    p.add_argument("--dedeid", choices=DEDEID_CHOICES, default="remove",
                   help="de-identification tokens (XXXX / ___): remove, keep, or replace with 'deid'")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-skip-fraction", type=_fraction, default=0.1,
                   help="fail when more than this fraction of studies is skipped (default 0.1)")
    p.add_argument("--verify-decode", action="store_true",
                   help="decode every image (slower) instead of only checking its file structure")
    p.add_argument("--overwrite", action="store_true",
                   help="write into --out even when it holds other files than an earlier prepare's")


def _add_model_commands(sub) -> None:
    """``search`` and ``ground``: use a trained model (a saved, checkpoint or run folder)."""
    from .config import SCORINGS

    p = sub.add_parser("search", help="rank a folder's images for a sentence (--images --query), or a "
                                      "manifest's reports for an image (--image --manifest)")
    p.add_argument("--model", required=True, help="a save_pretrained folder, a checkpoint folder or a run folder")
    p.add_argument("--images", help="folder of PNG / JPEG / DICOM files to rank (searched recursively)")
    p.add_argument("--query", help="the sentence to rank the images for")
    p.add_argument("--image", help="one image whose matching reports are ranked")
    p.add_argument("--manifest", help="dataset root (manifest/ and manifest.json) whose reports are ranked")
    p.add_argument("--top", type=_positive_int, default=10, help="results to print (default 10)")
    p.add_argument("--scoring", choices=SCORINGS, default="global",
                   help="global: vector cosine (default); local: word-region matching; combined: both")
    p.add_argument("--index", help="embedding index file (default: .joimternet-index.safetensors inside the "
                                   "folder); must be new or an index written by search")
    p.add_argument("--overwrite", action="store_true", help="let --index replace a file that is not an index")
    p.add_argument("--json", action="store_true",
                   help="print the results as one JSON document (exact file names) instead of one line each")
    _add_device_arguments(p)
    p.set_defaults(func=_search)
    p = sub.add_parser("ground", help="draw the word-region maps of a sentence over an image")
    p.add_argument("--model", required=True, help="a save_pretrained folder, a checkpoint folder or a run folder")
    p.add_argument("--image", required=True, help="a PNG, JPEG or DICOM file")
    p.add_argument("--text", required=True, help="the sentence whose words are mapped")
    p.add_argument("--out", required=True, help="the PNG to write: a new file, or a figure written by ground")
    p.add_argument("--overwrite", action="store_true", help="let --out replace a file that is not such a figure")
    p.add_argument("--kind", choices=("alpha", "raw", "sparc"), default="alpha",
                   help="alpha: the attention of the local score; raw: word-region similarity over regions; "
                        "sparc: sparse word-region weights (min-max, cut at 1/R)")
    _add_device_arguments(p)
    p.set_defaults(func=_ground)


def _add_device_arguments(p) -> None:
    from .config import DEVICES, PRECISIONS

    p.add_argument("--device", default="auto", help=" | ".join(DEVICES))
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the towers' precision: auto is bf16/fp16 on CUDA and fp32 on the CPU; bf16 on a CPU "
                        "with bf16 instructions embeds faster (bench/RESULTS.md)")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _synth_image_size(text: str) -> int:
    from .data.synthcxr import MAX_SIZE, MIN_SIZE

    value = _whole_number(text)
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{value} is outside {MIN_SIZE}..{MAX_SIZE} px; pick a size in that range")
    return value


def _fraction(text: str) -> float:
    """A fraction in [0, 1] (``--max-skip-fraction``), checked against the config's own range."""
    from .config import FRACTION

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not FRACTION.accepts(value):
        raise argparse.ArgumentTypeError(f"{text} is not a fraction: use a value in the range {FRACTION}")
    return value


def _env(args) -> int:
    from .commands.doctor import print_environment

    print_environment()
    return 0


def _generate(args) -> int:
    from .data.synthcxr import SynthCXRFolderError, generate_synthcxr

    try:
        generate_synthcxr(args.out, num_studies=args.num_studies, image_size=args.image_size, seed=args.seed,
                          overwrite=args.overwrite)
    except SynthCXRFolderError as err:
        raise SynthCXRFolderError(err.folder, err.problem, "add --overwrite") from None
    return 0


def _load(args):
    from .config import load_config

    return load_config(args.config, args.overrides)


def _train(args) -> int:
    from .training.train import train

    train(_load(args), resume=args.resume, resume_from=args.resume_from)
    return 0


def _evaluate(args) -> int:
    from .commands.pipeline import evaluate_run

    evaluate_run(_load(args))
    return 0


def _demo(args) -> int:
    from .commands.pipeline import run_demo

    run_demo(_load(args))  # always resumes: a re-run continues an interrupted demo
    return 0


def _ablate(args) -> int:
    from .commands.ablate import run_ablation

    run_ablation(_load(args), seeds=args.seeds)
    return 0


def _prepare_openi(args) -> int:
    from .data.openi import prepare_openi

    _show_warnings()
    return _prepared(prepare_openi(args.source, args.out, text_choice=args.text, dedeid=args.dedeid, seed=args.seed,
                                   max_skip_fraction=args.max_skip_fraction, publish_dir=args.publish_splits,
                                   verify_decode=args.verify_decode, overwrite=args.overwrite), args.out)


def _prepare_mimic(args) -> int:
    from .data.mimic import prepare_mimic

    _show_warnings()
    return _prepared(prepare_mimic(args.source, args.out, split=args.split, uncertain=args.uncertain,
                                   dedeid=args.dedeid, seed=args.seed, max_skip_fraction=args.max_skip_fraction,
                                   allow_missing_labels=args.allow_missing_labels,
                                   allow_missing_metadata=args.allow_missing_metadata,
                                   verify_decode=args.verify_decode, overwrite=args.overwrite), args.out)


def _show_warnings() -> None:
    """The preparers log what they skip or assume as warnings; show them, one line each."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


def _prepared(summary: dict, out: Path) -> int:
    """Print a prepare's counts (without the long skip lists) and where the manifest and skip list are."""
    print(json.dumps({k: v for k, v in summary.items() if k not in ("skip_list", "skips_by_kind")}, indent=2))
    print(f"manifest and summary.json in {out}; every skipped file in {summary['skip_list']}")
    return 0


def _search(args) -> int:
    """``search``: one result per line on stdout (path or study id, then the score; control
    characters escaped), or one JSON document with ``--json``; the index summary, skipped files and
    warnings on stderr. A folder in which no image could be read is an error."""
    from .commands.search import SearchError, check_query
    from .inference import ImageTextInference

    if bool(args.images) == bool(args.image):
        raise SearchError("give either --images DIR --query TEXT (rank images) or --image FILE --manifest ROOT "
                          "(rank reports)")
    if args.images and args.query is None:
        raise SearchError("--images needs --query TEXT, the sentence to rank the images for")
    if args.image and not args.manifest:
        raise SearchError("--image needs --manifest ROOT, the dataset whose reports are ranked")
    if args.images:
        check_query(args.query)  # before the model loads: a bad query fails at once
    engine = ImageTextInference.from_pretrained(args.model, device=args.device, precision=args.precision)
    return _rank_reports(engine, args) if args.image else _rank_images(engine, args)


def _rank_images(engine, args) -> int:
    """``search --images --query``: the folder's index summary on stderr, then the best images."""
    from .commands.search import SearchError, describe_update, search_images

    result = search_images(engine, args.images, args.query, args.top, args.scoring, args.index,
                           overwrite=args.overwrite)
    print(describe_update(result), file=sys.stderr)
    if not result.indexed:
        raise SearchError(f"{args.images}: none of the {len(result.update.skipped)} image file(s) could be read "
                          "(each is listed above with its reason); fix or remove them, or search another folder")
    if args.json:
        print_line(json.dumps({"query": args.query, "scoring": args.scoring, "index": str(result.index_path),
                               "index_kept": result.update.not_kept is None, "indexed": result.indexed,
                               "results": [{"path": str(p), "score": s} for p, s in result.hits],
                               "skipped": [{"path": p, "reason": r} for p, r in result.update.skipped]}))
    else:
        for path, score in result.hits:
            print_line(f"{printable(str(path))}\t{score:.4f}")
    return 0


def _rank_reports(engine, args) -> int:
    """``search --image --manifest``: the best reports of the manifest for the image."""
    from .commands.search import rank_reports

    ranked = rank_reports(engine, _read_image(args.image), args.manifest, args.top, args.scoring)
    if args.json:
        print_line(json.dumps({"image": str(args.image), "scoring": args.scoring,
                               "results": [{"study_id": i, "score": s, "text": t} for i, s, t in ranked]}))
    else:
        for study_id, score, text in ranked:
            print_line(f"{printable(study_id)}\t{score:.4f}\t{printable(text)}")
    return 0


def _ground(args) -> int:
    """``ground``: the word maps of ``--text`` over ``--image`` as a PNG.

    Refuses to replace a file that is not a figure it wrote (unless ``--overwrite``) before the model
    loads; warns when the model reads only the start of the text.
    """
    from .data.tokenizer import split_words
    from .inference import FIGURE_TAG, ImageTextInference, check_figure_path, check_sentence, word_maps_figure
    from .viz import save_figure

    check_sentence(args.text, "--text")
    out = check_figure_path(args.out, args.overwrite)
    engine = ImageTextInference.from_pretrained(args.model, device=args.device, precision=args.precision)
    found = engine.word_maps(_read_image(args.image), args.text, args.kind)
    total = len(split_words(args.text))
    if len(found.words) < total:
        print_line(f"warning: --text has {total} words, more than the model reads ({engine.config.data.max_length} "
                   f"tokens, data.max_length): only the first {len(found.words)} are mapped", sys.stderr)
    save_figure(word_maps_figure(found, args.text), out, FIGURE_TAG)
    print_line(f"word maps ({args.kind}) of {len(found.words)} words written to {printable(str(out))}")
    return 0


def _read_image(path: str):
    """The pixels of ``path``; each warning of its reader (Pillow, pydicom) said once on stderr."""
    from .data.images import read_image
    from .inference import reader_warnings

    notes = []
    with reader_warnings(notes):
        pixels = read_image(path)
    for note in notes:
        print_line(f"warning: {printable(str(path))}: {note} (used as read)", sys.stderr)
    return pixels
