"""Unit tests of ``dshub.library.fs``: path parsing, the grant cache, retry on a dead grant, pickling."""

from __future__ import annotations

import pickle
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from dshub.library import fs as dfs
from dshub.errors import NotFoundError, PathNotFoundError, TransferError
from dshub.library.fs import DshubFileSystem, GrantCache, parse_path, refresh_margin
from dshub.models import Credentials, FileEntry, FileList, Location, ReadGrant

SECRET = "s3cr3t-value-never-shown"


def test_parse_path() -> None:
    p = parse_path("alice/taxi-data@v2/2022/01.csv")
    assert (p.owner, p.name, p.version, p.path) == ("alice", "taxi-data", 2, "2022/01.csv")
    assert p.root == "alice/taxi-data@v2" and p.join("x") == "alice/taxi-data@v2/x"
    assert parse_path("alice/taxi-data").version is None
    assert parse_path("alice/taxi-data@latest/a").version is None
    assert parse_path("alice/taxi-data@3/").path == ""
    for bad in ("alice", "Alice/x", "alice/x@vv/a", "alice/../x"):
        with pytest.raises(ValueError, match="invalid dshub path"):
            parse_path(bad)


def test_refresh_margin() -> None:
    assert refresh_margin(30) == pytest.approx(6)
    assert refresh_margin(3600) == 60
    assert refresh_margin(-5) == 0


def _grant(n: int, expires_in: float) -> ReadGrant:
    return ReadGrant(
        owner="alice", name="d", version=1,
        location=Location(endpoint=f"http://127.0.0.1:{9000 + n}", bucket="dshub", prefix="datasets/x/v1/"),
        credentials=Credentials(
            access_key_id=f"AKID{n}", secret_access_key=SECRET,
            expiry=datetime.now(timezone.utc) + timedelta(seconds=expires_in),
        ),
    )


class FakeHub:
    def __init__(self, expires_in: float = 3600) -> None:
        self.calls = 0
        self.expires_in = expires_in

    def read_credentials(self, owner: str, name: str, version: int) -> ReadGrant:
        self.calls += 1
        return _grant(self.calls, self.expires_in)

    def list_files(self, owner: str, name: str, version: int, *, prefix: str = "", limit: int = 1000,
                   **kw: Any) -> FileList:
        # The version lists exactly one file, f.bin (what a GET that finds no object is checked against).
        if prefix == "f.bin":
            return FileList(items=[FileEntry(path="f.bin", size=5, md5="0" * 32)])
        raise NotFoundError(f"path {prefix!r} in v{version}")


class FakeS3:
    """Stands in for a botocore client: fails ``fail`` times, then serves ``data``."""

    def __init__(self, data: bytes, errors: list[Exception]) -> None:
        self.data = data
        self.errors = errors
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        if self.errors:
            raise self.errors.pop(0)
        start, end = kw["Range"][len("bytes="):].split("-")
        body = self.data[int(start): int(end) + 1 if end else None]

        class Body:
            def read(self) -> bytes:
                return body

        return {"Body": Body()}


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


def test_grant_cache_reuses_then_renews(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dfs, "_s3_client", lambda g: object())
    cache, hub = GrantCache(), FakeHub(expires_in=3600)
    a = cache.get(hub, "alice", "d", 1)  # type: ignore[arg-type]
    assert cache.get(hub, "alice", "d", 1) is a and hub.calls == 1  # type: ignore[arg-type]
    assert a.renew_at - time.monotonic() == pytest.approx(3600 - 60, abs=2)
    a.renew_at = time.monotonic() - 1  # near expiry now
    b = cache.get(hub, "alice", "d", 1)  # type: ignore[arg-type]
    assert b is not a and hub.calls == 2 and b.generation > a.generation
    cache.invalidate("alice", "d", 1, a.generation)  # stale generation: keeps b
    assert cache.get(hub, "alice", "d", 1) is b  # type: ignore[arg-type]
    cache.invalidate("alice", "d", 1, b.generation)
    assert cache.get(hub, "alice", "d", 1) is not b and hub.calls == 3  # type: ignore[arg-type]


