"""Paged listings of a version with many files (20,000), committed through a real hub.

The objects are written straight into the local broker's store on disk
(``<data_dir>/objects/<bucket>/<prefix>``), which is where its S3 endpoints keep them;
the hub then verifies them through S3 at commit like any upload.
"""

from __future__ import annotations

import json
import time

import pytest

from dshub.models import FileList
from tests.conftest import HubFactory

pytestmark = pytest.mark.integration
# Each test runs on SQLite and on a real PostgreSQL server (tests/pg_server.py).
HUB_DATABASES = ("sqlite", "postgresql")

DIRS = 10
PER_DIR = 1998
ROOT_FILES = 20


def test_many_files_list_by_level_and_recursively(hub: HubFactory) -> None:
    h = hub()
    tok = h.create_user("lister")
    with h.client(tok, timeout=300) as c:
        c.post("/datasets", json={"name": "big"})
        s = c.post("/datasets/lister/big/sessions", json={}).json()
        root = h.data_dir / "objects" / s["location"]["bucket"] / s["location"]["prefix"]
        manifest = []
        for d in range(DIRS):
            (root / f"d{d}").mkdir(parents=True, exist_ok=True)
            for i in range(PER_DIR):
                rel = f"d{d}/f{i:05d}.txt"
                (root / rel).write_bytes(b"x" * (i % 7))
                manifest.append({"path": rel, "size": i % 7})
        for i in range(ROOT_FILES):
            (root / f"r{i:02d}.txt").write_bytes(b"r")
            manifest.append({"path": f"r{i:02d}.txt", "size": 1})
        total = len(manifest)
        assert total == 20_000
        t0 = time.monotonic()
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": manifest})
        assert r.status_code == 201, r.text[:1000]
        commit_s = time.monotonic() - t0
        assert r.json()["file_count"] == total

        base = "/datasets/lister/big/versions/1/files"

        def walk(params: dict[str, object]) -> tuple[list[dict[str, object]], int]:
            items: list[dict[str, object]] = []
            pages = 0
            cursor = None
            while True:
                q = dict(params, **({"cursor": cursor} if cursor else {}))
                r = c.get(base, params=q)
                assert r.status_code == 200, r.text
                page = FileList.model_validate(r.json())
                pages += 1
                items.extend(e.model_dump() for e in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    return items, pages
                assert len(page.items) == q["limit"]

        # Root level: 10 directories first, then 20 files; 7 a page.
        items, pages = walk({"limit": 7})
        assert [e["path"] for e in items[:DIRS]] == [f"d{d}" for d in range(DIRS)]
        assert all(e["is_dir"] and e["file_count"] == PER_DIR for e in items[:DIRS])
        assert [e["path"] for e in items[DIRS:]] == [f"r{i:02d}.txt" for i in range(ROOT_FILES)]
        assert pages == 5
        # A page boundary exactly between directories and files.
        items10, _ = walk({"limit": 10})
        assert [e["path"] for e in items10] == [e["path"] for e in items]

        # One directory level, 500 a page.
        items, pages = walk({"prefix": "d3", "limit": 500})
        assert [e["path"] for e in items] == [f"d3/f{i:05d}.txt" for i in range(PER_DIR)]
        assert pages == 4
        # Recursive below a prefix, and the whole version.
        items, _ = walk({"prefix": "d3/", "recursive": "true", "limit": 1000})
        assert len(items) == PER_DIR and items[0]["path"] == "d3/f00000.txt"
        items, pages = walk({"recursive": "true", "limit": 5000})
        paths = [e["path"] for e in items]
        assert len(paths) == total == len(set(paths)) and paths == sorted(paths)
        assert pages == 4
        # A file as prefix lists that file; an unknown prefix is 404.
        one = c.get(base, params={"prefix": "d3/f00004.txt"}).json()["items"]
        # Committed without hashes: the hub recorded the ones it computed from the bytes.
        assert one[0]["md5"] and len(one[0]["blake3"]) == 64
        assert one == [{"path": "d3/f00004.txt", "is_dir": False, "size": 4, "md5": one[0]["md5"],
                        "blake3": one[0]["blake3"], "file_count": None}]
        assert c.get(base, params={"prefix": "nope"}).status_code == 404
        assert c.get(base, params={"cursor": "garbage!"}).json()["error"]["code"] == "invalid"

        # Streamed manifest: every file once, sorted.
        with c.stream("GET", "/datasets/lister/big/versions/1/manifest") as resp:
            lines = [json.loads(line) for line in resp.iter_lines() if line]
        assert len(lines) == total and [x["path"] for x in lines] == sorted(x["path"] for x in lines)
    print(f"commit of {total} files took {commit_s:.1f}s")
