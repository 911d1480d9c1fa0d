"""The rclone remote of one upload session, and the environments that reach it.

A long rclone (the copy) gets credentials through ``credential_process``, renewed by the
AWS SDK inside it; short ones (a listing, a delete) get the current credentials as static
variables, which spares each the credential_process start-up.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dshub.models import Credentials, Location, UploadSession
from dshub.transfer import rclone as rc
from dshub.transfer.common import refreshing_env, static_env

if TYPE_CHECKING:
    from dshub.api.client import HubClient


class SessionRemote:
    """Where an upload session's objects go, and rclone environments with its credentials."""

    def __init__(self, client: HubClient, session: UploadSession, workdir: str) -> None:
        assert session.credentials is not None
        self.client = client
        self.session = session
        self.cache = os.path.join(workdir, "credentials.json")
        # The credential_process child needs the hub URL and token: rclone's environment only.
        token = client.token or os.environ.get("DSHUB_TOKEN")
        self._issued = datetime.now(timezone.utc)
        self._renewing = threading.Lock()
        self.long = refreshing_env(session.location, session.id, client.base_url, token, workdir, session.credentials)

    @property
    def location(self) -> Location:
        """The session's bucket and prefix (as the hub last advertised them)."""
        return self.session.location

    def short(self) -> dict[str, str]:
        """An environment with static credentials valid for a quick rclone run (or one
        signed request, such as a part's PUT). Safe to call from several threads: one of
        them renews, the others use what it got."""
        env = self._from_cache()
        if env is None:
            with self._renewing:
                env = self._from_cache() or static_env(self.location, self._renew_locked())
        return env

    def _from_cache(self) -> dict[str, str] | None:
        from dshub.transfer.credential_process import MIN_MARGIN, margin_for, read_cache

        cached = read_cache(self.cache)
        if cached is None:
            return None
        creds, issued = cached
        left = creds.expiry - margin_for(issued, creds.expiry) - datetime.now(timezone.utc)
        if left <= MIN_MARGIN * 6:
            return None
        return static_env(
            self.location,
            Credentials(
                access_key_id=creds.access_key_id,
                secret_access_key=creds.secret_access_key,
                session_token=creds.session_token,
                expiry=creds.expiry,
            ),
        )

    def keep_alive(self, stop: threading.Event, poll: float = 1.0) -> None:
        """Renew the credentials whenever they near expiry, until ``stop`` is set.

        A part of a big file is one long PUT, signed once: rclone asks for no new
        credentials while it runs, and the hub retires an endpoint whose grant lapsed,
        cutting the PUT. Renewing keeps the same keys and endpoint alive (a refresh only
        moves the grant's expiry).
        """
        from dshub.transfer.credential_process import margin_for, read_cache

        while not stop.wait(poll):
            cached = read_cache(self.cache)
            now = datetime.now(timezone.utc)
            if cached is not None:
                creds, issued = cached
                expiry = creds.expiry
            else:
                assert self.session.credentials is not None
                expiry, issued = self.session.credentials.expiry, self._issued
            if expiry - margin_for(issued, expiry) <= now:
                try:
                    self.renew()
                except Exception:  # noqa: BLE001 - the part's own failure says what went wrong
                    continue

    def renew(self) -> Credentials:
        """New credentials from the hub for both environments (the long rclone's
        ``credential_process`` reads the same cache); follows the session if it moved."""
        with self._renewing:
            return self._renew_locked()

    def _renew_locked(self) -> Credentials:
        fresh = self.client.refresh_session(self.session.id)
        assert fresh.credentials is not None
        from dshub.transfer.credential_process import write_cache

        write_cache(self.cache, fresh.credentials)
        self._issued = datetime.now(timezone.utc)
        if fresh.location != self.session.location:
            # The hub moved the session (a new local endpoint after expiry): follow it.
            self.long.update(rc.remote_env(fresh.location, None, env_auth=True))
        self.session = fresh
        return fresh.credentials
