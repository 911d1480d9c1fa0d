"""Bounded previews of a stored file: a table for CSV/TSV/Parquet, a head for text, images.

Everything reads through ``RangeReader`` (``read(start, length)`` ranged reads of the
object) and stops at its byte budget, so a preview of a 50 GB file costs what one of a
50 kB file does. Parquet needs pyarrow (the ``parquet`` extra); without it, or when the
first row group is bigger than the budget, the page says what it could not show.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A preview never reads more than this of a file, whatever its kind and size.
BUDGET = 4 * 1024 * 1024
TEXT_HEAD = 64 * 1024
TABLE_HEAD = 256 * 1024
MAX_ROWS = 50
MAX_COLS = 40
MAX_CELL = 200
IMAGE_MAX = 8 * 1024 * 1024

TEXT_EXT = {"txt", "md", "markdown", "json", "jsonl", "ndjson", "log", "yaml", "yml", "toml", "ini", "cfg",
            "xml", "html", "py", "r", "jl", "sql", "sh", "rst", "tex"}
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
               "webp": "image/webp"}
_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
          "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",)}


class BudgetExceeded(Exception):
    """A preview wanted more bytes than its budget."""


class RangeReader:
    """Ranged reads of one object with a byte budget shared by all reads."""

    def __init__(self, read: Callable[[int, int], bytes], size: int, budget: int = BUDGET) -> None:
        self._read = read
        self.size = size
        self.budget = budget
        self.used = 0

    def read(self, start: int, length: int) -> bytes:
        length = max(0, min(length, self.size - start))
        if self.used + length > self.budget:
            raise BudgetExceeded(f"needs more than {self.budget} bytes")
        self.used += length
        return self._read(start, length) if length else b""


class RangeFile(io.RawIOBase):
    """A read-only, seekable file object over a :class:`RangeReader` (for pyarrow)."""

    def __init__(self, reader: RangeReader) -> None:
        self._r = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._r.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        data = self._r.read(self._pos, len(b))
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._r.size - self._pos
        data = self._r.read(self._pos, size)
        self._pos += len(data)
        return data


@dataclass
class Preview:
    """What the file page shows; ``kind`` picks the template block."""

    kind: str  # "table" | "text" | "image" | "none"
    note: str = ""
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    text: str = ""
    truncated: bool = False
    schema: list[tuple[str, str]] = field(default_factory=list)
    row_count: int | None = None
    bytes_read: int = 0


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _decode_head(data: bytes, complete: bool) -> str:
    if not complete:
        # Cut at the last newline so a row or a multi-byte character is never half shown.
        cut = data.rfind(b"\n")
        if cut > 0:
            data = data[: cut + 1]
    return data.decode("utf-8", errors="replace")


def preview_delimited(reader: RangeReader, delimiter: str) -> Preview:
    """The first rows of a CSV/TSV file as a table (header = first row)."""
    data = reader.read(0, TABLE_HEAD)
    complete = len(data) >= reader.size
    text = _decode_head(data, complete)
    rows: list[list[str]] = []
    try:
        for i, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)):
            if i > MAX_ROWS + 1:  # header, the rows shown, one more to know there are more
                break
            rows.append([_cell(c) for c in row[:MAX_COLS]])
    except csv.Error as e:
        return Preview(kind="none", note=f"not readable as a table: {e}", bytes_read=reader.used)
    if not rows:
        return Preview(kind="none", note="empty file", bytes_read=reader.used)
    header, body = rows[0], rows[1 : MAX_ROWS + 1]
    more = len(rows) > MAX_ROWS + 1 or not complete
    return Preview(kind="table", columns=header, rows=body, truncated=more, bytes_read=reader.used,
                   note=f"first {len(body)} rows" if more else f"{len(body)} row{'' if len(body) == 1 else 's'}")


def preview_text(reader: RangeReader, ext: str) -> Preview:
    """The head of a text file; JSON pretty-printed when the whole document fits."""
    data = reader.read(0, TEXT_HEAD)
    complete = len(data) >= reader.size
    if b"\x00" in data[:8192]:
        return Preview(kind="none", note="binary content: no text preview", bytes_read=reader.used)
    text = _decode_head(data, complete)
    if ext == "json" and complete:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)[:TEXT_HEAD]
        except ValueError:
            pass
    return Preview(kind="text", text=text, truncated=not complete, bytes_read=reader.used,
                   note="" if complete else f"first {len(data) // 1024} KiB")


def preview_parquet(reader: RangeReader) -> Preview:
    """Schema, row count and the first rows of a Parquet file (pyarrow, ranged reads)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return Preview(kind="none", note="Parquet preview needs pyarrow on the hub (pip install 'dshub[parquet]')")
    try:
        pf = pq.ParquetFile(RangeFile(reader), pre_buffer=False)
        schema = pf.schema_arrow
        fields = [(f.name, str(f.type)) for f in schema][: MAX_COLS * 5]
        rows_total = pf.metadata.num_rows
        p = Preview(kind="table", schema=fields, row_count=rows_total,
                    columns=[n for n, _ in fields[:MAX_COLS]], types=[t for _, t in fields[:MAX_COLS]])
        if pf.metadata.num_row_groups == 0:
            p.note = "no rows"
            p.bytes_read = reader.used
            return p
        try:
            batch = next(pf.iter_batches(batch_size=MAX_ROWS, row_groups=[0], columns=p.columns), None)
        except BudgetExceeded:
            p.note = f"first rows not shown: the first row group is larger than {BUDGET // 2**20} MiB"
            p.bytes_read = reader.used
            return p
        if batch is not None:
            cols = batch.to_pydict()
            p.rows = [[_cell(cols[c][i]) for c in p.columns] for i in range(batch.num_rows)]
        p.truncated = len(p.rows) < rows_total
        p.note = f"first {len(p.rows)} of {rows_total:,} rows" if p.truncated else f"{rows_total:,} rows"
        p.bytes_read = reader.used
        return p
    except BudgetExceeded:
        return Preview(kind="none", note=f"Parquet metadata larger than {BUDGET // 2**20} MiB", bytes_read=reader.used)
    except Exception as e:  # pyarrow raises many kinds for a damaged file
        return Preview(kind="none", note=f"not readable as Parquet ({type(e).__name__})", bytes_read=reader.used)


