"""Two hub replicas on one PostgreSQL database, with the sts broker and one moto server.

Nothing in front of them: clients pick a replica by port. What must hold:

- version numbers are never duplicated or skipped when sessions are opened and committed
  concurrently through both; a second commit of a session (through either) returns the
  version the first published;
- the sweeper runs in each replica but expires each session and revokes each lapsed grant
  once (conditional updates: the row lock makes the second replica's claim find nothing);
- ``kill -9`` of a replica in the middle of publishing (its transaction holds the version
  and file rows, not yet committed) leaves no half-published version: the session is still
  open and a retry through the other replica publishes it whole.

moto enforces neither session policies nor expiry (see test_hub_sts.py); these tests are
about the registry, which is the hubs' only shared state besides the bucket.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubFactory, HubProcess, run_rclone
from tests.pg_server import PgServer

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/dshub-uploader"


def _replicas(hub: HubFactory, moto: str, pg: PgServer, *extra: str) -> tuple[HubProcess, HubProcess]:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "DSHUB_HUB_DATABASE_URL": pg.create_database()}
    args = ("--broker", "sts", "--sts-endpoint-url", moto, "--s3-endpoint-url", moto, "--role-arn", ROLE,
            "--credential-ttl", "900", *extra)
    a = hub(*args, env=env)
    b = hub(*args, env=env)
    return a, b


def _upload(rclone: str, s: dict[str, Any], files: dict[str, bytes], tmp: Path) -> None:
    for rel, data in files.items():
        src = tmp / f"src-{s['id']}-{rel.replace('/', '_')}"
        src.write_bytes(data)
        res = run_rclone(rclone, ["copyto", str(src), f"dsh:{s['location']['bucket']}/{s['location']['prefix']}{rel}"], s)
        assert res.returncode == 0, res.stderr.decode()


def _manifest(files: dict[str, bytes]) -> dict[str, Any]:
    return {"files": [{"path": p, "size": len(d)} for p, d in files.items()]}


def test_concurrent_commits_through_both_replicas_number_versions_once(
    hub: HubFactory, moto_server: str, pg_server: PgServer, rclone_bin: str, tmp_path: Path
) -> None:
    a, b = _replicas(hub, moto_server, pg_server)
    tok = a.create_user("rita")
    with a.client(tok) as c:
        assert c.post("/datasets", json={"name": "race"}).status_code == 201
    n = 8

    def one(i: int) -> int:
        first, second = (a, b) if i % 2 else (b, a)
        with first.client(tok) as c1, second.client(tok) as c2:
            r = c1.post("/datasets/rita/race/sessions", json={"resume": False, "concurrent": True})
            assert r.status_code == 201, r.text
            s = r.json()
            files = {f"part-{i}.txt": f"worker {i}".encode()}
            _upload(rclone_bin, s, files, tmp_path)
            # Commit through the other replica, then again through the first: same version.
            r = c2.post(f"/sessions/{s['id']}/commit", json=_manifest(files))
            assert r.status_code == 201, r.text
            again = c1.post(f"/sessions/{s['id']}/commit", json=_manifest(files))
            assert again.status_code == 201 and again.json() == r.json(), again.text
            assert s["version"] is None  # numbered at commit, in commit order
            return r.json()["version"]

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    assert sorted(results) == list(range(1, n + 1))  # no number twice, none skipped
    for h in (a, b):
        with h.client(tok) as c:
            listed = [v["version"] for v in c.get("/datasets/rita/race/versions").json()["items"]]
            assert sorted(listed) == list(range(1, n + 1))
            assert c.get("/datasets/rita/race").json()["latest_version"] == n


def test_two_commits_of_one_session_at_once_publish_one_version(
    hub: HubFactory, moto_server: str, pg_server: PgServer, rclone_bin: str, tmp_path: Path
) -> None:
    a, b = _replicas(hub, moto_server, pg_server)
    tok = a.create_user("sue")
    files = {f"f{i}.txt": b"x" * i for i in range(1, 6)}
    with a.client(tok) as c:
        c.post("/datasets", json={"name": "twice"})
        s = c.post("/datasets/sue/twice/sessions", json={}).json()
    _upload(rclone_bin, s, files, tmp_path)
    barrier = threading.Barrier(4)

    def commit(h: HubProcess) -> httpx.Response:
        with h.client(tok) as c:
            barrier.wait()
            return c.post(f"/sessions/{s['id']}/commit", json=_manifest(files))

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(commit, [a, b, a, b]))
    assert [r.status_code for r in answers] == [201] * 4, [r.text for r in answers]
    assert len({json.dumps(r.json(), sort_keys=True) for r in answers}) == 1
    with b.client(tok) as c:
        assert [v["version"] for v in c.get("/datasets/sue/twice/versions").json()["items"]] == [1]
        assert c.get("/datasets/sue/twice/versions/1").json()["file_count"] == 5


def test_each_replica_sweeps_but_each_job_is_done_once(
    hub: HubFactory, moto_server: str, pg_server: PgServer, rclone_bin: str, tmp_path: Path
) -> None:
    a, b = _replicas(hub, moto_server, pg_server, "--session-ttl", "10", "--sweep-interval", "0.2",
                     "--log-format", "json", "--log-level", "info")
    tok = a.create_user("tom")
    ids = []
    with a.client(tok) as ca, b.client(tok) as cb:
        ca.post("/datasets", json={"name": "swept"})
        for i in range(6):
            c = ca if i % 2 else cb
            r = c.post("/datasets/tom/swept/sessions", json={"resume": False, "concurrent": True})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        _upload(rclone_bin, r.json(), {"left.txt": b"left behind"}, tmp_path)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            states = {ca.get(f"/sessions/{i}").json()["state"] for i in ids}
            if states == {"expired"}:
                break
            time.sleep(0.5)
        assert states == {"expired"}
    # The state is committed just before the line is logged: wait for every line to land.
    deadline = time.monotonic() + 15
    while True:
        records = [json.loads(line) for h in (a, b) for line in h.log().splitlines() if line.startswith("{")]
        expired = Counter(r["message"].split()[2] for r in records if r["message"].startswith("upload session "))
        if set(expired) >= set(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert expired == Counter({i: 1 for i in ids}), expired
    revoked = Counter(r["message"].split()[1] for r in records if r["message"].endswith("lapsed; revoked"))
    assert all(n == 1 for n in revoked.values()), revoked
    assert a.proc is not None and a.proc.poll() is None and b.proc is not None and b.proc.poll() is None


def test_kill_9_mid_commit_leaves_no_half_version_and_the_other_replica_completes(
    hub: HubFactory, moto_server: str, pg_server: PgServer, rclone_bin: str, tmp_path: Path
) -> None:
    import psycopg

    a, b = _replicas(hub, moto_server, pg_server)
    url = a.extra_env["DSHUB_HUB_DATABASE_URL"]
    tok = a.create_user("kim")
    files = {"top.txt": b"top", "d/x.txt": b"in a dir", "d/e/y.txt": b"deeper"}
    with a.client(tok) as c:
        c.post("/datasets", json={"name": "killed"})
        s = c.post("/datasets/kim/killed/sessions", json={}).json()
    _upload(rclone_bin, s, files, tmp_path)

    # Hold the dirs table: replica A's publish (session claimed, version and file rows
    # written, not committed) stops at its insert of the directory rows.
    blocker = psycopg.connect(url)
    blocker.execute("LOCK TABLE dirs IN EXCLUSIVE MODE")
    failed: list[BaseException] = []

    def commit_on_a() -> None:
        try:
            with a.client(tok, timeout=60) as c:
                c.post(f"/sessions/{s['id']}/commit", json=_manifest(files))
        except BaseException as e:  # the replica dies under it: a transport error
            failed.append(e)

    t = threading.Thread(target=commit_on_a)
    t.start()
    with psycopg.connect(url, autocommit=True) as watch:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = watch.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'dirs' AND NOT l.granted"
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("replica A never reached the publish step")
        a.kill()  # SIGKILL: no shutdown, no rollback from the hub's side
        blocker.rollback()
        blocker.close()
        t.join(60)
        assert failed, "the commit through the killed replica cannot have answered"
        deadline = time.monotonic() + 30
        while watch.execute("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
                            ).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert watch.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
        assert watch.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    with b.client(tok) as c:
        assert c.get("/datasets/kim/killed/versions").json()["items"] == []
        assert c.get(f"/sessions/{s['id']}").json()["state"] == "open"
        r = c.post(f"/sessions/{s['id']}/commit", json=_manifest(files))
        assert r.status_code == 201, r.text
        assert (r.json()["version"], r.json()["file_count"]) == (1, 3)
        listed = c.get("/datasets/kim/killed/versions/1/files", params={"recursive": "true"}).json()["items"]
        assert sorted(f["path"] for f in listed) == sorted(files)
    with psycopg.connect(url) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT path FROM dirs")) == ["d", "d/e"]
