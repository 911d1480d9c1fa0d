"""Upload sessions end to end: a real hub, its local broker's S3 endpoints, raw rclone.

What is shown here comes from the local broker (per-grant endpoints that serve only the
grant's prefix, stopped at revoke) plus the hub's own checks at commit.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HubFactory, HubProcess, run_rclone

pytestmark = pytest.mark.integration
# Each test runs on SQLite and on a real PostgreSQL server (tests/pg_server.py).
HUB_DATABASES = ("sqlite", "postgresql")



def _open(c: Any, owner: str, name: str, **body: Any) -> Any:
    return c.post(f"/datasets/{owner}/{name}/sessions", json=body)


def _put(rclone: str, grant: dict[str, Any], key: str, data: bytes, tmp: Path) -> Any:
    """Upload ``data`` to ``dshub/<key>`` with the grant's credentials."""
    src = tmp / f"src-{hashlib.md5(key.encode()).hexdigest()}"
    src.write_bytes(data)
    bucket = grant["location"]["bucket"]
    return run_rclone(rclone, ["copyto", str(src), f"dsh:{bucket}/{key}"], grant)


def _lsf(rclone: str, grant: dict[str, Any], key_prefix: str) -> Any:
    bucket = grant["location"]["bucket"]
    return run_rclone(rclone, ["lsf", "-R", f"dsh:{bucket}/{key_prefix}"], grant)


def _cat(rclone: str, grant: dict[str, Any], key: str) -> Any:
    bucket = grant["location"]["bucket"]
    return run_rclone(rclone, ["cat", f"dsh:{bucket}/{key}"], grant)


@pytest.fixture(scope="module")
def shared(module_hub: HubFactory) -> tuple[HubProcess, str, str]:
    h = module_hub()
    return h, h.create_user("alice"), h.create_user("bob")