def image_type(path: str, size: int) -> str | None:
    """The image MIME type to preview ``path`` with, or None (not an image or too big)."""
    mime = IMAGE_TYPES.get(extension(path))
    return mime if mime and size <= IMAGE_MAX else None


def sniff_image(mime: str, head: bytes) -> bool:
    """True when ``head`` starts the way a ``mime`` image does (no HTML served as a PNG)."""
    ok = any(head.startswith(m) for m in _MAGIC.get(mime, ()))
    return ok and (mime != "image/webp" or head[8:12] == b"WEBP")


def build_preview(path: str, size: int, read: Callable[[int, int], bytes]) -> Preview:
    """The preview of the file at ``path`` of ``size`` bytes, read with ``read(start, length)``."""
    ext = extension(path)
    reader = RangeReader(read, size)
    if size == 0:
        return Preview(kind="none", note="empty file")
    if ext in ("csv", "tsv"):
        return preview_delimited(reader, "\t" if ext == "tsv" else ",")
    if ext in ("parquet", "pq"):
        return preview_parquet(reader)
    if ext in IMAGE_TYPES:
        if image_type(path, size) is None:
            return Preview(kind="none", note=f"image larger than {IMAGE_MAX // 2**20} MiB: no preview")
        return Preview(kind="image")
    if ext in TEXT_EXT or ext == "":
        return preview_text(reader, ext)
    return Preview(kind="none", note=f"no preview for .{ext} files")
