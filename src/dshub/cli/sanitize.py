"""Neutralise control characters in text the hub sends before it reaches a terminal.

A dataset description, a name or an error message comes from the hub; a terminal
executes escape sequences in what it prints (cursor moves, colours, window titles,
hyperlinks). Every string the command line prints goes through here: the Rich consoles
of :class:`dshub.cli.output.Output` clean each string they render, the plain-text paths
(tables, raw snippets, error lines) call these functions. Control characters are shown
as ``?``; newlines and tabs are kept where a block of text may hold them.
"""

from __future__ import annotations

import re
from typing import Any

# C0, DEL and C1: Unicode category Cc.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_line(text: str) -> str:
    """``text`` as one printable line: every control character (newlines too) shown as ``?``."""
    return _CONTROL.sub("?", text)


def clean_text(text: str) -> str:
    """``text`` with control characters shown as ``?``, keeping newlines and tabs."""
    return _CONTROL_KEEP_LINES.sub("?", text)


def safe_console(**kwargs: Any) -> Any:
    """A Rich ``Console`` that cleans every string it renders (prints, table cells, tree labels).

    Rich's own styling is added after the text is cleaned, so colours still work; markup
    in a string is parsed after cleaning too (callers pass ``markup=False`` for hub text).
    """
    from rich.console import Console

    class _SafeConsole(Console):
        def render_str(self, text: str, **kw: Any) -> Any:
            return super().render_str(clean_text(text), **kw)

    return _SafeConsole(**kwargs)
