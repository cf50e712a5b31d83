"""Markdown tables for the generated reports (the demo report and the ablation table)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_cell(value, digits: int = 3) -> str:
    """A float with ``digits`` decimals, ``n/a`` for None or NaN, anything else as ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], digits: int | Sequence[int] = 3) -> str:
    """A GitHub markdown table; ``digits`` is one number of decimals, or one per column."""
    per_column = [digits] * len(header) if isinstance(digits, int) else list(digits)
    if len(per_column) != len(header):
        raise ValueError(f"digits has {len(per_column)} entries for {len(header)} columns")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_cell(c, d) for c, d in zip(row, per_column, strict=True)) + " |"
              for row in rows]
    return "\n".join(lines)
