"""Run a notebook's exercise checks against a candidate answer, so tests can prove each check
discriminates: the solution passes, a plausible wrong answer fails.

An exercise N is a function stub in the notebook plus one or more code cells that call
``check("exercise N: ...", ...)``. :func:`run_check` loads the notebook's definitions
(``joimternet_lite.course.import_definitions``), binds the candidate(s) under the exercise's
function name(s), runs those check cells with ``check`` wrapped by a recorder, and says whether
every check call printed "correct".
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat

import joimternet_lite.course as course


class _CandidateRaised(Exception):
    """The candidate itself raised: a wrong answer, not a broken check cell."""


def check_cells(notebook: Path, exercise: int) -> list[str]:
    """Sources of the code cells of ``notebook`` that call ``check("exercise <exercise>: ...")``."""
    pattern = re.compile(rf"""\bcheck\(\s*f?["']exercise {exercise}:""")
    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and pattern.search(c.source)]
    if not cells:
        raise ValueError(f"{notebook}: no code cell calls check(\"exercise {exercise}: ...\"); "
                         "name the check as 'exercise N: <function>'")
    return cells


def run_check(notebook: Path, exercise: int, **candidates: object) -> bool:
    """True if every ``check`` call of exercise ``exercise`` in ``notebook`` says correct.

    ``candidates`` map the exercise's function name(s) to the answer to test, e.g.
    ``run_check(nb, 1, ce_image_to_report=my_fn)``. A name the notebook does not define raises
    ``KeyError`` (a typo would otherwise test nothing). The candidate failing counts as wrong:
    a ``check`` call that says not correct, an ``AssertionError`` in the check cell, an exception
    raised inside the candidate, or no ``check`` call reached at all (e.g. the cell caught
    ``NotImplementedError``). Any other exception means the check cell itself is broken (not
    self-contained given the notebook's definitions) and propagates.
    """
    notebook = Path(notebook)
    namespace = dict(_definitions(notebook.resolve(), notebook.stat().st_mtime_ns))
    unknown = sorted(set(candidates) - set(namespace))
    if unknown:
        raise KeyError(f"{notebook} defines no {unknown}; pass the exercise's function name(s)")
    namespace.update({name: _guard(value) for name, value in candidates.items()})
    results: list[bool] = []
    with _recording_check(results) as recorder, contextlib.redirect_stdout(io.StringIO()):
        namespace["check"] = recorder
        for source in check_cells(notebook, exercise):
            try:
                exec(compile(_strip_magics(source), str(notebook), "exec"), namespace)
            except (_CandidateRaised, AssertionError):
                return False
            except Exception:
                if not all(results):
                    return False    # a check said wrong, then the cell stumbled on the wrong answer
                raise
    return bool(results) and all(results)


@functools.lru_cache(maxsize=8)
def _definitions(notebook: Path, mtime_ns: int) -> dict[str, object]:
    """The notebook's definitions, loaded once per version of the file (``mtime_ns`` is the key):
    several candidates are usually tried on one notebook. Each run gets a copy of the dict."""
    return dict(vars(course.import_definitions(notebook)))


@contextlib.contextmanager
def _recording_check(results: list[bool]) -> Iterator[Callable[..., bool]]:
    """A ``check`` that appends each verdict to ``results``; also patched into the course module
    so a cell that imports ``check`` itself still gets the recorder."""
    real = course.check

    @functools.wraps(real)
    def recorder(*args, **kwargs) -> bool:
        ok = bool(real(*args, **kwargs))
        results.append(ok)
        return ok

    course.check = recorder
    try:
        yield recorder
    finally:
        course.check = real


def _guard(value: object) -> object:
    """Wrap a candidate function so an exception it raises is told apart from a broken cell."""
    if not callable(value) or isinstance(value, type):
        return value

    @functools.wraps(value)
    def guarded(*args, **kwargs):
        try:
            return value(*args, **kwargs)
        except NotImplementedError:
            raise      # the notebook's cells catch this and print "not solved yet"
        except Exception as error:
            raise _CandidateRaised(f"{value.__name__} raised {error!r}") from error

    return guarded


def _strip_magics(source: str) -> str:
    """Drop IPython ``%`` / ``!`` lines, as ``import_definitions`` does."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
