"""LookAhead: what an upload asks the hub while it scans — reads only, stops when told.

Against a real HubClient over httpx.MockTransport; the upload's use of it (a no-op re-run,
a scan error first) is tested end to end in tests/integration/test_transfer_roundtrip.py.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from dshub.api.client import HubClient
from dshub.errors import AuthError, HubResponseError
from dshub.transfer import lookahead
from dshub.transfer.lookahead import LookAhead

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc).isoformat()


def dataset(latest: int | None = 2, files: int = 3) -> dict:
    return {"id": "1", "owner": "alice", "name": "d", "created_at": NOW, "updated_at": NOW,
            "latest_version": latest, "file_count": files}


class Hub:
    """Answers the three reads; records every request; the manifest may never end."""

    def __init__(self, ds: dict | None, sessions: int = 0, entries: int | None = 3) -> None:
        self.ds, self.sessions, self.entries = ds, sessions, entries
        self.requests: list[str] = []
        self.lines_sent = 0

    def __call__(self, r: httpx.Request) -> httpx.Response:
        self.requests.append(f"{r.method} {r.url.path.removeprefix('/api/v1')}")
        p = r.url.path.removeprefix("/api/v1/datasets/alice/d")
        if r.headers.get("authorization") != "Bearer tok":
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad token"}})
        if p == "":
            if self.ds is None:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "no dataset"}})
            return httpx.Response(200, json=self.ds)
        if p == "/sessions":
            items = [{"id": f"s{i}", "dataset_id": "1", "owner": "alice", "name": "d", "version": 3,
                      "state": "open", "created_at": NOW, "expires_at": NOW,
                      "location": {"bucket": "b", "prefix": "p/"}} for i in range(self.sessions)]
            return httpx.Response(200, json={"items": items})
        if p.endswith("/manifest"):
            return httpx.Response(200, stream=self._manifest())
        return httpx.Response(500)

    def _manifest(self) -> httpx.SyncByteStream:
        hub = self

        class Lines(httpx.SyncByteStream):
            def __iter__(self):  # type: ignore[no-untyped-def]
                i = 0
                while hub.entries is None or i < hub.entries:
                    hub.lines_sent += 1
                    yield (json.dumps({"path": f"f{i:07d}", "size": i, "blake3": "0" * 64}) + "\n").encode()
                    i += 1

        return Lines()


def client(hub: Hub, token: str = "tok") -> HubClient:
    return HubClient("http://hub.test", token, transport=httpx.MockTransport(hub), retries=0)


def test_reads_dataset_and_manifest_only():
    # Other jobs' open sessions do not make a folder differ from the latest version: not asked.
    hub = Hub(dataset(), sessions=1)
    look = LookAhead(client(hub), lambda: "alice", "d")
    head = look.head()
    assert head.dataset is not None and head.dataset.latest_version == 2
    entries = look.manifest(2)
    assert entries is not None and [e.path for e in entries] == ["f0000000", "f0000001", "f0000002"]
    assert hub.requests == ["GET /datasets/alice/d", "GET /datasets/alice/d/versions/2/manifest"]


def test_missing_dataset_is_an_answer_not_an_error():
    hub = Hub(None)
    look = LookAhead(client(hub), lambda: "alice", "d")
    assert look.head().dataset is None and look.manifest(1) is None
    assert hub.requests == ["GET /datasets/alice/d"]


@pytest.mark.parametrize(
    ("ds", "sessions"),
    [(dataset(latest=None), 0), (dataset(files=lookahead.MAX_FILES + 1), 0)],
    ids=["no version yet", "too many files"],
)
def test_manifest_not_read_ahead_where_no_check_or_too_big(ds, sessions):
    hub = Hub(ds, sessions=sessions)
    look = LookAhead(client(hub), lambda: "alice", "d")
    look.head()
    assert look.manifest(2) is None
    time.sleep(0.05)  # the thread has nothing more to do: no manifest request follows
    assert not any(r.endswith("/manifest") for r in hub.requests)


def test_another_version_is_not_served_from_the_read_ahead():
    look = LookAhead(client(Hub(dataset(latest=2))), lambda: "alice", "d")
    assert look.manifest(1) is None


def test_closing_early_stops_an_endless_manifest():
    hub = Hub(dataset(), entries=None)  # a manifest that never ends
    look = LookAhead(client(hub), lambda: "alice", "d")
    entries = look.manifest(2)
    assert entries is not None
    assert next(entries).path == "f0000000"
    entries.close()  # a difference found: stop reading
    reader = next(t for t in threading.enumerate() if t.name == "dshub-lookahead")
    reader.join(timeout=10)
    assert not reader.is_alive()
    sent = hub.lines_sent
    time.sleep(0.05)
    assert hub.lines_sent == sent


def test_close_before_use_stops_reading_and_answers_none():
    hub = Hub(dataset(), entries=None)
    look = LookAhead(client(hub), lambda: "alice", "d")
    look.head()
    look.close()
    reader = next((t for t in threading.enumerate() if t.name == "dshub-lookahead"), None)
    if reader is not None:
        reader.join(timeout=10)
        assert not reader.is_alive()
    assert look.manifest(2) is None


def test_hub_errors_surface_where_the_answers_are_used():
    look = LookAhead(client(Hub(dataset()), token="wrong"), lambda: "alice", "d")
    with pytest.raises(AuthError):
        look.head()

    hub = Hub(dataset())
    hub.entries = 2
    bad = Hub._manifest

    def garbage(self):  # type: ignore[no-untyped-def]
        class G(httpx.SyncByteStream):
            def __iter__(self):  # type: ignore[no-untyped-def]
                yield b"not json\n"

        return G()

    Hub._manifest = garbage  # type: ignore[method-assign]
    try:
        look = LookAhead(client(hub), lambda: "alice", "d")
        entries = look.manifest(2)
        assert entries is not None
        with pytest.raises(HubResponseError):
            list(entries)
    finally:
        Hub._manifest = bad  # type: ignore[method-assign]


def test_owner_is_asked_on_the_thread():
    calls: list[str] = []

    def owner() -> str:
        calls.append(threading.current_thread().name)
        return "alice"

    LookAhead(client(Hub(dataset())), owner, "d").head()
    assert calls == ["dshub-lookahead"]
