"""What a credential broker does for the hub.

A broker turns "this grant may write (or read) keys under this prefix until T" into
S3 credentials, and takes them away again. The hub keeps grants in its database and
tells the broker about them; the broker keeps no state the hub cannot rebuild
(``restore`` is called at start-up with every live grant, so a hub restart keeps
open upload sessions usable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from dshub.models import Access, Credentials, Location


@dataclass(frozen=True)
class GrantSpec:
    """One live grant as the hub's database records it."""

    grant_id: str  # stable id: an upload session id, or a read grant id
    prefix: str  # key prefix inside the bucket, ends with '/'
    access: Access
    expires_at: datetime  # timezone-aware UTC
    # The port the grant's endpoint had (local broker): a renewal after its endpoint
    # stopped comes back on the same address, so a recipe or remote that saved it works.
    port: int | None = None


@dataclass(frozen=True)
class StorageAccess:
    """How the hub itself reaches the object store (boto3), with full rights on the bucket."""

    endpoint: str | None
    bucket: str
    region: str
    access_key_id: str | None
    # Secrets stay out of repr() so a logged or raised StorageAccess leaks nothing.
    secret_access_key: str | None = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    # Set when the bucket is a directory the hub owns (the local broker): the hub then
    # deletes there directly instead of through the S3 API (see Storage.delete_prefix).
    local_root: Path | None = None


class Broker(Protocol):
    """Mints and revokes prefix-scoped, short-lived S3 credentials."""

    name: str

    def start(self) -> None:
        """Start whatever the broker supervises (e.g. the local rclone)."""

    def stop(self) -> None:
        """Stop it all; no child process may outlive this call."""

    def restore(self, grants: list[GrantSpec]) -> None:
        """Re-arm grants that were live before a hub restart."""

    def grant(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        """Credentials valid only for ``spec.prefix`` with ``spec.access`` until ``spec.expires_at``."""

    def refresh(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        """New (or extended) credentials for an existing grant, same scope, new expiry."""

    def revoke(self, grant_id: str, *, lapsed_by: datetime | None = None) -> None:
        """Make the grant's credentials stop working now. Idempotent. With ``lapsed_by``
        (the sweeper), only if the grant was not renewed to expire after that time."""

    def advertised_location(self, grant_id: str, stored: Location) -> Location:
        """Where clients should reach the grant now, given the location last handed out.

        A broker that moves endpoints (local: a port taken at restart) answers with the
        address it holds, so the hub never advertises one someone else may hold.
        """

    def storage(self) -> StorageAccess:
        """Admin access for the hub's own storage operations (list, verify, delete)."""