def test_upload_scope_commit_and_read(shared: tuple[HubProcess, str, str], rclone_bin: str, tmp_path: Path) -> None:
    h, alice, _bob = shared
    with h.client(alice) as c:
        assert c.post("/datasets", json={"name": "taxi"}).status_code == 201
        assert c.post("/datasets", json={"name": "other"}).status_code == 201
        r = _open(c, "alice", "taxi")
        assert r.status_code == 201, r.text
        s = r.json()
        # A session stages under a prefix of its own; its version number comes at commit.
        assert s["version"] is None and s["state"] == "open" and s["credentials"]
        prefix = s["location"]["prefix"]
        assert prefix == f"datasets/{s['dataset_id']}/staging/{s['id']}/"
        other = _open(c, "alice", "other").json()

        files = {"a.txt": b"hello\n", "dir/b.txt": b"b" * 1000, "dir/sub/c.bin": b"\x00\x01" * 50}
        for rel, data in files.items():
            res = _put(rclone_bin, s, prefix + rel, data, tmp_path)
            assert res.returncode == 0, res.stderr.decode()
        res = _lsf(rclone_bin, s, prefix)
        assert res.returncode == 0, res.stderr.decode()
        assert {"a.txt", "dir/b.txt", "dir/sub/c.bin"} <= set(res.stdout.decode().split())

        # Outside the session prefix: another dataset, another version, the bucket root.
        ds_id = s["dataset_id"]
        for key in (other["location"]["prefix"] + "x.txt", f"datasets/{ds_id}/v2/x.txt", "x.txt",
                    f"datasets/{ds_id}/x.txt"):
            res = _put(rclone_bin, s, key, b"nope", tmp_path)
            assert res.returncode != 0, f"write to {key} was allowed"
        # Reading outside: an object that exists in another session's prefix stays invisible.
        assert _put(rclone_bin, other, other["location"]["prefix"] + "secret.txt", b"secret", tmp_path).returncode == 0
        res = _cat(rclone_bin, s, other["location"]["prefix"] + "secret.txt")
        assert b"secret" not in res.stdout
        res = _lsf(rclone_bin, s, other["location"]["prefix"])
        assert b"secret" not in res.stdout
        assert not list((h.data_dir / "objects" / "dshub").glob("x.txt"))

        manifest = [{"path": p, "size": len(d), "md5": hashlib.md5(d).hexdigest()} for p, d in files.items()]
        # A manifest that lies about a size, forgets a file and invents one.
        lying = [dict(manifest[0], size=999), manifest[1], {"path": "ghost.txt", "size": 1}]
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": lying})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "manifest_mismatch"
        problems = {(d["path"], d["problem"]) for d in err["details"]}
        assert ("a.txt", "size differs") in problems
        assert ("ghost.txt", "missing in storage") in problems
        assert ("dir/sub/c.bin", "in storage but not in the manifest") in problems
        # A truncated object (a killed PUT leaves one on the local disk) is a size difference.
        obj = h.data_dir / "objects" / "dshub" / (prefix + "dir/b.txt")
        obj.write_bytes(b"b" * 10)
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": manifest})
        assert r.status_code == 422
        d = r.json()["error"]["details"]
        assert [(x["path"], x["problem"], x["expected"], x["actual"]) for x in d] == [("dir/b.txt", "size differs", 1000, 10)]
        obj.write_bytes(files["dir/b.txt"])
        assert c.get(f"/sessions/{s['id']}").json()["state"] == "open"

        r = c.post(f"/sessions/{s['id']}/commit", json={"files": manifest})
        assert r.status_code == 201, r.text
        v = r.json()
        assert (v["version"], v["file_count"], v["size"]) == (1, 3, sum(len(d) for d in files.values()))
        assert v["prefix"] == f"datasets/{s['dataset_id']}/v1/"
        assert not (h.data_dir / "objects" / "dshub" / prefix).exists()  # staging moved into place

        assert not (h.data_dir / "objects" / "dshub" / prefix).exists()  # staging moved into place
        # Credentials die at commit; a second commit (a retry) returns the same version,
        # one with another manifest is refused.
        assert _put(rclone_bin, s, prefix + "late.txt", b"late", tmp_path).returncode != 0
        assert _lsf(rclone_bin, s, prefix).returncode != 0
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": manifest})
        assert r.status_code == 201 and r.json() == v, r.text
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": manifest[:1]})
        assert r.status_code == 409 and r.json()["error"]["code"] == "session_closed"
        r = c.post(f"/sessions/{s['id']}/refresh")
        assert r.status_code == 409 and r.json()["error"]["code"] == "session_closed"

        # The published version.
        assert c.get("/datasets/alice/taxi").json()["latest_version"] == 1
        assert [x["version"] for x in c.get("/datasets/alice/taxi/versions").json()["items"]] == [1]
        for ref in ("1", "v1", "latest"):
            assert c.get(f"/datasets/alice/taxi/versions/{ref}").json()["version"] == 1
        listing = c.get("/datasets/alice/taxi/versions/v1/files").json()
        assert [(e["path"], e["is_dir"]) for e in listing["items"]] == [("dir", True), ("a.txt", False)]
        assert listing["items"][0]["file_count"] == 2
        assert listing["items"][1]["md5"] == hashlib.md5(files["a.txt"]).hexdigest()
        rec = c.get("/datasets/alice/taxi/versions/1/files", params={"prefix": "dir", "recursive": True}).json()
        assert [e["path"] for e in rec["items"]] == ["dir/b.txt", "dir/sub/c.bin"]
        r = c.get("/datasets/alice/taxi/versions/1/manifest")
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = r.text.strip().splitlines()
        assert len(lines) == 3 and '"a.txt"' in lines[0]

        # Read credentials: can read and list, cannot write.
        g = c.post("/datasets/alice/taxi/versions/v1/credentials").json()
        prefix = v["prefix"]
        assert g["location"]["prefix"] == prefix
        res = _cat(rclone_bin, g, prefix + "a.txt")
        assert res.returncode == 0 and res.stdout == files["a.txt"]
        assert _put(rclone_bin, g, prefix + "new.txt", b"x", tmp_path).returncode != 0
        assert not (h.data_dir / "objects" / "dshub" / prefix / "new.txt").exists()
        res = run_rclone(rclone_bin, ["deletefile", f"dsh:dshub/{prefix}a.txt"], g)
        assert res.returncode != 0
        assert (h.data_dir / "objects" / "dshub" / prefix / "a.txt").exists()

        # Abort the other session: credentials die, objects go.
        res = _put(rclone_bin, other, other["location"]["prefix"] + "f.txt", b"f", tmp_path)
        assert res.returncode == 0, res.stderr.decode()
        assert (h.data_dir / "objects" / "dshub" / other["location"]["prefix"] / "secret.txt").exists()
        assert c.delete(f"/sessions/{other['id']}").status_code == 204
        assert c.get(f"/sessions/{other['id']}").json()["state"] == "aborted"
        assert _put(rclone_bin, other, other["location"]["prefix"] + "g.txt", b"g", tmp_path).returncode != 0
        assert not (h.data_dir / "objects" / "dshub" / other["location"]["prefix"] / "f.txt").exists()
        r = c.post(f"/sessions/{other['id']}/commit", json={"files": [{"path": "f.txt", "size": 1}]})
        assert r.status_code == 409

    # Secrets never reach the hub's log, its state files or any process's argv.
    secrets_ = [s["credentials"]["secret_access_key"], g["credentials"]["secret_access_key"], alice.split("_", 2)[2]]
    assert not any(x in h.log() for x in secrets_)
    for f in h.data_dir.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".conf", ".log"):
            assert not any(x in f.read_text(errors="replace") for x in secrets_), f
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert not any(x in argv for x in secrets_), cmdline


