"""Control characters from the hub never reach the terminal: the consoles and plain paths clean them."""

from __future__ import annotations

import io

from rich.table import Table

from dshub.cli.sanitize import clean_line, clean_text, safe_console


def test_clean_line_and_text() -> None:
    assert clean_line("a\x1b[31mb\nc\x07\x9b") == "a?[31mb?c??"
    assert clean_text("a\x1b]0;t\x07\n\tb\r") == "a?]0;t?\n\tb?"


def test_console_cleans_prints_table_cells_but_keeps_its_own_colours() -> None:
    buf = io.StringIO()
    c = safe_console(file=buf, width=80, force_terminal=True, color_system="standard", highlight=False)
    c.print("desc \x1b[2J end", markup=False)
    t = Table()
    t.add_column("x")
    t.add_row("cell\x1b]8;;http://evil\x07")
    c.print(t)
    c.print("[red]red[/]")
    out = buf.getvalue()
    assert "\x1b[2J" not in out and "\x1b]8" not in out and "\x07" not in out
    assert "desc ?[2J end" in out and "cell?]8;;http://evil?" in out
    assert "\x1b[31mred" in out  # Rich's own styling still works
