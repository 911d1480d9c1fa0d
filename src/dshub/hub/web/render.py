"""Jinja2 environment of the web pages: autoescaped templates and the display filters.

Every value a template prints is escaped (``autoescape=True`` for all templates, not
only ``.html``); no template uses ``|safe``. URLs built from names go through ``urlpath``
so a file called ``a?b#c.csv`` links to itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from dshub.util import units

TEMPLATES = Path(__file__).parent / "templates"


def human_size(n: int | None) -> str:
    """``1536`` → ``1.5 KiB`` (binary units: the page shows file sizes, as file managers do)."""
    return units.human_size(n, binary=True, none="–")


def relative_time(dt: datetime | None, now: datetime | None = None) -> str:
    """``3 minutes ago``, ``in 2 hours``, ``just now``: coarse, for people."""
    if dt is None:
        return "never"
    now = now or datetime.now(UTC)
    delta = (now - dt).total_seconds()
    future = delta < 0
    s = abs(delta)
    if s < 45:
        return "just now"
    for limit, div, unit in (
        (3600, 60, "minute"),
        (86_400, 3600, "hour"),
        (30 * 86_400, 86_400, "day"),
        (365 * 86_400, 30 * 86_400, "month"),
        (float("inf"), 365 * 86_400, "year"),
    ):
        if s < limit:
            k = max(1, round(s / div))
            text = f"{k} {unit}{'' if k == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return dt.isoformat()  # not reached


def absolute_time(dt: datetime | None) -> str:
    """``2026-12-01 23:06:01 UTC`` (the hover text of a relative date)."""
    if dt is None:
        return ""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(dt: datetime | None) -> str:
    return "" if dt is None else dt.astimezone(UTC).isoformat()


def urlpath(text: str) -> str:
    """Percent-encode a dataset path for a URL path, keeping its ``/`` separators."""
    return quote(text, safe="/")


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def make_environment() -> Environment:
    """The templates of the web pages with the filters above (one per app)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    filters: dict[str, Any] = {
        "size": human_size,
        "reltime": relative_time,
        "abstime": absolute_time,
        "isotime": iso_time,
        "urlpath": urlpath,
        "basename": basename,
    }
    env.filters.update(filters)
    return env
