"""Pure parts of the web pages: bounded previews, display filters, snippets, redirects."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from dshub.hub.web import preview as pv
from dshub.hub.web.render import human_size, make_environment, relative_time, urlpath
from dshub.hub.web.routes import _safe_next
from dshub.hub.web.snippets import dataset_snippets, file_snippets


class Store:
    """An object in memory that counts what a preview reads of it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read_bytes = 0
        self.calls = 0

    def read(self, start: int, length: int) -> bytes:
        self.calls += 1
        chunk = self.data[start : start + length]
        self.read_bytes += len(chunk)
        return chunk


def test_csv_preview_of_a_big_file_reads_only_its_head() -> None:
    rows = "".join(f"{i},name {i},{i * 2.5}\n" for i in range(400_000))
    s = Store(("id,name,value\n" + rows).encode())
    assert len(s.data) > 8 * 2**20
    p = pv.build_preview("big.csv", len(s.data), s.read)
    assert p.kind == "table" and p.columns == ["id", "name", "value"]
    assert len(p.rows) == pv.MAX_ROWS and p.rows[0] == ["0", "name 0", "0.0"]
    assert p.truncated and p.note == "first 50 rows"
    assert s.read_bytes <= pv.TABLE_HEAD


def test_tsv_text_json_and_binary_previews() -> None:
    s = Store(b"a\tb\n1\t2\n")
    p = pv.build_preview("x.tsv", len(s.data), s.read)
    assert (p.columns, p.rows, p.note) == (["a", "b"], [["1", "2"]], "1 row")
    s = Store(b'{"a": [1, 2]}')
    p = pv.build_preview("x.json", len(s.data), s.read)
    assert p.kind == "text" and p.text == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    big = ("line é\n" * 50_000).encode()
    s = Store(big)
    p = pv.build_preview("notes.md", len(big), s.read)
    assert p.truncated and p.text.endswith("\n") and "\ufffd" not in p.text
    assert s.read_bytes <= pv.TEXT_HEAD
    s = Store(b"\x00\x01binary")
    assert pv.build_preview("blob", 8, s.read).kind == "none"
    assert pv.build_preview("x.exe", 10, Store(b"0" * 10).read).note == "no preview for .exe files"
    assert pv.build_preview("x.csv", 0, Store(b"").read).note == "empty file"


def test_long_cells_and_many_columns_are_cut() -> None:
    header = ",".join(f"c{i}" for i in range(100))
    s = Store((header + "\n" + "y" * 1000 + "\n").encode())
    p = pv.build_preview("wide.csv", len(s.data), s.read)
    assert len(p.columns) == pv.MAX_COLS
    assert len(p.rows[0][0]) == pv.MAX_CELL and p.rows[0][0].endswith("…")


def _parquet(rows: int, row_group_size: int, payload: int = 10) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.table({"i": list(range(rows)), "s": [f"{i:0{payload}d}" for i in range(rows)]})
    pq.write_table(table, buf, row_group_size=row_group_size, compression="none")
    return buf.getvalue()


def test_parquet_preview_reads_footer_and_first_row_group_only() -> None:
    pytest.importorskip("pyarrow")
    data = _parquet(200_000, 1000)
    s = Store(data)
    p = pv.build_preview("t.parquet", len(data), s.read)
    assert p.schema == [("i", "int64"), ("s", "string")] and p.row_count == 200_000
    assert len(p.rows) == pv.MAX_ROWS and p.rows[3] == ["3", "0000000003"]
    assert p.note == "first 50 of 200,000 rows"
    assert s.read_bytes < len(data) / 10 and s.read_bytes <= pv.BUDGET


def test_parquet_with_a_huge_first_row_group_shows_the_schema_within_budget() -> None:
    pytest.importorskip("pyarrow")
    data = _parquet(60_000, 60_000, payload=100)
    assert len(data) > pv.BUDGET
    s = Store(data)
    p = pv.build_preview("t.parquet", len(data), s.read)
    assert p.schema == [("i", "int64"), ("s", "string")] and not p.rows
    assert "row group is larger than" in p.note
    assert s.read_bytes <= pv.BUDGET


def test_damaged_parquet_is_a_note_not_an_error() -> None:
    s = Store(b"PAR1 this is not parquet")
    p = pv.build_preview("t.parquet", len(s.data), s.read)
    assert p.kind == "none" and "not readable as Parquet" in p.note


def test_images_are_previewed_only_when_small_and_really_images() -> None:
    assert pv.image_type("a/b.PNG", 100) == "image/png"
    assert pv.image_type("a.png", pv.IMAGE_MAX + 1) is None
    assert pv.image_type("a.svg", 10) is None  # SVG can script: never inline
    assert pv.sniff_image("image/png", b"\x89PNG\r\n\x1a\n....")
    assert not pv.sniff_image("image/png", b"<html><script>")
    assert pv.sniff_image("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    assert not pv.sniff_image("image/webp", b"RIFF\x00\x00\x00\x00WAVE")


def test_display_filters() -> None:
    assert [human_size(n) for n in (0, 1023, 1536, 5 * 2**30)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert relative_time(now - timedelta(seconds=10), now) == "just now"
    assert relative_time(now - timedelta(minutes=3), now) == "3 minutes ago"
    assert relative_time(now - timedelta(hours=1), now) == "1 hour ago"
    assert relative_time(now + timedelta(days=2), now) == "in 2 days"
    assert urlpath("a b/<img>?#.csv") == "a%20b/%3Cimg%3E%3F%23.csv"


def test_templates_escape_everything() -> None:
    env = make_environment()
    t = env.from_string("{{ x }}|{{ x|urlpath }}")
    assert t.render(x="<img src=x onerror=alert(1)>") == (
        "&lt;img src=x onerror=alert(1)&gt;|%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E")


def test_snippets_quote_paths_and_carry_no_secret() -> None:
    ds = dataset_snippets("alice", "taxi", 3, "dshub", "datasets/abc/v3/")
    assert [s.text for s in ds[:2]] == ["dshub download alice/taxi@v3",
                                        'import dshub\ntree = dshub.open_dataset("alice/taxi@v3")']
    assert ds[2].text == 'eval "$(dshub creds alice/taxi@v3 --format env)"\nrclone copy dshub:dshub/datasets/abc/v3/ ./taxi'
    f = file_snippets("alice", "taxi", 3, 'odd "name" $(x).csv')
    assert f[0].text == 'import pandas as pd\ndf = pd.read_csv("dshub://alice/taxi@v3/odd \\"name\\" $(x).csv")'
    assert f[-1].text == "dshub download 'alice/taxi@v3:odd \"name\" $(x).csv'"


@pytest.mark.parametrize("target, expected", [
    ("/datasets/a/b", "/datasets/a/b"), ("/?q=x", "/?q=x"), ("//evil.example", "/"), ("https://evil", "/"),
    ("/\\evil", "/"), ("", "/"), (None, "/"), ("/a\nb", "/"),
])
def test_sign_in_redirects_only_inside_the_site(target: str | None, expected: str) -> None:
    assert _safe_next(target) == expected