def test_session_open_resume_concurrent(shared: tuple[HubProcess, str, str]) -> None:
    h, alice, bob = shared
    with h.client(alice) as c:
        assert c.post("/datasets", json={"name": "multi", "visibility": "public"}).status_code == 201
        first = _open(c, "alice", "multi")
        assert first.status_code == 201
        again = _open(c, "alice", "multi")
        assert again.status_code == 200 and again.json()["resumed"] is True
        assert again.json()["id"] == first.json()["id"] and again.json()["credentials"]
        # Not resuming opens another session of its own, with its own staging area.
        r = _open(c, "alice", "multi", resume=False)
        assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
        assert r.json()["location"]["prefix"] != first.json()["location"]["prefix"]
        # A key resumes only the session opened with it; a named session resumes exactly that one.
        keyed = _open(c, "alice", "multi", client_key="job-one-key")
        assert keyed.status_code == 201
        assert _open(c, "alice", "multi", client_key="job-one-key").json()["id"] == keyed.json()["id"]
        assert _open(c, "alice", "multi", client_key="job-two-key").json()["id"] != keyed.json()["id"]
        named = _open(c, "alice", "multi", session_id=keyed.json()["id"])
        assert named.status_code == 200 and named.json()["id"] == keyed.json()["id"]
        assert _open(c, "alice", "multi", session_id="no-such-session").status_code == 404
        listed = c.get("/datasets/alice/multi/sessions").json()["items"]
        assert len(listed) == 4 and all(x["credentials"] is None and x["version"] is None for x in listed)
        assert c.get(f"/sessions/{first.json()['id']}").json()["credentials"] is None
        r = c.post(f"/sessions/{first.json()['id']}/commit", json={"files": []})
        assert r.status_code == 422 and r.json()["error"]["code"] == "empty_manifest"
        for bad, size in (("../x", 1), ("/etc/passwd", 1), ("a/../b", 1), ("a\x00b", 1), ("a//b", 1),
                          ("C:/x", 1), ("a\\b", 1), ("big", 10**30), ("x" * 1000, 1)):
            r = c.post(f"/sessions/{first.json()['id']}/commit", json={"files": [{"path": bad, "size": size}]})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid", (bad, r.text)
        r = c.post(f"/sessions/{first.json()['id']}/commit",
                   json={"files": [{"path": "a", "size": 1}, {"path": "a", "size": 1}]})
        assert r.status_code == 422 and "twice" in r.json()["error"]["details"][0]["problem"]
    with h.client(bob) as c:
        # Public dataset: bob may read but not upload; he cannot see alice's sessions.
        r = _open(c, "alice", "multi")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.get(f"/sessions/{first.json()['id']}").status_code == 404
        assert c.post(f"/sessions/{first.json()['id']}/commit", json={"files": []}).status_code == 404
        assert c.delete(f"/sessions/{first.json()['id']}").status_code == 404


