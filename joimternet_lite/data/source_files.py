"""Find and read the raw files of a downloaded dataset: folders, CSV tables, tar archives.

Taught in notebook 12. Shared by the OpenI and MIMIC-CXR parsers. Every reader turns the raw
library errors of a damaged file (a non-UTF-8 CSV, a cut ``.gz``, a missing column, a truncated
``.tgz``) into a :class:`~joimternet_lite.data.errors.SourceError` that names the file and the fix.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from .errors import SourceError

# What Python's archive and compression readers raise on a cut or corrupt file.
DAMAGED_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


def files_under(root: Path, pattern: str) -> list[Path]:
    """Sorted files under ``root`` whose name matches ``pattern``, following symlinked folders
    (data folders are often links to a shared disk; ``Path.rglob`` would not enter them)."""
    return sorted(Path(d) / f for d, _, files in os.walk(root, followlinks=True) for f in fnmatch.filter(files, pattern))


def damaged_archive(path: Path, err: BaseException) -> SourceError:
    """The error for a truncated or corrupt archive or compressed file at ``path``."""
    detail = " ".join(str(err).split())  # tarfile lists every method it tried, one per line
    return SourceError(
        f"{path}: the archive or compressed file is truncated or damaged ({type(err).__name__}: {detail}). "
        "Download it again (an interrupted download leaves a short file); raw data is only read."
    )


def read_csv_table(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """The CSV (or ``.csv.gz``) at ``path`` as strings ('' for blanks); it must have ``columns``.

    ``what`` names the expected file in the messages (e.g. ``"mimic-cxr-2.0.0-split.csv"``).
    Raises ``SourceError`` for a file that is not UTF-8, is cut short, is not a CSV, or lacks a column.
    """
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(
            f"{path}: not UTF-8 text ({err}). Download {what} again, or convert it to UTF-8 "
            f"(e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed.csv`) and point --source at the copy."
        ) from err
    except DAMAGED_ARCHIVE_ERRORS as err:
        raise damaged_archive(path, err) from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SourceError(f"{path}: not a readable CSV table ({err}). Download {what} again.") from err
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SourceError(
            f"{path}: column(s) {missing} missing (it has {list(table.columns)}). Is this {what}? "
            f"Download {what} again or fix its header row."
        )
    return table


def iter_tar_files(archive: Path, suffix: str) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the regular files in ``archive`` whose name ends with ``suffix``,
    read in memory (nothing is extracted). Raises ``SourceError`` for a cut or corrupt archive."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(suffix):
                    yield member.name, tar.extractfile(member).read()
    except DAMAGED_ARCHIVE_ERRORS as err:
        raise damaged_archive(archive, err) from err
