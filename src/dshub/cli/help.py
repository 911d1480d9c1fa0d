"""Plain placeholders in ``--help``: ``REF``, ``N``, ``NAME`` rather than Typer's type labels.

Typer labels every value with its Python type (``<str>``, ``<int range>``,
``<list[str]>``) and shows a required argument as ``{REF}`` in the usage line: noise to
a reader who wants to know what to type. These command classes rewrite only those
labels, through Click's public hooks (``format_options``, ``collect_usage_pieces``);
an explicit ``metavar=`` on an option is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from typer.core import TyperCommand, TyperGroup

_LABEL = re.compile(r" <([^<>]+)>$")
_NUMBER = {"int", "float", "int range", "float range"}


def plain_term(term: str) -> str:
    """One help row's left column with its type label replaced (``--limit <int range>`` → ``--limit N``)."""
    m = _LABEL.search(term)
    if m is None:
        return term
    head, label = term[: m.start()], m.group(1)
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" in label:
        return f"{head} [{label}]"  # choices: keep them, in Click's own notation
    if label in _NUMBER:
        return f"{head} N"
    longs = [w.rstrip(",") for w in head.split() if w.startswith("--")]
    if not longs:
        return head  # an argument: its name is the placeholder
    return f"{head} {longs[-1][2:].replace('-', '_').upper()}"


class _PlainRows:
    """A help formatter that passes everything on, rewriting the terms of definition lists."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write_dl(self, rows: Sequence[tuple[str, str]], *args: Any, **kwargs: Any) -> None:
        self._inner.write_dl([(plain_term(t), h) for t, h in rows], *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _plain_usage(pieces: list[str]) -> list[str]:
    return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


class PlainHelpCommand(TyperCommand):
    """A Typer command whose help shows plain placeholders."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        super().format_options(ctx, _PlainRows(formatter))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _plain_usage(super().collect_usage_pieces(ctx))


class PlainHelpGroup(TyperGroup):
    """A Typer group whose help shows plain placeholders."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        super().format_options(ctx, _PlainRows(formatter))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _plain_usage(super().collect_usage_pieces(ctx))
