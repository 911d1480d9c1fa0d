"""The Output object: json mode, stderr messages, no colour, confirm in non-interactive runs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from dshub.cli.common import parse_ref_arg
from dshub.cli.output import Output
from dshub.errors import UsageError
from dshub.models import User
from dshub.util.units import human_size


def test_json_mode_prints_one_document(capsys):
    out = Output(json_mode=True)
    out.info("hello")  # messages go to stderr, never into the JSON
    out.result(User(name="alice", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)), lambda: print("human"))
    o, e = capsys.readouterr()
    assert json.loads(o) == {"name": "alice", "is_admin": False, "created_at": "2026-01-01T00:00:00Z"}
    assert "hello" in e and "human" not in o


def test_json_mode_nested_models(capsys):
    Output(json_mode=True).result({"user": User(name="a"), "when": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    assert json.loads(capsys.readouterr().out)["user"]["name"] == "a"


def test_human_mode_and_quiet(capsys):
    out = Output()
    out.result({"x": 1}, lambda: out.out.print("table"))
    out.success("done")
    o, e = capsys.readouterr()
    assert o == "table\n" and "done" in e
    q = Output(quiet=True)
    q.result({"x": 1}, lambda: q.out.print("table"))
    q.info("x")
    q.success("done")
    q.warn("careful")
    o, e = capsys.readouterr()
    # Quiet keeps the result (stdout) and warnings; messages are left out.
    assert o == "table\n" and e.strip() == "Warning: careful"


def test_no_colour_when_not_a_tty(capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = Output()
    out.out.print("[red]red[/]")
    out.warn("w")
    o, e = capsys.readouterr()
    assert "\x1b[" not in o + e


def test_confirm_refuses_without_terminal():
    with pytest.raises(UsageError, match="--yes"):
        Output(interactive=False).confirm("Delete?")
    Output(interactive=False).confirm("Delete?", yes=True)
    with pytest.raises(UsageError):
        Output(interactive=False).prompt("Remote")


def test_helpers():
    assert human_size(999) == "999 B" and human_size(1500) == "1.5 kB" and human_size(3 * 10**9) == "3.0 GB"
    with pytest.raises(UsageError):
        parse_ref_arg("a/b:c")
    assert parse_ref_arg("a/b:c", allow_path=True).path == "c"
    with pytest.raises(UsageError):
        parse_ref_arg("a/b@v2", allow_version=False)


# --- tables (dshub.cli.table) -----------------------------------------------------------


def test_table_pads_columns_to_their_widest_cell():
    from dshub.cli.table import Column, format_table

    cols = [Column("NAME"), Column("SIZE", right=True), Column("PATH")]
    lines = list(format_table(cols, [["a", "1 B", "x/y"], ["longer-name", "12.5 MB", "z"]]))
    assert lines == [
        "NAME            SIZE  PATH",
        "a                1 B  x/y",
        "longer-name  12.5 MB  z",
    ]
    # No header, and a left-aligned last column never drags spaces behind it.
    assert list(format_table(cols[:1], [["ab"], ["a"]], header=False)) == ["ab", "a"]


def test_table_measures_wide_characters_and_hides_control_characters():
    from dshub.cli.table import Column, cell_width, clean_cell, format_table

    assert cell_width("abc") == 3 and cell_width("数据") == 4 and cell_width("e\u0301") == 1
    lines = list(format_table([Column("N"), Column("X")], [["数据", "1"], ["ab", "2"]], header=False))
    assert lines == ["数据  1", "ab    2"]
    assert clean_cell("a\x1b[31mb\x07\x9b") == "a?[31mb??"
    assert "\x1b" not in "".join(format_table([Column("N")], [["evil\x1b]0;title\x07"]]))
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        list(format_table([Column("N")], [["a", "b"]]))


def test_output_table_is_plain_text_off_a_terminal(capsys, monkeypatch):
    from dshub.cli.table import Column

    monkeypatch.setenv("FORCE_COLOR", "1")  # even forced colour stays off a pipe: lines are data
    out = Output()
    out.table([Column("NAME"), Column("N", right=True)], [["a", "1"], ["b", "22"]], row_styles=["bold blue", None])
    assert capsys.readouterr().out == "NAME   N\na      1\nb     22\n"
    assert out._out is None  # Rich was never needed


def test_output_table_styles_header_and_rows_on_a_colour_terminal(monkeypatch):
    import io
    import sys

    from dshub.cli.table import Column

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    Output().table([Column("NAME"), Column("N", right=True)], [["dir/", "1"], ["f", "2"]], row_styles=["bold blue", None])
    text = tty.getvalue()
    assert "\x1b[1mNAME  N\x1b[0m" in text and "\x1b[1;34mdir/  1\x1b[0m" in text and "\nf     2\n" in text
