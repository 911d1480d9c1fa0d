"""Sizes and times as people read them."""

from __future__ import annotations

from datetime import datetime, timezone


_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float | None, *, binary: bool = False, none: str = "-") -> str:
    """Bytes as ``1.5 GB`` (decimal units, like rclone's ``--human-readable``), or with
    ``binary`` as ``1.5 GiB``; bytes below one unit as an integer; ``none`` for None."""
    if n is None:
        return none
    step, units = (1024, _BINARY) if binary else (1000, _DECIMAL)
    size = float(n)
    for unit in units:
        if abs(size) < step or unit == units[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= step
    raise AssertionError("not reached")


def human_time(dt: datetime | None) -> str:
    """A timestamp as ``2026-11-26 06:08 UTC``; ``-`` for None."""
    if dt is None:
        return "-"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
