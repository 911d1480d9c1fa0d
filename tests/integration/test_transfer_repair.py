"""What the upload engine checks and repairs without a post-upload listing (issue 6).

dshub no longer lists the session after rclone has copied (that listing made the local
store re-read every uploaded byte). These tests put the session into the states that
listing used to catch and show they are still caught, against a real hub and real
rclone:

* a resumed session holding a *stale* object (same size as the local file, other bytes)
  and a *stray* one (not in the folder): the stale one is re-sent, the stray deleted;
* storage changed behind dshub's back between copy and commit (another writer with the
  session's keys): the hub refuses the commit, dshub lists once, repairs, commits again.

In every case the published version is byte-identical to the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dshub.library.client import Client
from dshub.transfer.stats import Phase, ProgressEvent, Warning_
from tests.conftest import HubFactory, run_rclone
from tests.integration.library_util import publish
from tests.integration.transfer_util import User, new_user, tree_digest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def carol(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> User:
    return new_user(module_hub(), "carol", tmp_path_factory.mktemp("carol"))


def _folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(100_000))
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_bytes(b"b" * 5000)
    (root / "c.txt").write_bytes(b"hello\n")
    return root


def _put(rclone: str, grant: dict[str, Any], rel: str, data: bytes, tmp: Path) -> None:
    src = tmp / ("src-" + hashlib.md5(rel.encode()).hexdigest())
    src.write_bytes(data)
    loc = grant["location"]
    res = run_rclone(rclone, ["copyto", str(src), f"dsh:{loc['bucket']}/{loc['prefix']}{rel}"], grant)
    assert res.returncode == 0, res.stderr.decode()


def _stored(user: User, ref: str, tmp: Path) -> dict[bytes, str]:
    dest = tmp / "down"
    r = user.run("download", ref, str(dest))
    assert r.returncode == 0, r.stderr.decode()
    return tree_digest(dest)


def test_resumed_session_resends_stale_and_deletes_stray(carol: User, rclone_bin: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "data")
    with carol.api() as c:
        c.post("/datasets", json={"name": "repair1"})
        s = c.post("/datasets/carol/repair1/sessions", json={}).json()
    # An earlier attempt left: a.bin with other bytes of the same size, b.txt intact, and
    # a file the folder no longer has.
    _put(rclone_bin, s, "a.bin", os.urandom(100_000), tmp_path)
    _put(rclone_bin, s, "sub/b.txt", (src / "sub" / "b.txt").read_bytes(), tmp_path)
    _put(rclone_bin, s, "gone.txt", b"old", tmp_path)

    # Objects this job did not send: nothing is touched or sent without --yes.
    r = carol.run("upload", str(src), "repair1", "--session", s["id"], "--json")
    assert r.returncode == 2 and b"gone.txt" in r.stderr and b"--yes" in r.stderr, r.stderr.decode()
    with carol.api() as c:
        assert c.get(f"/sessions/{s['id']}/staged").json()["files"] == 3
    r = carol.run("upload", str(src), "repair1", "--session", s["id"], "--yes", "--json")
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["resumed"] is True and out["version"] == 1
    # Listed by size: a.bin and b.txt look done, c.txt is missing and is sent. The MD5
    # check then finds a.bin stale and sends it too; only b.txt is not sent again.
    assert (out["skipped_files"], out["sent_files"]) == (1, 2)
    assert any("re-sending 1 file(s) whose stored copy differs" in w for w in out["warnings"]), out
    assert out["files"] == 3
    assert _stored(carol, "carol/repair1", tmp_path) == tree_digest(src)


def test_commit_refused_then_repaired(
    carol: User, rclone_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _folder(tmp_path / "data")
    events: list[ProgressEvent] = []

    def tamper(ev: ProgressEvent) -> None:
        events.append(ev)
        if isinstance(ev, Phase) and ev.name == "commit":
            # Another writer with the session's keys, between copy and commit: replaces a
            # file with other bytes (other size) and adds one dshub never uploaded.
            with carol.api() as c:
                [mine] = c.get("/datasets/carol/repair2/sessions").json()["items"]
                s = c.post(f"/sessions/{mine['id']}/refresh").json()
            _put(rclone_bin, s, "a.bin", b"x" * 10, tmp_path)
            _put(rclone_bin, s, "intruder.txt", b"boo", tmp_path)

    monkeypatch.setenv("DSHUB_CACHE_DIR", str(carol.home / "cache"))
    monkeypatch.setenv("DSHUB_CONFIG_DIR", str(carol.home))
    res = Client(hub_url=carol.hub.url, token=carol.token).upload(src, "repair2", on_event=tamper)
    assert res.status == "committed" and res.version == 1
    warnings = [e.message for e in events if isinstance(e, Warning_)]
    assert any("repairing" in w for w in warnings), warnings
    assert res.warnings == warnings
    assert any("re-sending 1 file" in w for w in warnings), warnings
    assert _stored(carol, "carol/repair2", tmp_path) == tree_digest(src)


def test_download_catches_a_stored_object_that_differs(carol: User, tmp_path: Path) -> None:
    """The local store's read endpoints serve no MD5 ETags, so rclone cannot check a
    download; dshub's own check against the manifest must. An object changed on the
    hub's disk (same size) fails the download with the transfer exit code, and the bad
    file is not left behind under its name."""
    src = _folder(tmp_path / "data")
    r = carol.run("upload", str(src), "tamper", "--json")
    assert r.returncode == 0, r.stderr.decode()
    with carol.api() as c:
        prefix = c.get("/datasets/carol/tamper/versions/1").json()["prefix"]
    stored = carol.hub.data_dir / "objects" / "dshub" / prefix / "a.bin"
    stored.write_bytes(os.urandom(100_000))
    dest = tmp_path / "down"
    r = carol.run("download", "carol/tamper", str(dest))
    assert r.returncode == 5, (r.returncode, r.stderr.decode())  # ExitCode.TRANSFER
    assert b"do not match the manifest" in r.stderr
    assert b"blake3 differs" in r.stderr  # dshub recorded BLAKE3 at upload: that is what is checked
    assert not (dest / "a.bin").exists()
    assert (dest / "c.txt").read_bytes() == b"hello\n"  # the good files are kept


def test_download_of_a_version_without_blake3_checks_md5(carol: User, tmp_path: Path) -> None:
    """Versions committed before dshub recorded BLAKE3 (or by another client) have MD5
    only: downloads check that, and still catch a changed object."""
    files = {"a.bin": os.urandom(50_000), "d/b.txt": b"bee\n"}
    v = publish(carol.hub.url, carol.token, "carol", "old-style", files, with_blake3=False)
    # The hub records BLAKE3 itself now: forget it, as for a version of an older hub.
    import sqlite3

    with sqlite3.connect(carol.hub.data_dir / "hub.db") as db:
        db.execute(
            "UPDATE files SET blake3 = NULL WHERE version_id IN (SELECT versions.id FROM versions "
            "JOIN datasets ON datasets.id = versions.dataset_id WHERE datasets.name = 'old-style')"
        )
    with carol.api() as c:
        manifest = [json.loads(line) for line in c.get("/datasets/carol/old-style/versions/1/manifest").text.splitlines()]
    assert [e["blake3"] for e in manifest] == [None, None]
    dest = tmp_path / "ok"
    assert carol.run_json("download", "carol/old-style", str(dest))["fetched_files"] == 2
    assert (dest / "a.bin").read_bytes() == files["a.bin"]

    stored = carol.hub.data_dir / "objects" / "dshub" / v.prefix / "a.bin"
    stored.write_bytes(os.urandom(50_000))
    r = carol.run("download", "carol/old-style", str(tmp_path / "bad"))
    assert r.returncode == 5 and b"md5 differs" in r.stderr, r.stderr.decode()
    assert not (tmp_path / "bad" / "a.bin").exists()
