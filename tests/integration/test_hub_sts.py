"""The hub with the sts broker against a moto server: open, upload with rclone, commit, read.

Which guarantee comes from where: moto issues STS credentials and serves S3 but enforces
neither the session policy (the per-prefix scope) nor expiry; those are the broker's unit
tests (tests/unit/test_sts_policy.py). What this test shows is the hub's side: sessions,
verification of storage against the manifest through boto3, publishing, read grants.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import HubFactory, run_rclone

pytestmark = pytest.mark.integration
# Each test runs on SQLite and on a real PostgreSQL server (tests/pg_server.py).
HUB_DATABASES = ("sqlite", "postgresql")


def test_sts_broker_end_to_end(hub: HubFactory, moto_server: str, rclone_bin: str, tmp_path: Path) -> None:
    h = hub(
        "--broker", "sts", "--sts-endpoint-url", moto_server, "--s3-endpoint-url", moto_server,
        "--role-arn", "arn:aws:iam::123456789012:role/dshub-uploader", "--credential-ttl", "900",
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    tok = h.create_user("sam")
    with h.client(tok) as c:
        assert c.get("/info").json()["broker"] == "sts"
        c.post("/datasets", json={"name": "cloud"})
        r = c.post("/datasets/sam/cloud/sessions", json={})
        assert r.status_code == 201, r.text
        s = r.json()
        assert s["credentials"]["session_token"] and s["location"]["endpoint"] == moto_server
        p = s["location"]["prefix"]
        src = tmp_path / "a.txt"
        src.write_bytes(b"hello")
        res = run_rclone(rclone_bin, ["copyto", str(src), f"dsh:{s['location']['bucket']}/{p}a.txt"], s)
        assert res.returncode == 0, res.stderr.decode()
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 6}]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "manifest_mismatch"
        # On S3 the listing's ETag is the content MD5 (single part): a wrong one is caught.
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 5, "md5": "0" * 32}]})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["problem"] == "md5 differs"
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 5}]})
        assert r.status_code == 201, r.text
        files = c.get("/datasets/sam/cloud/versions/1/files").json()["items"]
        assert files[0]["md5"] == "5d41402abc4b2a76b9719d911017c592"  # moto's ETag is the MD5
        g = c.post("/datasets/sam/cloud/versions/1/credentials").json()
        # Published by a server-side copy out of the staging prefix.
        assert g["location"]["prefix"].endswith("/v1/") and g["location"]["prefix"] != p
        res = run_rclone(rclone_bin, ["cat", f"dsh:{g['location']['bucket']}/{g['location']['prefix']}a.txt"], g)
        assert res.returncode == 0 and res.stdout == b"hello"
        # v2 carries a.txt from v1 (same MD5 the copy verified) under a new path, sent nothing.
        s2 = c.post("/datasets/sam/cloud/sessions", json={"resume": False}).json()
        moved = [{"path": "moved/a.txt", "size": 5, "md5": "5d41402abc4b2a76b9719d911017c592"}]
        plan = c.post(f"/sessions/{s2['id']}/carry", json={"files": moved}).json()
        assert [(x["path"], x["from_version"]) for x in plan["carried"]] == [("moved/a.txt", 1)]
        r = c.post(f"/sessions/{s2['id']}/commit", json={"files": moved})
        assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["new_bytes"] == 0, r.text
        g2 = c.post("/datasets/sam/cloud/versions/2/credentials").json()
        res = run_rclone(rclone_bin, ["cat", f"dsh:{g2['location']['bucket']}/{g2['location']['prefix']}moved/a.txt"], g2)
        assert res.returncode == 0 and res.stdout == b"hello"
        assert c.delete("/datasets/sam/cloud").status_code == 204
