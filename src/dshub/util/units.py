"""Sizes and times as people read them."""

from __future__ import annotations

from datetime import datetime, timezone

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float | None, *, binary: bool = False, none: str = "-") -> str:
    """Bytes as ``1.5 GB`` (decimal units, like rclone's ``--human-readable``), or with
    ``binary`` as ``1.5 GiB``; bytes below one unit as an integer; ``none`` for None."""
    if n is None:
        return none
    step, units = (1024, _BINARY_UNITS) if binary else (1000, _DECIMAL_UNITS)
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


_SIZE_SUFFIXES = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """``64M`` / ``64MiB`` / ``1G`` / ``5242880`` as bytes (binary units, like rclone's
    size options); raises ValueError for anything else."""
    t = text.strip().lower().removesuffix("ib").removesuffix("i")
    num = t.rstrip("bkmgt")
    unit = t[len(num):]
    if unit.endswith("b") and len(unit) == 2:
        unit = unit[0]
    if unit not in _SIZE_SUFFIXES or not num:
        raise ValueError(f"not a size: {text!r} (examples: 64M, 1G, 5242880)")
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (examples: 64M, 1G, 5242880)") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"not a size: {text!r}")
    return int(value * _SIZE_SUFFIXES[unit])
