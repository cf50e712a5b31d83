"""Command line: ``python -m joimternet_lite <command>``. Each command imports only what it needs."""

from __future__ import annotations

import argparse
import sys

from .errors import EXIT_CODES_HELP, EXIT_USAGE, run_command


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (listed in ``--help``, see ``errors``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted before or after the command name, and by prepare
    argv = [a for a in argv if a != "--debug"]
    _quiet_library_progress_bars()
    if argv and argv[0] == "prepare":
        from .data.prepare import main as prepare_main

        return prepare_main(argv[1:], debug=debug)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return run_command(lambda: args.func(args), debug)


def _quiet_library_progress_bars() -> None:
    """Our own tqdm bars say what runs; ``datasets``' per-call bars (filter, save) only add noise."""
    import datasets

    datasets.disable_progress_bars()


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
    p.add_argument("--num-studies", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_generate)

    for name, helptext in (("train", "train a preset"), ("evaluate", "evaluate a trained run"),
                           ("demo", "generate, train, evaluate and write the report"),
                           ("ablate", "train and evaluate the paper's ablation variants")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", default="demo_cpu", help="a preset name or a YAML path")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=50")
        if name == "train":
            p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
        p.set_defaults(func=globals()[f"_{name}"])

    sub.add_parser("prepare", help="prepare a real dataset: prepare {openi,mimic-cxr} --source DIR --out DIR")
    return parser


def _env(args) -> int:
    from .doctor import print_environment

    print_environment()
    return 0


def _generate(args) -> int:
    from .data.synthcxr import generate_synthcxr

    generate_synthcxr(args.out, num_studies=args.num_studies, image_size=args.image_size, seed=args.seed)
    return 0


def _load(args):
    from .config import load_config

    return load_config(args.config, args.overrides)


def _train(args) -> int:
    from .train import train

    train(_load(args), resume=args.resume)
    return 0


def _evaluate(args) -> int:
    from .pipeline import evaluate_run

    evaluate_run(_load(args))
    return 0


def _demo(args) -> int:
    from .pipeline import run_demo

    run_demo(_load(args))  # always resumes: a re-run continues an interrupted demo
    return 0


def _ablate(args) -> int:
    from .ablate import run_ablation

    run_ablation(_load(args))
    return 0
