"""HubClient: error mapping, retries, escaping, paging — against httpx.MockTransport."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from dshub.api.client import HubClient, normalise_hub_url, raise_for_hub_status
from dshub.errors import (
    AuthError,
    CommitRefusedError,
    ConflictError,
    ExitCode,
    HubResponseError,
    HubUnreachableError,
    NotFoundError,
    PermissionDeniedError,
    SessionExpiredError,
    UsageError,
)
from dshub.models import DatasetCreate, DatasetUpdate, ManifestEntry, SessionOpen

TOKEN = "tok-SECRET-abc123"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).isoformat()


def err(status: int, code: str, message: str = "msg", details: list | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details or []}})


def client(handler, **kw) -> HubClient:
    kw.setdefault("retries", 2)
    return HubClient("http://hub.test:8080/", TOKEN, transport=httpx.MockTransport(handler), **kw)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    # httpx-retries sleeps between attempts; the backoff itself is the library's business.
    monkeypatch.setattr("httpx_retries.retry.time.sleep", lambda s: None)


def dataset_json(name: str = "d") -> dict:
    return {"id": "1", "owner": "alice", "name": name, "created_at": NOW, "updated_at": NOW}


@pytest.mark.parametrize(
    ("resp", "exc", "exit_code"),
    [
        (err(401, "unauthorized"), AuthError, ExitCode.AUTH),
        (err(403, "forbidden"), PermissionDeniedError, ExitCode.FAILURE),
        (err(404, "not_found", "dataset alice/x not found"), NotFoundError, ExitCode.NOT_FOUND),
        (err(409, "session_open"), ConflictError, ExitCode.FAILURE),
        (err(410, "session_expired"), SessionExpiredError, ExitCode.FAILURE),
        (err(422, "manifest_mismatch", details=[{"path": "a", "problem": "missing"}]), CommitRefusedError, ExitCode.TRANSFER),
        (err(422, "invalid", "bad name"), UsageError, ExitCode.USAGE),
        (err(500, "internal"), HubResponseError, ExitCode.FAILURE),
        (httpx.Response(404, text="<html>nginx</html>", headers={"content-type": "text/html"}), HubResponseError, ExitCode.FAILURE),
        (httpx.Response(200, text="<html>hello</html>"), HubResponseError, ExitCode.FAILURE),
        (httpx.Response(200, json={"unexpected": True}), HubResponseError, ExitCode.FAILURE),
    ],
)
def test_error_mapping(resp, exc, exit_code):
    with client(lambda r: resp) as c, pytest.raises(exc) as info:
        c.get_dataset("alice", "x")
    assert info.value.exit_code == exit_code
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert "\n" not in info.value.message


def test_error_keeps_code_and_details():
    with client(lambda r: err(409, "session_open", "a session is open")) as c, pytest.raises(ConflictError) as info:
        c.open_session("alice", "x", SessionOpen(resume=False))
    assert info.value.code == "session_open"
    assert "a session is open" in info.value.message
    details = [{"path": "a.csv", "problem": "size differs", "expected": 3, "actual": 2}]
    with client(lambda r: err(422, "manifest_mismatch", "2 files differ", details)) as c:
        with pytest.raises(CommitRefusedError) as info2:
            c.commit_session("s1", [ManifestEntry(path="a.csv", size=3)])
    assert info2.value.code == "manifest_mismatch"
    assert info2.value.details[0].path == "a.csv"


def test_401_message_says_what_happened_and_carries_the_code():
    with client(lambda r: err(401, "unauthorized")) as c, pytest.raises(AuthError) as info:
        c.whoami()
    # What to do next (`dshub login …`) is the command line's to say: dshub.cli.hints.
    assert info.value.message == "token rejected by http://hub.test:8080"
    assert info.value.code == "unauthorized"


def test_requests_carry_bearer_and_user_agent_and_escape_segments():
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        return httpx.Response(200, json=dataset_json())

    with client(handler) as c:
        c.get_dataset("alice", "a.b?c/d")
    r = seen[0]
    assert r.headers["authorization"] == f"Bearer {TOKEN}"
    assert r.headers["user-agent"].startswith("dshub/")
    assert r.url.raw_path == b"/api/v1/datasets/alice/a.b%3Fc%2Fd"


def test_no_scheme_is_a_usage_error():
    with pytest.raises(UsageError, match="http"):
        HubClient("localhost:8080", TOKEN)
    assert normalise_hub_url("https://h.example/api/v1/") == "https://h.example"


def test_repr_hides_token():
    with client(lambda r: httpx.Response(200)) as c:
        assert TOKEN not in repr(c)


def test_transient_errors_are_retried_then_succeed():
    calls = {"n": 0}

    def handler(r):
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused")
        if calls["n"] == 2:
            return httpx.Response(503)
        return httpx.Response(200, json={"name": "alice"})

    with client(handler) as c:
        assert c.whoami().name == "alice"
    assert calls["n"] == 3


def test_connect_error_after_retries_is_unreachable():
    calls = {"n": 0}

    def handler(r):
        calls["n"] += 1
        raise httpx.ConnectError("refused")

    with client(handler, retries=2) as c, pytest.raises(HubUnreachableError) as info:
        c.info()
    assert calls["n"] == 3
    assert info.value.message == "cannot reach hub at http://hub.test:8080: connection failed"
    assert info.value.code == "hub_unreachable"


def test_503_after_retries_is_hub_response_error():
    with client(lambda r: httpx.Response(503, text="busy")) as c, pytest.raises(HubResponseError):
        c.info()


def test_non_idempotent_post_is_not_retried_on_503_but_on_connect_error():
    calls = {"n": 0}

    def handler(r):
        calls["n"] += 1
        return httpx.Response(503)

    with client(handler) as c, pytest.raises(HubResponseError):
        c.create_dataset(DatasetCreate(name="x"))
    assert calls["n"] == 1

    calls["n"] = 0

    def handler2(r):
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(201, json=dataset_json("x"))

    with client(handler2) as c:
        assert c.create_dataset(DatasetCreate(name="x")).name == "x"
    assert calls["n"] == 2


def test_commit_not_retried_on_read_timeout():
    calls = {"n": 0}

    def handler(r):
        calls["n"] += 1
        raise httpx.ReadTimeout("slow")

    with client(handler) as c, pytest.raises(HubUnreachableError, match="no answer in time"):
        c.commit_session("s", [ManifestEntry(path="a", size=1)])
    assert calls["n"] == 1


def test_update_sends_only_set_fields():
    bodies = []

    def handler(r):
        bodies.append(json.loads(r.content))
        return httpx.Response(200, json=dataset_json())

    with client(handler) as c:
        c.update_dataset("alice", "d", DatasetUpdate(description="hi"))
    assert bodies == [{"description": "hi"}]


def test_iter_files_pages_lazily():
    requests: list[httpx.Request] = []

    def handler(r):
        requests.append(r)
        cursor = r.url.params.get("cursor")
        if cursor is None:
            return httpx.Response(200, json={"items": [{"path": "a"}, {"path": "b"}], "next_cursor": "b"})
        return httpx.Response(200, json={"items": [{"path": "c"}], "next_cursor": None})

    with client(handler) as c:
        it = c.iter_files("alice", "d", 1, prefix="x/", page_size=2)
        assert next(it).path == "a"
        assert len(requests) == 1
        assert [e.path for e in it] == ["b", "c"]
    assert len(requests) == 2
    assert requests[0].url.params["limit"] == "2"
    assert requests[0].url.params["prefix"] == "x/"
    assert requests[0].url.params["recursive"] == "false"


def test_iter_manifest_streams_ndjson():
    lines = "\n".join(json.dumps({"path": p, "size": 1}) for p in ("a", "b/c")) + "\n"

    def handler(r):
        assert r.url.path.endswith("/versions/3/manifest")
        return httpx.Response(200, text=lines, headers={"content-type": "application/x-ndjson"})

    with client(handler) as c:
        assert [e.path for e in c.iter_manifest("alice", "d", 3)] == ["a", "b/c"]
    with client(lambda r: httpx.Response(200, text="garbage\n")) as c, pytest.raises(HubResponseError):
        list(c.iter_manifest("alice", "d", 3))
    with client(lambda r: err(404, "not_found")) as c, pytest.raises(NotFoundError):
        list(c.iter_manifest("alice", "d", 3))


def test_iter_manifest_lines_split_across_chunks():
    """Lines arrive cut anywhere by the network; entries come out whole, in order, also
    the last one without a final newline; a bad line anywhere is a HubResponseError."""
    body = "".join(json.dumps({"path": f"d/é{i}", "size": i}) + "\n" for i in range(50)).encode()
    body = body.rstrip(b"\n") + b"\n\n"  # a blank line at the end is not an entry

    class Chunks(httpx.SyncByteStream):
        def __init__(self, data: bytes, size: int) -> None:
            self.data, self.size = data, size

        def __iter__(self):  # type: ignore[no-untyped-def]
            for i in range(0, len(self.data), self.size):
                yield self.data[i : i + self.size]

    for size in (1, 7, 64, len(body)):
        with client(lambda r, size=size: httpx.Response(200, stream=Chunks(body, size))) as c:
            got = list(c.iter_manifest("alice", "d", 3))
        assert [(e.path, e.size) for e in got] == [(f"d/é{i}", i) for i in range(50)], size
    with client(lambda r: httpx.Response(200, stream=Chunks(body.rstrip(b"\n"), 5))) as c:
        assert len(list(c.iter_manifest("alice", "d", 3))) == 50
    bad = body.replace(b'"size": 20', b'"size": "twenty"')
    with client(lambda r: httpx.Response(200, stream=Chunks(bad, 9))) as c, pytest.raises(HubResponseError):
        list(c.iter_manifest("alice", "d", 3))


def test_get_version_latest():
    paths = []

    def handler(r):
        paths.append(r.url.path)
        return httpx.Response(
            200,
            json={"dataset_id": "1", "owner": "a", "name": "d", "version": 2, "size": 0, "file_count": 0,
                  "created_at": NOW, "uploader": "a", "prefix": "p/"},
        )

    with client(handler) as c:
        assert c.get_version("a", "d", None).version == 2
        c.get_version("a", "d", 2)
    assert paths == ["/api/v1/datasets/a/d/versions/latest", "/api/v1/datasets/a/d/versions/2"]


def test_raise_for_status_passes_success():
    raise_for_hub_status(httpx.Response(204), "http://x")


def test_plain_http_hub_skips_the_ca_bundle_https_verifies(monkeypatch) -> None:
    import httpx

    from dshub.api import client as api

    seen: list[object] = []
    real = httpx.HTTPTransport

    def spy(*a, **kw):
        seen.append(kw.get("verify", True))
        return real(*a, **kw)

    monkeypatch.setattr(api.httpx, "HTTPTransport", spy)
    api.HubClient("http://hub:8080", None)
    api.HubClient("https://hub.example", None)
    assert seen == [False, True]
