"""StsBroker against a real moto server (S3 + STS + IAM) and real rclone.

Which guarantee comes from where:

* moto (with ``INITIAL_NO_AUTH_ACTION_COUNT``) enforces bad keys/secrets/session tokens and
  the ROLE's own policies. The role here may only write/list under one prefix, so "a write
  outside is denied" below is moto enforcing the *role* policy.
* The *session* policy the broker sends (the real per-grant scope on AWS/MinIO) is NOT
  enforced by moto; it is unit-tested in tests/unit/test_sts_policy.py.
* Expiry is not enforced by moto either; the broker bounds DurationSeconds by the grant's
  deadline (unit-tested) and the hub refuses refreshes past it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dshub.hub.brokers.base import GrantSpec
from dshub.hub.brokers.sts import BrokerError, StsBroker
from dshub.models import Access, Credentials, Location

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
RCLONE = str(BIN / "rclone")
BUCKET = "dshub-test"
PREFIX = "datasets/ds-1/v1/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _boto(service: str, endpoint: str, key: str = "testing", secret: str = "testing"):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name="us-east-1",
                                           aws_access_key_id=key, aws_secret_access_key=secret)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto server whose first SETUP_CALLS requests are unauthenticated, then IAM is on."""
    setup_calls = 6
    port = _free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(setup_calls))
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.1)
        # --- setup, exactly `setup_calls` requests before auth is enforced ---
        s3 = _boto("s3", endpoint)
        iam = _boto("iam", endpoint)
        s3.create_bucket(Bucket=BUCKET)  # 1
        user = iam.create_user(UserName="hub")["User"]  # 2
        key = iam.create_access_key(UserName="hub")["AccessKey"]  # 3
        hub_policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}
        iam.put_user_policy(UserName="hub", PolicyName="hub", PolicyDocument=json.dumps(hub_policy))  # 4
        # moto checks the trust policy: it must name the hub's user.
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}]}
        role = iam.create_role(RoleName="dshub-uploader", AssumeRolePolicyDocument=json.dumps(trust))  # 5
        # The role itself is limited to one prefix so that moto (which ignores session
        # policies) has something to enforce.
        role_policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload",
                                           "s3:ListMultipartUploadParts"],
             "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}*"},
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
             "Resource": f"arn:aws:s3:::{BUCKET}"}]}
        iam.put_role_policy(RoleName="dshub-uploader", PolicyName="prefix", PolicyDocument=json.dumps(role_policy))  # 6
        yield {"endpoint": endpoint, "role_arn": role["Role"]["Arn"], "key": key["AccessKeyId"],
               "secret": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _broker(moto: dict[str, str], **kw: object) -> StsBroker:
    args: dict = dict(bucket=BUCKET, region="us-east-1", role_arn=moto["role_arn"],
                      s3_endpoint_url=moto["endpoint"], sts_endpoint_url=moto["endpoint"],
                      access_key_id=moto["key"], secret_access_key=moto["secret"], duration_s=900)
    args.update(kw)
    return StsBroker(**args)


def _spec(gid: str = "0b6f3c1e-aaaa", access: Access = Access.write, seconds: float = 3600) -> GrantSpec:
    return GrantSpec(gid, PREFIX, access, datetime.now(timezone.utc) + timedelta(seconds=seconds))


def _rclone(loc: Location, creds: Credentials, *args: str) -> subprocess.CompletedProcess[str]:
    """rclone with remote X: from environment variables (secrets never in argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(RCLONE_CONFIG_X_TYPE="s3", RCLONE_CONFIG_X_PROVIDER=loc.provider,
               RCLONE_CONFIG_X_ENDPOINT=loc.endpoint or "", RCLONE_CONFIG_X_REGION=loc.region,
               RCLONE_CONFIG_X_ACCESS_KEY_ID=creds.access_key_id,
               RCLONE_CONFIG_X_SECRET_ACCESS_KEY=creds.secret_access_key,
               RCLONE_CONFIG_X_SESSION_TOKEN=creds.session_token or "")
    argv = [RCLONE, "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1",
            "--s3-no-check-bucket", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_assumed_credentials_write_and_list_inside_the_prefix(moto: dict[str, str], tmp_path: Path) -> None:
    b = _broker(moto)
    b.start()
    spec = _spec()
    loc, creds = b.grant(spec)
    assert loc.endpoint == moto["endpoint"] and loc.provider == "Other" and loc.prefix == PREFIX
    assert creds.session_token and creds.expiry <= spec.expires_at
    assert creds.access_key_id != moto["key"]
    src = tmp_path / "src"
    (src / "2022").mkdir(parents=True)
    (src / "2022" / "01.csv").write_text("a,b\n1,2\n")
    (src / "readme.txt").write_text("hi")
    r = _rclone(loc, creds, "copy", str(src), f"X:{BUCKET}/{PREFIX}")  # trailing slash on the prefix
    assert r.returncode == 0, r.stderr
    r = _rclone(loc, creds, "lsf", "-R", "--files-only", f"X:{BUCKET}/{PREFIX}")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["2022/01.csv", "readme.txt"]
    # Role policy (enforced by moto): a write outside the prefix is denied.
    r = _rclone(loc, creds, "copyto", str(src / "readme.txt"), f"X:{BUCKET}/datasets/ds-2/v1/x.txt")
    assert r.returncode != 0
    assert "AccessDenied" in r.stderr or "403" in r.stderr
    # A tampered session token is rejected (moto enforces it).
    bad = Credentials(access_key_id=creds.access_key_id, secret_access_key=creds.secret_access_key,
                      session_token="x" + (creds.session_token or ""), expiry=creds.expiry)
    assert _rclone(loc, bad, "lsf", f"X:{BUCKET}/{PREFIX}").returncode != 0
    # The hub's own identity sees the objects.
    st = b.storage()
    admin = _boto("s3", st.endpoint or "", st.access_key_id or "", st.secret_access_key or "")
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix="datasets/")["Contents"]]
    assert sorted(keys) == [f"{PREFIX}2022/01.csv", f"{PREFIX}readme.txt"]
    b.stop()


def test_refresh_gives_new_keys_and_revoke_is_a_no_op(moto: dict[str, str]) -> None:
    b = _broker(moto)
    spec = _spec("refresh-1", Access.read)
    loc, c1 = b.grant(spec)
    loc2, c2 = b.refresh(spec)
    assert c2.access_key_id != c1.access_key_id and loc2 == loc
    b.revoke(spec.grant_id)  # documented no-op: STS cannot revoke one session
    r = _rclone(loc, c1, "lsf", f"X:{BUCKET}/{PREFIX}")
    assert r.returncode == 0, r.stderr  # still valid after "revoke" — the hub must know this


def test_expiry_bounds_and_errors(moto: dict[str, str]) -> None:
    b = _broker(moto, duration_s=3600)
    spec = _spec("short", seconds=1000)
    _loc, creds = b.grant(spec)
    assert creds.expiry <= spec.expires_at
    with pytest.raises(BrokerError, match="expired"):
        b.grant(_spec("late", seconds=-5))
    wrong = _broker(moto, secret_access_key="not-the-secret")
    with pytest.raises(BrokerError) as info:
        wrong.grant(_spec("wrong"))
    assert "not-the-secret" not in str(info.value) and moto["secret"] not in str(info.value)
