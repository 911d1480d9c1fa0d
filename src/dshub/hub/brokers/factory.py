"""Build the configured broker from ``HubSettings`` (imports the chosen broker lazily)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dshub.hub.brokers.base import Broker
from dshub.hub.settings import HubSettings
from dshub.util.rclone_bin import find_rclone


def load_or_create_secret(data_dir: Path) -> bytes:
    """The hub's 32-byte secret at ``<data_dir>/hub.secret`` (mode 0600), created on first use."""
    path = data_dir / "hub.secret"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data[:32]
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    os.replace(tmp, path)
    return secret


def build_broker(settings: HubSettings) -> Broker:
    """The broker ``settings.broker`` names, configured from the settings."""
    if settings.broker == "local":
        from dshub.hub.brokers.local import LocalBroker

        return LocalBroker(
            objects_dir=settings.data_dir / "objects",
            state_dir=settings.data_dir / "broker",
            rclone=find_rclone().path,
            secret=load_or_create_secret(settings.data_dir),
            bind_host=settings.s3_bind_host,
            advertise_url=settings.s3_advertise_url,
            bucket=settings.bucket,
            region=settings.region,
        )
    if settings.broker == "sts":
        from dshub.hub.brokers.sts import StsBroker

        assert settings.role_arn is not None  # checked by HubSettings
        return StsBroker(
            bucket=settings.bucket,
            region=settings.region,
            role_arn=settings.role_arn,
            s3_endpoint_url=settings.s3_endpoint_url,
            sts_endpoint_url=settings.sts_endpoint_url,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key,
            session_token=settings.aws_session_token,
            duration_s=settings.effective_credential_ttl,
            advertise_endpoint=settings.s3_advertise_url,
        )
    raise ValueError(f"unknown broker {settings.broker!r}")
