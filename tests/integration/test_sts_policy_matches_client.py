"""The sts broker's session policies allow exactly what the real client sends.

moto enforces no session policy, so a request the policy forbids would pass every other
test and fail on real AWS (it did: resumed uploads delete stray objects). Here every S3
request the client sends to moto — ``dshub upload`` resuming a session with a stray
object, ``dshub download``, and raw rclone with ``dshub creds`` — goes through a recording
proxy, as does the hub's AssumeRole to STS. Each request is mapped to its IAM action and
resource and checked against the policy issued with the request's own access key.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import HubFactory, run_rclone
from tests.integration.s3_recorder import RecordingProxy, Request, requests_of

pytestmark = pytest.mark.integration


def iam_action(r: Request) -> tuple[str, str, str | None]:
    """(IAM action, resource ARN, s3:prefix condition value) for one S3 request."""
    parts = r.path.lstrip("/").split("/", 1)
    bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
    q = r.query
    if not key:
        prefix = q.get("prefix", [None])[0]
        if r.method == "GET" and "uploads" in q:
            return "s3:ListBucketMultipartUploads", f"arn:aws:s3:::{bucket}", prefix
        if r.method == "GET" and "location" in q:
            return "s3:GetBucketLocation", f"arn:aws:s3:::{bucket}", None
        if r.method in ("GET", "HEAD"):
            return "s3:ListBucket", f"arn:aws:s3:::{bucket}", prefix
        if r.method == "PUT":
            return "s3:CreateBucket", f"arn:aws:s3:::{bucket}", None
        if r.method == "POST" and "delete" in q:
            return "s3:DeleteObject(batch)", f"arn:aws:s3:::{bucket}", None
        return f"?{r.method}-bucket", f"arn:aws:s3:::{bucket}", None
    arn = f"arn:aws:s3:::{bucket}/{key}"
    if r.method in ("GET", "HEAD"):
        return ("s3:ListMultipartUploadParts" if "uploadId" in q else "s3:GetObject"), arn, None
    if r.method in ("PUT", "POST"):
        return "s3:PutObject", arn, None
    if r.method == "DELETE":
        return ("s3:AbortMultipartUpload" if "uploadId" in q else "s3:DeleteObject"), arn, None
    return f"?{r.method}", arn, None


def allowed(policy: dict[str, Any], action: str, resource: str, prefix: str | None) -> bool:
    for st in policy["Statement"]:
        if st["Effect"] != "Allow" or action not in st["Action"]:
            continue
        if not any(fnmatch.fnmatchcase(resource, pat) for pat in st["Resource"]):
            continue
        like = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if like is not None and (prefix is None or not any(fnmatch.fnmatchcase(prefix, c) for c in like)):
            continue
        equals = st.get("Condition", {}).get("StringEquals", {}).get("s3:prefix")
        if equals is not None and prefix not in equals:
            continue
        return True
    return False


def issued_policies(sts: RecordingProxy) -> dict[str, dict[str, Any]]:
    """Access key id → session policy, from the AssumeRole calls and their answers."""
    out: dict[str, dict[str, Any]] = {}
    for conn in list(sts.conns):
        policies = [json.loads(parse_qs(r.body.decode())["Policy"][0]) for r in requests_of(bytes(conn.up))
                    if b"AssumeRole" in r.body]
        keys = re.findall(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>", bytes(conn.down))
        assert len(policies) == len(keys), "could not pair AssumeRole calls with their answers"
        out.update({k.decode(): p for k, p in zip(keys, policies)})
    return out


def test_every_client_request_is_allowed_by_its_session_policy(
    hub: HubFactory, moto_server: str, rclone_bin: str, tmp_path: Path
) -> None:
    moto = urlsplit(moto_server)
    s3 = RecordingProxy((moto.hostname or "127.0.0.1", moto.port or 80))
    sts = RecordingProxy((moto.hostname or "127.0.0.1", moto.port or 80))
    try:
        h = hub(
            "--broker", "sts", "--sts-endpoint-url", sts.url, "--s3-endpoint-url", s3.url,
            "--role-arn", "arn:aws:iam::123456789012:role/dshub-uploader", "--credential-ttl", "900",
            env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        )
        token = h.create_user("pat")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
        env.update(DSHUB_HUB_URL=h.url, DSHUB_TOKEN=token, DSHUB_CONFIG_DIR=str(tmp_path / "cfg"),
                   DSHUB_RCLONE=rclone_bin, NO_COLOR="1")

        def dshub(*args: str) -> subprocess.CompletedProcess[str]:
            res = subprocess.run([sys.executable, "-m", "dshub.cli.main", *args], env=env, capture_output=True,
                                 text=True, timeout=180)
            assert res.returncode == 0, f"dshub {args[0]}: {res.stderr}"
            return res

        src = tmp_path / "rec"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_bytes(b"alpha\n")
        (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
        # An interrupted earlier run: an open session holding one finished file and a stray.
        with h.client(token) as c:
            c.post("/datasets", json={"name": "rec"})
            s = c.post("/datasets/pat/rec/sessions", json={}).json()
        for name, data in (("a.txt", b"alpha\n"), ("stray.txt", b"not in the folder\n")):
            f = tmp_path / name
            f.write_bytes(data)
            key = f"{s['location']['bucket']}/{s['location']['prefix']}{name}"
            assert run_rclone(rclone_bin, ["copyto", str(f), f"dsh:{key}"], s).returncode == 0
        # Resuming that session by name; --yes lets the upload remove the stray it did not send.
        dshub("upload", str(src), "pat/rec", "--session", s["id"], "--yes")
        dshub("download", "pat/rec", str(tmp_path / "out"))
        assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
        out = dshub("creds", "pat/rec", "--format", "env").stdout
        raw_env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line)
        raw_env = {k: v.strip("'\"") for k, v in raw_env.items()}
        run_env = {k: v for k, v in env.items() if not k.startswith("DSHUB_")} | raw_env
        run_env["RCLONE_CONFIG"] = os.devnull
        remote = next(k for k in raw_env if k.endswith("_TYPE")).removeprefix("RCLONE_CONFIG_").removesuffix("_TYPE")
        with h.client(token) as c:
            published = c.get("/datasets/pat/rec/versions/latest").json()["prefix"]
        root = f"{remote.lower()}:{s['location']['bucket']}/{published}"
        for args in (["lsf", "-R", root], ["cat", root + "a.txt"]):
            res = subprocess.run([rclone_bin, *args, "--s3-no-check-bucket"], env=run_env, capture_output=True,
                                 timeout=60)
            assert res.returncode == 0, res.stderr.decode()
    finally:
        s3.close()
        sts.close()

    policies = issued_policies(sts)
    seen: set[str] = set()
    denied: list[str] = []
    for conn in list(s3.conns):
        for r in requests_of(bytes(conn.up)):
            key = r.access_key
            if key == "testing":
                continue  # the hub's own identity (verify, publish), not a grant
            assert key in policies, f"request with a key no AssumeRole issued: {r.method} {r.path} {r.headers}"
            action, resource, prefix = iam_action(r)
            seen.add(action)
            if not allowed(policies[key], action, resource, prefix):
                denied.append(f"{action} {resource} prefix={prefix} ({r.method} {r.path})")
    assert not denied, "requests the session policy would refuse on AWS:\n" + "\n".join(denied)
    # The stray was deleted inside the session: the action the policy once lacked.
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"} <= seen, seen
