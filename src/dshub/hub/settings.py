"""Hub configuration: one dataclass, built by the CLI (flags → env → defaults) or by tests.

Nothing here is read at import time; ``create_app(settings)`` receives an instance, so a
test process can run several hubs side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BrokerKind = Literal["local", "sts"]

# STS AssumeRole accepts 900 s .. 12 h; asking outside that range fails the call.
STS_MIN_TTL = 900
STS_MAX_TTL = 43_200
# The local broker enforces expiry itself; tests need short lifetimes (e.g. 30 s).
LOCAL_MIN_TTL = 10


def default_data_dir() -> Path:
    """``<platformdirs user_data_dir("dshub")>/hub`` (platformdirs imported lazily)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("dshub")) / "hub"


@dataclass
class HubSettings:
    """Everything a hub needs to run. Defaults give a single-machine hub with the local broker."""

    host: str = "127.0.0.1"
    port: int = 8700
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None → sqlite:///<data_dir>/hub.db
    broker: BrokerKind = "local"
    # Local broker: the URL clients use to reach its S3 endpoint (None = what it binds).
    s3_advertise_url: str | None = None
    s3_bind_host: str = "127.0.0.1"
    session_ttl: int = 86_400
    credential_ttl: int = 3_600
    anonymous_read: bool = False
    bucket: str = "dshub"
    region: str = "us-east-1"
    # STS broker (AWS S3, MinIO, moto).
    sts_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    role_arn: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    # How often the sweeper expires sessions and revokes lapsed credentials.
    sweep_interval: float = 1.0
    # Per-user limits (0 = none): each open session and each read grant holds a listening
    # port and descriptors on the local broker, and those are shared by every user.
    max_sessions_per_user: int = 20
    max_read_grants_per_user: int = 50
    # Failed authentications per client address per minute before it gets 429 (0 = none).
    max_auth_failures: int = 30
    # Upgrade a database whose schema is behind at start-up (an empty one always is).
    migrate: bool = False
    # "text" (human lines) or "json" (one object a line, with the request id).
    log_format: str = "text"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if self.broker not in ("local", "sts"):
            raise ValueError(f"unknown broker {self.broker!r}: use 'local' or 'sts'")
        if self.session_ttl < 10:
            raise ValueError("session TTL must be at least 10 seconds")
        if self.credential_ttl < LOCAL_MIN_TTL:
            raise ValueError(f"credential TTL must be at least {LOCAL_MIN_TTL} seconds")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port {self.port}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"unknown log format {self.log_format!r}: use 'text' or 'json'")
        if self.broker == "sts":
            # The hub's own AWS identity: the standard AWS_* variables unless given.
            self.aws_access_key_id = self.aws_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
            self.aws_secret_access_key = self.aws_secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
            self.aws_session_token = self.aws_session_token or os.environ.get("AWS_SESSION_TOKEN")
            if not self.role_arn:
                raise ValueError("the sts broker needs --role-arn")

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'hub.db'}"

    @property
    def effective_credential_ttl(self) -> int:
        """Credential lifetime the broker can honour (STS clamps to 900..43200 s)."""
        if self.broker == "sts":
            return max(STS_MIN_TTL, min(STS_MAX_TTL, self.credential_ttl))
        return max(LOCAL_MIN_TTL, self.credential_ttl)
