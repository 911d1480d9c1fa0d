"""What a running hub holds: settings, the database, the broker and storage access.

One instance per app (``app.state.hub``), built by ``create_app``; nothing global.
"""

from __future__ import annotations

import threading
from datetime import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from dshub.hub.brokers.base import Broker, GrantSpec
from dshub.hub.errors import HubError
from dshub.hub.ratelimit import AuthLimiter
from dshub.hub.settings import HubSettings
from dshub.models import Credentials, Location

if TYPE_CHECKING:
    from dshub.hub.storage import Storage


@dataclass
class HubRuntime:
    settings: HubSettings
    engine: Engine
    sessionmaker: sessionmaker
    broker: Broker | None = None
    # Serialises broker calls (request threads and the sweeper share one broker).
    broker_lock: threading.RLock = field(default_factory=threading.RLock)
    # One boto3 client per hub, built once even when the sweeper and a request ask for it
    # at the same moment.
    storage_lock: threading.Lock = field(default_factory=threading.Lock)
    _storage: Storage | None = None
    auth_limiter: AuthLimiter = field(default_factory=lambda: AuthLimiter(0))
    _dataset_locks: dict[str, threading.Lock] = field(default_factory=dict)
    # When the sweeper last removed dead staging folders (monotonic seconds).
    staging_swept_at: float = 0.0

    def __post_init__(self) -> None:
        self.auth_limiter = AuthLimiter(self.settings.max_auth_failures)

    def dataset_lock(self, dataset_id: str) -> threading.Lock:
        """The lock that makes one dataset's commits take turns in this process (PostgreSQL
        also locks the dataset row, for replicas)."""
        with self.storage_lock:
            return self._dataset_locks.setdefault(dataset_id, threading.Lock())

    def require_broker(self) -> Broker:
        if self.broker is None:
            raise HubError(503, "unavailable", "the hub's credential broker is not running")
        return self.broker

    def storage(self) -> Storage:
        """boto3 access to the bucket, built on first use from the broker's admin access."""
        with self.storage_lock:
            if self._storage is None:
                from dshub.hub.storage import Storage

                broker = self.require_broker()
                with self.broker_lock:
                    access = broker.storage()
                self._storage = Storage(access)
            return self._storage

    def grant(self, spec: GrantSpec, *, refresh: bool = False) -> tuple[Location, Credentials]:
        """Mint (or refresh) credentials; broker failures become a 503 without details."""
        broker = self.require_broker()
        try:
            with self.broker_lock:
                return broker.refresh(spec) if refresh else broker.grant(spec)
        except HubError:
            raise
        except Exception as e:  # the broker's message never holds secrets, but keep it short
            raise HubError(503, "unavailable", f"the credential broker failed: {type(e).__name__}") from e

    def revoke(self, grant_id: str, *, lapsed_by: datetime | None = None) -> None:
        """Revoke a grant at the broker (idempotent).

        Not under ``broker_lock``: a revocation may wait on a client's open connection,
        and other users' grants must not wait with it (brokers are thread-safe).
        """
        if self.broker is None:
            return
        self.broker.revoke(grant_id, lapsed_by=lapsed_by)