def _fs_with(monkeypatch: pytest.MonkeyPatch, s3s: list[FakeS3]) -> tuple[DshubFileSystem, FakeHub]:
    it = iter(s3s)
    monkeypatch.setattr(dfs, "_s3_client", lambda g: next(it))
    fs = DshubFileSystem(hub_url="http://127.0.0.1:1", token="tok", skip_instance_cache=True)
    hub = FakeHub()
    fs._hub_client = hub  # type: ignore[assignment]
    fs._grants = GrantCache()
    return fs, hub


@pytest.mark.parametrize(
    "error",
    [_client_error("InvalidAccessKeyId", 403), _client_error("AccessDenied", 403),
     EndpointConnectionError(endpoint_url="http://127.0.0.1:9001")],
)
def test_read_refreshes_once_on_auth_or_connection_error(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    data = bytes(range(256)) * 4
    dead, fresh = FakeS3(data, [error]), FakeS3(data, [])
    fs, hub = _fs_with(monkeypatch, [dead, fresh])
    assert fs.read_range("alice/d@v1/f.bin", 10, 20) == data[10:20]
    assert hub.calls == 2 and len(dead.calls) == 1 and len(fresh.calls) == 1
    assert fresh.calls[0]["Key"] == "datasets/x/v1/f.bin" and fresh.calls[0]["Range"] == "bytes=10-19"


def test_read_gives_up_after_one_retry_without_leaking(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _client_error("InvalidAccessKeyId", 403)
    fs, hub = _fs_with(monkeypatch, [FakeS3(b"", [err]), FakeS3(b"", [_client_error("InvalidAccessKeyId", 403)])])
    with pytest.raises(TransferError) as ei:
        fs.read_range("alice/d@v1/f.bin", 0, 5)
    assert "InvalidAccessKeyId" in str(ei.value) and SECRET not in str(ei.value) and "AKID" not in str(ei.value)
    assert hub.calls == 2


def test_missing_object_and_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    fs, hub = _fs_with(monkeypatch, [FakeS3(b"", [_client_error("NoSuchKey", 404)])])
    with pytest.raises(PathNotFoundError, match="missing in storage"):  # the hub lists it: damage
        fs.read_range("alice/d@v1/f.bin", 0, 5)
    assert hub.calls == 1  # a 404 is not a credential problem: no refresh
    fs2, _ = _fs_with(monkeypatch, [FakeS3(b"", [_client_error("NoSuchKey", 404)])])
    with pytest.raises(FileNotFoundError) as ei:  # the hub does not list it: plain not-found
        fs2.read_range("alice/d@v1/absent.bin", 0, 5)
    assert "missing in storage" not in str(ei.value)
    assert fs.read_range("alice/d@v1/f.bin", 5, 5) == b""
    with pytest.raises(IsADirectoryError):
        fs.read_range("alice/d@v1", 0, 5)
    with pytest.raises(PermissionError, match="read-only"):
        fs.open("alice/d@v1/f.bin", "wb")


def test_pickle_carries_options_and_pins_only() -> None:
    fs = DshubFileSystem(hub_url="http://127.0.0.1:1", token="tok-abc", skip_instance_cache=True)
    fs._pins[("alice", "d")] = 4
    fs._grants = GrantCache()
    assert "tok-abc" not in repr(fs)
    back = pickle.loads(pickle.dumps(fs))
    assert isinstance(back, DshubFileSystem) and back is not fs
    assert back._token_arg == "tok-abc" and back._pins == {("alice", "d"): 4}
    assert back._hub_client is None and back._grants is None
    assert back.canonical("dshub://alice/d/x.csv") == "alice/d@v4/x.csv"  # pinned: no hub request
    bare = pickle.dumps(DshubFileSystem(skip_instance_cache=True))
    assert b"tok-abc" not in bare


def test_protocol_is_registered() -> None:
    import fsspec

    assert isinstance(fsspec.filesystem("dshub", hub_url="http://127.0.0.1:1", token="t"), DshubFileSystem)
