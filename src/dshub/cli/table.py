"""Aligned text tables for listings (``dshub ls``): thousands of rows in milliseconds.

Rich's ``Table`` measures, wraps and renders every cell as segments: 0.4-1 ms per row
here, 4.2 s for a listing of 10,000 files and ~0.1 s of every ``dshub ls`` of 100
datasets. A listing needs none of that — cells never wrap, each column is padded to its
widest cell, like ``ls -l`` or ``rclone lsl`` — so it is formatted here as plain lines.
Styling (a bold header, directories in blue) is added only on a colour terminal, by the
caller, through Rich.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass



@dataclass(frozen=True)
class Column:
    """One column: its header and whether its cells are right-aligned (numbers, sizes)."""

    header: str
    right: bool = False


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes: wide East Asian characters 2, combining marks 0."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def clean_cell(text: str) -> str:
    """``text`` with control characters shown as ``?`` (a cell is one line; see :mod:`dshub.cli.sanitize`)."""
    from dshub.cli.sanitize import clean_line

    return clean_line(text)


def format_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], *, header: bool = True, gap: int = 2
) -> Iterator[str]:
    """Lines of a table: the header (when ``header``) and one line per row, no trailing blanks.

    Every row has one cell per column. The last column, when left-aligned, is not padded
    (long paths do not drag spaces behind them).
    """
    cells = [[clean_cell(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells for {len(columns)} columns")
    table = [[c.header for c in columns], *cells] if header else cells
    widths = [0] * len(columns)
    measured = [[cell_width(c) for c in row] for row in table]
    for row in measured:
        widths = [max(w, m) for w, m in zip(widths, row)]
    sep = " " * gap
    last = len(columns) - 1
    for row, sizes in zip(table, measured):
        parts: list[str] = []
        for i, (text, size) in enumerate(zip(row, sizes)):
            pad = " " * (widths[i] - size)
            if columns[i].right:
                parts.append(pad + text)
            elif i == last:
                parts.append(text)
            else:
                parts.append(text + pad)
        yield sep.join(parts).rstrip()
