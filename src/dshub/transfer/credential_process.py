"""AWS ``credential_process`` helper: fresh upload-session credentials for a running rclone.

rclone runs with ``env_auth=true`` and ``AWS_CONFIG_FILE`` naming a profile whose
``credential_process`` is ``python -m dshub.transfer.credential_process SESSION_ID``. The
AWS SDK inside rclone runs this whenever the ``Expiration`` it printed last comes near,
so credentials are renewed without restarting rclone or its in-flight multipart uploads
(rclone 1.75 calls the process again on its own as expiry nears).

Environment (set by the engine in rclone's environment only):

* ``DSHUB_HUB_URL``, ``DSHUB_TOKEN`` — the hub and the user's token;
* ``DSHUB_CRED_LOG`` (optional) — append one line per call (time, cached/refreshed,
  key id, reported expiration; never the secret): how tests see refreshes happen;
* ``DSHUB_CRED_CACHE`` — a 0600 JSON file with the current credentials. While they have
  more than a third of their lifetime left (capped at five minutes) they are printed from
  it without calling the hub; otherwise the session is refreshed and the file rewritten.

The ``Expiration`` printed is the real one minus that margin, so the SDK asks again
*before* the store stops honouring the keys. Nothing secret is written to stderr.

Start-up time matters (rclone waits for this process): the cached path imports only the
standard library; pydantic and httpx are loaded only when the hub must be asked.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone

TYPE_CHECKING = False  # not imported from typing: see dshub/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from dshub.models import Credentials

MAX_MARGIN = timedelta(minutes=5)
MIN_MARGIN = timedelta(seconds=5)


def margin_for(issued: datetime, expiry: datetime) -> timedelta:
    """How long before ``expiry`` credentials count as stale: a third of their lifetime,
    between 5 seconds and 5 minutes."""
    third = (expiry - issued) / 3
    return max(MIN_MARGIN, min(MAX_MARGIN, third))


def write_cache(path: str, creds: Credentials, issued: datetime | None = None) -> None:
    """Atomically write the credential cache (mode 0600, never world-readable)."""
    from dshub.util.files import write_private  # here: the cached path (most calls) never writes

    issued = issued or datetime.now(timezone.utc)
    data = {
        "credentials": {
            "access_key_id": creds.access_key_id,
            "secret_access_key": creds.secret_access_key,
            "session_token": creds.session_token,
            "expiry": _aware(creds.expiry).isoformat(),
        },
        "issued": issued.isoformat(),
    }
    write_private(path, json.dumps(data))


class _Creds:
    """The four fields of ``dshub.models.Credentials``, without importing pydantic."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.access_key_id: str = d["access_key_id"]
        self.secret_access_key: str = d["secret_access_key"]
        self.session_token: str | None = d.get("session_token")
        self.expiry: datetime = _aware(datetime.fromisoformat(str(d["expiry"]).replace("Z", "+00:00")))

    def __repr__(self) -> str:
        return f"_Creds({self.access_key_id!r}, <hidden>)"


def read_cache(path: str) -> tuple[Any, datetime] | None:
    """The cached credentials and when they were issued, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return _Creds(data["credentials"]), _aware(datetime.fromisoformat(data["issued"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def process_output(creds: Any, issued: datetime) -> dict[str, object]:
    """The JSON document the AWS credential_process protocol expects."""
    expiry = _aware(creds.expiry)
    reported = expiry - margin_for(_aware(issued), expiry)
    doc: dict[str, object] = {
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Expiration": reported.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if creds.session_token:
        doc["SessionToken"] = creds.session_token
    return doc


def fresh_credentials(
    session_id: str, cache: str | None, now: datetime | None = None
) -> tuple[Any, datetime]:
    """Cached credentials while fresh, else refreshed from the hub (and cached)."""
    now = now or datetime.now(timezone.utc)
    if cache:
        cached = read_cache(cache)
        if cached is not None:
            creds, issued = cached
            expiry = _aware(creds.expiry)
            if expiry - margin_for(_aware(issued), expiry) - now > MIN_MARGIN:
                return creds, issued
    from dshub.api.client import HubClient

    url = os.environ.get("DSHUB_HUB_URL")
    if not url:
        raise RuntimeError("DSHUB_HUB_URL is not set")
    with HubClient(url, os.environ.get("DSHUB_TOKEN"), timeout=20.0) as hub:
        session = hub.refresh_session(session_id)
    if session.credentials is None:
        raise RuntimeError("the hub returned no credentials on refresh")
    issued = datetime.now(timezone.utc)
    if cache:
        write_cache(cache, session.credentials, issued)
    return session.credentials, issued


def main(argv: list[str] | None = None) -> int:
    """Entry point: print credential_process JSON for the session named in argv."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dshub.transfer.credential_process SESSION_ID", file=sys.stderr)
        return 2
    cache = os.environ.get("DSHUB_CRED_CACHE")
    before = os.stat(cache).st_mtime_ns if cache and os.path.exists(cache) else None
    try:
        creds, issued = fresh_credentials(args[0], cache)
    except Exception as e:  # the SDK shows our stderr; keep it one line, no secrets
        msg = getattr(e, "message", None) or str(e) or type(e).__name__
        print(f"dshub credential_process: cannot refresh session credentials: {msg}", file=sys.stderr)
        return 1
    doc = process_output(creds, issued)
    log = os.environ.get("DSHUB_CRED_LOG")
    if log:  # tests and debugging: when rclone asked, and whether the hub was called
        after = os.stat(cache).st_mtime_ns if cache and os.path.exists(cache) else None
        how = "refreshed" if after != before or not cache else "cached"
        with open(log, "a", encoding="utf-8") as f:
            f.write(
                f"{datetime.now(timezone.utc).isoformat()} {how} key={creds.access_key_id} expiration={doc['Expiration']}\n"
            )
    sys.stdout.write(json.dumps(doc))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
