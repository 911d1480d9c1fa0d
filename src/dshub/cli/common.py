"""Small helpers shared by the client commands (ref parsing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dshub.errors import UsageError
from dshub.refs import DatasetRef, RefError, parse_ref

if TYPE_CHECKING:
    from dshub.api.client import HubClient


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