def test_session_and_credential_expiry(hub: HubFactory, rclone_bin: str, tmp_path: Path) -> None:
    h = hub("--session-ttl", "20", "--credential-ttl", "10")
    tok = h.create_user("carol")
    with h.client(tok) as c:
        c.post("/datasets", json={"name": "exp"})
        s = _open(c, "carol", "exp").json()
        p = s["location"]["prefix"]
        assert _put(rclone_bin, s, p + "a.txt", b"a", tmp_path).returncode == 0
        # Credentials expire at min(credential TTL, session expiry): refused from then on
        # (polled: a loaded machine may run the broker's check a moment late).
        time.sleep(10)
        deadline = time.monotonic() + 4
        while _put(rclone_bin, s, p + "b.txt", b"b", tmp_path).returncode == 0:
            assert time.monotonic() < deadline, "credentials still accepted after their expiry"
            time.sleep(0.3)
        fresh = c.post(f"/sessions/{s['id']}/refresh")
        assert fresh.status_code == 200, fresh.text
        assert _put(rclone_bin, fresh.json(), p + "b.txt", b"b", tmp_path).returncode == 0
        # The session itself expires at 20 s.
        deadline = time.monotonic() + 20
        while c.get(f"/sessions/{s['id']}").json()["state"] != "expired" and time.monotonic() < deadline:
            time.sleep(0.3)
        assert c.get(f"/sessions/{s['id']}").json()["state"] == "expired"
        assert _put(rclone_bin, fresh.json(), p + "c.txt", b"c", tmp_path).returncode != 0
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 1}]})
        assert r.status_code == 410 and r.json()["error"]["code"] == "session_expired"
        r = c.post(f"/sessions/{s['id']}/refresh")
        assert r.status_code == 410
        # The sweeper deletes an expired session's objects right after marking it expired.
        gone = h.data_dir / "objects" / "dshub" / p / "a.txt"
        deadline = time.monotonic() + 10
        while gone.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not gone.exists()
        assert c.get("/datasets/carol/exp").json()["latest_version"] is None


def test_restart_mid_session_resumes_and_commits(hub: HubFactory, rclone_bin: str, tmp_path: Path) -> None:
    h = hub("--credential-ttl", "600")
    tok = h.create_user("dave")
    with h.client(tok) as c:
        c.post("/datasets", json={"name": "resume"})
        s = _open(c, "dave", "resume").json()
    p = s["location"]["prefix"]
    assert _put(rclone_bin, s, p + "part1.txt", b"one", tmp_path).returncode == 0
    h.restart()
    # The credentials a client held before the restart keep working (same keys, same port).
    assert _put(rclone_bin, s, p + "part2.txt", b"two", tmp_path).returncode == 0
    with h.client(tok) as c:
        r = _open(c, "dave", "resume")
        assert r.status_code == 200 and r.json()["resumed"] is True and r.json()["id"] == s["id"]
        assert _put(rclone_bin, r.json(), p + "part3.txt", b"three", tmp_path).returncode == 0
        manifest = [{"path": "part1.txt", "size": 3}, {"path": "part2.txt", "size": 3},
                    {"path": "part3.txt", "size": 5}]
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": manifest})
        assert r.status_code == 201, r.text
        assert r.json()["file_count"] == 3


