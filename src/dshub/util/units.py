"""Sizes and times as people read them."""

from __future__ import annotations

from datetime import datetime, timezone


def human_size(n: int | float | None) -> str:
    """Bytes as ``1.5 GB`` (decimal units, like rclone's ``--human-readable``); ``-`` for None."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"


def human_time(dt: datetime | None) -> str:
    """A timestamp as ``2026-11-26 06:08 UTC``; ``-`` for None."""
    if dt is None:
        return "-"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
