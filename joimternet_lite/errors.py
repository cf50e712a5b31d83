"""Expected failures and the one place that turns any failure into an exit code.

A ``UserError`` is a failure the user can fix: bad input, data, config or checkpoint. Its message
starts with the file or config key at fault and ends with what to do. Every module's error type
for such cases subclasses it (``ConfigError``, ``CheckpointError``, ``ImageReadError``, ...), so
:func:`run_command` can end the command with one ``error: ...`` line instead of a traceback.
Anything else is a bug: its traceback is printed, with a request to report it.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_USER_ERROR = 1      # an expected failure: the error line names the file or key and the fix
EXIT_USAGE = 2           # a bad command line (argparse prints the usage)
EXIT_BUG = 3             # an unexpected exception: traceback printed, please report it
EXIT_INTERRUPTED = 130   # Ctrl-C

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_USER_ERROR}    expected failure (bad input, data, config or checkpoint); the last line,
       'error: <file or key>: <what> <what to do>', says what to fix
  {EXIT_USAGE}    bad command line
  {EXIT_BUG}    unexpected error (a bug): the traceback is printed; report it with the output of
       'python -m joimternet_lite env'
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); train --resume continues from the last checkpoint

--debug prints the traceback of expected failures too."""


class UserError(Exception):
    """A failure the user can fix; the message names the file or config key, and the fix."""


def one_line(err: BaseException) -> str:
    """The error's message on one line (whitespace collapsed); an OS error names its file first."""
    if isinstance(err, OSError) and err.filename is not None and not isinstance(err, UserError):
        return f"{err.filename}: {err.strerror}; check the path, its permissions and the free disk space"
    return " ".join(str(err).split()) or type(err).__name__


def is_expected(err: BaseException) -> bool:
    """A ``UserError``, or an operating-system error (file missing or in the way, no permission, disk full)."""
    return isinstance(err, UserError | OSError)


def run_command(work: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``work`` and return its exit code; failures end with one ``error:`` line on stderr.

    Expected failures (:func:`is_expected`) print only that line (and their traceback with
    ``debug``); anything else prints its traceback and asks for a bug report.
    """
    try:
        return work() or EXIT_OK
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - this is the command's last line of defence
        if is_expected(err):
            if debug:
                traceback.print_exc()
            print(f"error: {one_line(err)}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc()
        print(f"error: unexpected {type(err).__name__}: {one_line(err)}. This is a bug; please report it with "
              "the traceback above and the output of 'python -m joimternet_lite env'.", file=sys.stderr)
        return EXIT_BUG
