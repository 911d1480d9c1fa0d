"""Unit tests of the lazy tree and ``dshub.Client`` against a fake hub (httpx.MockTransport)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

import dshub
from dshub.errors import NotLoggedInError, PathNotFoundError, UsageError
from dshub.library.tree import FileRef, Folder
from dshub.util.units import human_size

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
FILES = [f"a/f{i}.csv" for i in range(5)] + ["b/x.bin", "top.txt"]


def _listing(prefix: str, recursive: bool, limit: int, cursor: str | None) -> dict:
    if prefix and prefix in FILES:
        return {"items": [{"path": prefix, "size": 10, "md5": "0" * 32}]}
    below = [f for f in FILES if not prefix or f.startswith(prefix + "/")]
    if not below:
        return {"error": {"code": "not_found", "message": f"path {prefix!r} in v1 not found"}}
    if recursive:
        entries = [{"path": f, "size": 10, "md5": "0" * 32} for f in below]
    else:
        depth = prefix.count("/") + 1 if prefix else 0
        dirs = sorted({"/".join(f.split("/")[: depth + 1]) for f in below if f.count("/") > depth})
        files = [f for f in below if f.count("/") == depth]
        entries = [{"path": d, "is_dir": True, "size": 10 * sum(f.startswith(d + "/") for f in below),
                    "file_count": sum(f.startswith(d + "/") for f in below)} for d in dirs]
        entries += [{"path": f, "size": 10, "md5": "0" * 32} for f in files]
    start = int(cursor or 0)
    page = entries[start:start + limit]
    nxt = str(start + limit) if start + limit < len(entries) else None
    return {"items": page, "next_cursor": nxt}


class FakeHub:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        path, q = request.url.path, request.url.params
        if path.endswith("/whoami"):
            return httpx.Response(200, json={"name": "alice"})
        if path.endswith("/versions/latest") or path.endswith("/versions/1"):
            if "/datasets/bob/" in path:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "dataset bob/d not found"}})
            return httpx.Response(200, json={
                "dataset_id": "x", "owner": "alice", "name": "d", "version": 1, "size": 70, "file_count": 7,
                "created_at": NOW, "uploader": "alice", "prefix": "datasets/x/v1/"})
        if path.endswith("/files"):
            body = _listing(q.get("prefix", ""), q.get("recursive") == "true", int(q.get("limit", 1000)),
                            q.get("cursor"))
            return httpx.Response(404 if "error" in body else 200, json=body)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no route"}})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeHub:
    monkeypatch.setenv("DSHUB_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("DSHUB_TOKEN", raising=False)
    monkeypatch.delenv("DSHUB_HUB_URL", raising=False)
    return FakeHub()


def _client(fake: FakeHub) -> dshub.Client:
    return dshub.Client(hub_url="http://hub.test", token="tok-xyz", transport=httpx.MockTransport(fake))


def test_tree_is_lazy_and_pages(fake: FakeHub) -> None:
    c = _client(fake)
    ds = dshub.open_dataset("d", client=c, page_size=2)
    assert fake.paths == ["/api/v1/whoami"]  # the owner of "d" is the current user; nothing else
    fake.paths.clear()
    it = ds.files()
    assert [next(it).path for _ in range(3)] == ["a/f0.csv", "a/f1.csv", "a/f2.csv"]
    assert sum(p.endswith("/files") for p in fake.paths) == 2  # 3 files at page size 2
    assert len(list(ds.files())) == len(FILES)
    top = ds.ls()
    assert [(type(e).__name__, e.name) for e in top] == [("Folder", "a"), ("Folder", "b"), ("FileRef", "top.txt")]
    assert top[0].file_count == 5 and top[0].size == 50


def test_indexing_and_repr(fake: FakeHub) -> None:
    ds = _client(fake).dataset("alice/d@v1")
    a = ds["a"]
    assert isinstance(a, Folder) and a.path == "a"
    f = a["f3.csv"]
    assert isinstance(f, FileRef) and (f.path, f.size, f.md5) == ("a/f3.csv", 10, "0" * 32)
    assert (ds / "b/x.bin").ref == "alice/d@v1:b/x.bin"
    assert f.url == "dshub://alice/d@v1/a/f3.csv"
    with pytest.raises(PathNotFoundError, match="no file or folder 'c' in alice/d@v1"):
        ds["c"]
    with pytest.raises(KeyError):
        ds["../etc"]
    assert "top.txt" in ds and "c" not in ds
    fake.paths.clear()
    assert repr(a) == "<Folder alice/d@v1:a/>" and fake.paths == []  # a folder's repr fetches nothing
    assert repr(ds).splitlines() == [
        "alice/d@v1  (7 files, 70 B)",
        "├── a/  (5 files, 50 B)",
        "├── b/  (1 file, 10 B)",
        "└── top.txt  10 B",
    ]
    assert a.tree(limit=2).splitlines()[-1].startswith("└── …")
    assert "tok-xyz" not in repr(ds) + repr(_client(fake))


def test_not_found_dataset_is_one_line(fake: FakeHub) -> None:
    ds = _client(fake).dataset("bob/d")
    with pytest.raises(PathNotFoundError) as ei:
        ds.version
    assert str(ei.value) == "bob/d: dataset bob/d not found"
    assert repr(ds).startswith("<DatasetTree")  # repr never raises


def test_client_needs_a_hub(fake: FakeHub) -> None:
    with pytest.raises(NotLoggedInError, match="DSHUB_HUB_URL"):
        dshub.Client()
    with pytest.raises(UsageError, match="invalid dataset"):
        _client(fake).dataset("alice/Bad Name")


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1_234_567, None)] == ["0 B", "999 B", "1.0 kB", "1.2 MB", "-"]