def test_delete_dataset_removes_objects_and_sessions(hub: HubFactory, rclone_bin: str, tmp_path: Path) -> None:
    h = hub()
    tok = h.create_user("erin")
    with h.client(tok) as c:
        c.post("/datasets", json={"name": "gone"})
        s = _open(c, "erin", "gone").json()
        p = s["location"]["prefix"]
        assert _put(rclone_bin, s, p + "a.txt", b"a", tmp_path).returncode == 0
        assert c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 1}]}).status_code == 201
        s2 = _open(c, "erin", "gone").json()
        assert _put(rclone_bin, s2, s2["location"]["prefix"] + "b.txt", b"b", tmp_path).returncode == 0
        g = c.post("/datasets/erin/gone/versions/1/credentials").json()
        assert c.delete("/datasets/erin/gone").status_code == 204
        assert c.get("/datasets/erin/gone").status_code == 404
        assert not (h.data_dir / "objects" / "dshub" / "datasets" / s["dataset_id"]).exists() or not any(
            f.is_file() for f in (h.data_dir / "objects" / "dshub" / "datasets" / s["dataset_id"]).rglob("*")
        )
        assert _put(rclone_bin, s2, s2["location"]["prefix"] + "c.txt", b"c", tmp_path).returncode != 0
        assert _cat(rclone_bin, g, p + "a.txt").returncode != 0
        # The name is free again.
        assert c.post("/datasets", json={"name": "gone"}).status_code == 201


def test_commit_after_uploading_what_was_missing(
    shared: tuple[HubProcess, str, str], rclone_bin: str, tmp_path: Path
) -> None:
    """A failed commit then an upload of the missing file then a commit works (no stale listing)."""
    h, alice, _bob = shared
    with h.client(alice) as c:
        c.post("/datasets", json={"name": "retry"})
        s = _open(c, "alice", "retry").json()
        p = s["location"]["prefix"]
        manifest = {"files": [{"path": "a.txt", "size": 1}, {"path": "sub/b.txt", "size": 2}]}
        assert _put(rclone_bin, s, p + "a.txt", b"a", tmp_path).returncode == 0
        r = c.post(f"/sessions/{s['id']}/commit", json=manifest)
        assert r.status_code == 422, r.text
        assert [d["path"] for d in r.json()["error"]["details"]] == ["sub/b.txt"], r.text
        # The refused commit froze the staging area: its credentials died, new ones work.
        assert _put(rclone_bin, s, p + "sub/b.txt", b"bb", tmp_path).returncode != 0
        s = c.post(f"/sessions/{s['id']}/refresh").json()
        assert _put(rclone_bin, s, p + "sub/b.txt", b"bb", tmp_path).returncode == 0
        r = c.post(f"/sessions/{s['id']}/commit", json=manifest)
        assert r.status_code == 201, r.text


def test_read_grants_are_reused_while_fresh(hub: HubFactory, rclone_bin: str, tmp_path: Path) -> None:
    """Each download/cat/open asks for read credentials; a live grant with at least half
    its lifetime left is handed out again (same endpoint and keys, same expiry) instead
    of starting one more endpoint per request."""
    h = hub("--credential-ttl", "10")
    tok = h.create_user("erin")
    with h.client(tok) as c:
        c.post("/datasets", json={"name": "reuse"})
        s = _open(c, "erin", "reuse").json()
        assert _put(rclone_bin, s, s["location"]["prefix"] + "a.txt", b"a", tmp_path).returncode == 0
        assert c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 1}]}).status_code == 201
        g1 = c.post("/datasets/erin/reuse/versions/1/credentials").json()
        g2 = c.post("/datasets/erin/reuse/versions/1/credentials").json()
        assert g2["credentials"]["access_key_id"] == g1["credentials"]["access_key_id"]
        assert (g2["location"], g2["credentials"]["expiry"]) == (g1["location"], g1["credentials"]["expiry"])
        time.sleep(5.5)  # past half of the 10 s lifetime: a new grant
        g3 = c.post("/datasets/erin/reuse/versions/1/credentials").json()
        assert g3["credentials"]["access_key_id"] != g1["credentials"]["access_key_id"]
        for g in (g1, g3):  # the older one still works until its own expiry
            key = g["location"]["prefix"] + "a.txt"
            res = run_rclone(rclone_bin, ["cat", f"dsh:{g['location']['bucket']}/{key}"], g)
            assert res.returncode == 0 and res.stdout == b"a", res.stderr.decode()
