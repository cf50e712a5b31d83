"""Text for the terminal: one item per line, and never a crash on a name that is not UTF-8.

File names are bytes on Linux: Python hands a name that is not UTF-8 over as a string with
surrogate escapes, which a strict UTF-8 stdout refuses to print, and a name may hold a newline
that would split one result over two lines. ``search`` and ``ground`` print names through
:func:`printable` and :func:`print_line`; ``search --json`` gives the exact names.
"""

from __future__ import annotations

import sys
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` on one line: bytes that are not UTF-8 as ``\\xNN``, control characters and line
    separators as ``\\n``, ``\\t``, ``\\xNN`` or ``\\uNNNN``; everything else as it is."""
    return "".join(_escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogate escape of the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if c in _NAMED:
        return _NAMED[c]
    if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp"):
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return c


def print_line(line: str, file=None) -> None:
    """Print ``line`` in the stream's encoding; a character it cannot encode is shown as an escape."""
    file = file or sys.stdout
    encoding = getattr(file, "encoding", None) or "utf-8"
    print(line.encode(encoding, "backslashreplace").decode(encoding), file=file)
