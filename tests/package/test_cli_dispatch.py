"""The command line dispatches explicitly: every command (and each of prepare's datasets) names its own
handler in cli.py, prepare is parsed like every other command, and only cli.py reads argparse
namespaces; library modules take typed arguments."""

import argparse
import ast
import re
from pathlib import Path

import pytest

from joimternet_lite import cli

PACKAGE = Path(cli.__file__).resolve().parent
COMMANDS = {"env", "doctor", "generate", "train", "evaluate", "demo", "ablate", "prepare openi",
            "prepare mimic-cxr", "search", "ground"}


def leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Command name -> its parser; a command with subcommands of its own (prepare) gives one per subcommand."""
    leaves = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                leaves |= leaf_parsers(sub, f"{prefix}{name} ") or {f"{prefix}{name}": sub}
    return leaves


def test_every_command_has_its_own_handler_in_cli():
    handlers = {name: p.get_default("func") for name, p in leaf_parsers(cli.build_parser()).items()}
    assert set(handlers) == COMMANDS
    assert all(callable(h) and h.__module__ == cli.__name__ for h in handlers.values()), handlers
    assert handlers["env"] is handlers["doctor"]  # an alias, the one shared handler
    assert len(set(handlers.values())) == len(COMMANDS) - 1  # no handler serves two commands


def test_prepare_is_parsed_like_every_command(capsys):
    args = cli.build_parser().parse_args(["prepare", "mimic-cxr", "--source", "raw", "--out", "out", "--split",
                                          "paper", "--max-skip-fraction", "0.25"])
    assert (args.func, args.source, args.out, args.split, args.max_skip_fraction) == (
        cli._prepare_mimic, Path("raw"), Path("out"), "paper", 0.25)
    with pytest.raises(SystemExit) as stop:
        cli.main(["prepare", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m joimternet_lite prepare ") and "openi" in out and "mimic-cxr" in out


@pytest.mark.parametrize("bad", ["-1", "1.5", "nan", "half"])
def test_a_skip_fraction_outside_0_1_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["prepare", "openi", "--source", "s", "--out", "o", "--max-skip-fraction", bad])
    assert stop.value.code == 2
    assert re.search(re.escape(bad) + r" is not a fraction: use a value in the range \[0, 1\]", capsys.readouterr().err)


def test_only_the_command_line_imports_argparse():
    readers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if path.name != "cli.py" and _imports(path, "argparse"))
    assert not readers, f"library modules should take typed arguments, not argparse namespaces: {readers}"


def _imports(path: Path, module: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) else [])
        if module in names:
            return True
    return False
