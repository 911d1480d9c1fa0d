"""Small helpers shared by the client commands (ref parsing, sizes, dates)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dshub.errors import UsageError
from dshub.refs import DatasetRef, RefError, parse_ref

if TYPE_CHECKING:
    from dshub.client.api import HubClient


def parse_ref_arg(text: str, *, allow_path: bool = False, allow_version: bool = True) -> DatasetRef:
    """Parse a REF argument; a bad one is a usage error (exit 2)."""
    try:
        ref = parse_ref(text)
    except RefError as e:
        raise UsageError(str(e)) from None
    if ref.path and not allow_path:
        raise UsageError(f"{text!r}: a file path (':PATH') makes no sense here; give [OWNER/]NAME[@vN]")
    if ref.version is not None and not allow_version:
        raise UsageError(f"{text!r}: a version ('@vN') makes no sense here; give [OWNER/]NAME")
    return ref


def with_owner(client: HubClient, ref: DatasetRef) -> DatasetRef:
    """Fill in the owner of a ref without one: the current user (one whoami call)."""
    if ref.owner:
        return ref
    return ref.with_owner(client.whoami().name)


def human_size(n: int | None) -> str:
    """Bytes as ``1.5 GB`` (decimal units, like rclone's --human-readable and most UIs)."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(size) < 1000 or unit == "PB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def human_time(dt: datetime | None) -> str:
    """A timestamp as ``2026-11-26 06:08 UTC``."""
    if dt is None:
        return "-"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
