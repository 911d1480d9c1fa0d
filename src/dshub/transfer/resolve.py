"""Which committed version a ref names (shared by download and cat)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dshub.refs import DatasetRef

if TYPE_CHECKING:
    from dshub.api.client import HubClient


def resolve(client: HubClient, ref: DatasetRef) -> tuple[str, str, int]:
    """(owner, name, version number) of a ref: the current user and the latest version
    when the ref leaves them out."""
    owner = ref.owner or client.whoami().name
    v = client.get_version(owner, ref.name, ref.version)
    return owner, ref.name, v.version
