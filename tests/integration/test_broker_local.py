"""LocalBroker against a real ``rclone rcd`` and real rclone / boto3 clients.

Every guarantee checked here is enforced by rclone itself (serve s3 SigV4 auth, the combine
view that contains only the prefix, the ``read_only`` VFS option, serve/stop closing the
port); nothing depends on the hub's own checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dshub.hub.brokers.base import GrantSpec
from dshub.hub.brokers.local import LocalBroker
from dshub.models import Access, Credentials, Location

pytestmark = pytest.mark.integration

RCLONE = str(Path(sys.executable).parent / "rclone")
SECRET = b"test-hub-secret-0123456789abcdef"


def _later(seconds: float = 3600) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def _spec(gid: str, prefix: str, access: Access = Access.write, seconds: float = 3600) -> GrantSpec:
    return GrantSpec(grant_id=gid, prefix=prefix, access=access, expires_at=_later(seconds))


def _make(tmp: Path) -> LocalBroker:
    return LocalBroker(objects_dir=tmp / "objects", state_dir=tmp / "state", rclone=RCLONE, secret=SECRET)


def _rclone(loc: Location, creds: Credentials, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run rclone with the remote ``X:`` defined by environment variables (no secret in argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env.update(
        RCLONE_CONFIG_X_TYPE="s3",
        RCLONE_CONFIG_X_PROVIDER=loc.provider,
        RCLONE_CONFIG_X_ENDPOINT=loc.endpoint or "",
        RCLONE_CONFIG_X_REGION=loc.region,
        RCLONE_CONFIG_X_ACCESS_KEY_ID=creds.access_key_id,
        RCLONE_CONFIG_X_SECRET_ACCESS_KEY=creds.secret_access_key,
    )
    argv = [RCLONE, "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1",
            "--s3-no-check-bucket", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def _s3(endpoint: str, key: str, secret: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2),
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    b = _make(tmp_path_factory.mktemp("local broker"))  # a space in the path on purpose
    b.start()
    try:
        yield b
    finally:
        pid = b.rcd_pid()
        b.stop()
        assert pid is not None and not Path(f"/proc/{pid}").exists()


def test_write_grant_is_confined_to_its_prefix(broker: LocalBroker, tmp_path: Path) -> None:
    loc, creds = broker.grant(_spec("w1", "datasets/ds-1/v3/"))
    assert loc.bucket == "dshub" and loc.prefix == "datasets/ds-1/v3/" and creds.session_token is None
    assert creds.access_key_id.startswith("DSH") and len(creds.access_key_id) == 20
    src = tmp_path / "src"
    (src / "2022").mkdir(parents=True)
    (src / "2022" / "01.csv").write_text("a,b\n1,2\n")
    (src / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    # Multipart (5 MiB chunks) and a nested path, with the trailing slash on the prefix.
    r = _rclone(loc, creds, "copy", str(src), f"X:dshub/{loc.prefix}",
                "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    assert r.returncode == 0, r.stderr
    r = _rclone(loc, creds, "lsf", "-R", "--files-only", f"X:dshub/{loc.prefix}")
    assert sorted(r.stdout.split()) == ["2022/01.csv", "big.bin"]
    stored = broker.objects_dir / "dshub/datasets/ds-1/v3/big.bin"
    assert stored.read_bytes() == (src / "big.bin").read_bytes()

    (tmp_path / "x.txt").write_text("x")
    for outside in ("dshub/datasets/ds-1/v4/x.txt", "dshub/datasets/ds-2/v3/x.txt", "dshub/x.txt",
                    "other/x.txt"):
        r = _rclone(loc, creds, "copyto", str(tmp_path / "x.txt"), f"X:{outside}")
        assert r.returncode != 0, outside
    assert not (broker.objects_dir / "dshub/datasets/ds-1/v4").exists()
    assert not (broker.objects_dir / "dshub/datasets/ds-2").exists()
    assert not (broker.objects_dir / "other").exists()

    # A key with '..' is stored (encoded) inside the prefix, never above it.
    s3 = _s3(loc.endpoint or "", creds.access_key_id, creds.secret_access_key)
    try:
        s3.put_object(Bucket="dshub", Key="datasets/ds-1/v3/../v4/evil.txt", Body=b"evil")
    except Exception:  # noqa: BLE001 - refusing is fine too
        pass
    leaked = [p for p in broker.objects_dir.rglob("evil.txt")
              if not str(p).startswith(str(broker.objects_dir / "dshub/datasets/ds-1/v3"))]
    assert leaked == []

    # Wrong secret: SigV4 is enforced.
    bad = Credentials(access_key_id=creds.access_key_id, secret_access_key="0" * 40, expiry=creds.expiry)
    assert _rclone(loc, bad, "lsf", f"X:dshub/{loc.prefix}").returncode != 0
    broker.revoke("w1")


def test_read_grant_is_read_only(broker: LocalBroker, tmp_path: Path) -> None:
    """Read grants refuse PUT/DELETE (the gate's 403, serve s3's ``read_only`` behind it); nothing changes."""
    version = broker.objects_dir / "dshub/datasets/ds-r/v1"
    version.mkdir(parents=True)
    (version / "data.csv").write_text("hello\n")
    loc, creds = broker.grant(_spec("r1", "datasets/ds-r/v1/", Access.read))
    r = _rclone(loc, creds, "cat", f"X:dshub/{loc.prefix}data.csv")
    assert r.returncode == 0 and r.stdout == "hello\n", r.stderr
    (tmp_path / "n.txt").write_text("new")
    r = _rclone(loc, creds, "copyto", str(tmp_path / "n.txt"), f"X:dshub/{loc.prefix}n.txt")
    assert r.returncode != 0
    r = _rclone(loc, creds, "copyto", str(tmp_path / "n.txt"), f"X:dshub/{loc.prefix}n.bin",
                "--s3-upload-cutoff", "0")  # multipart path too
    assert r.returncode != 0
    r = _rclone(loc, creds, "deletefile", f"X:dshub/{loc.prefix}data.csv")
    assert r.returncode != 0
    assert sorted(p.name for p in version.iterdir()) == ["data.csv"]
    assert (version / "data.csv").read_text() == "hello\n"
    broker.revoke("r1")


def test_revoke_is_immediate_and_idempotent(broker: LocalBroker) -> None:
    loc, creds = broker.grant(_spec("rv", "datasets/ds-rv/v1/"))
    assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode == 0
    t0 = time.monotonic()
    broker.revoke("rv")
    latency = time.monotonic() - t0
    r = _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}")
    assert r.returncode != 0
    assert latency < 1.0
    broker.revoke("rv")  # idempotent
    broker.revoke("never-existed")
    assert "rv" not in broker.live_grants()


def test_revoked_grants_leave_nothing_in_rclones_fs_cache(broker: LocalBroker) -> None:
    """Every grant builds Fs objects (one per combine level) that rclone's fs cache kept
    for good: a long-running hub's rcd grew with every session. Revoking clears the cache;
    an endpoint still live keeps serving."""
    kept = broker.objects_dir / "dshub/datasets/ds-fc/v1"
    kept.mkdir(parents=True)
    (kept / "data.txt").write_text("still served\n")
    keep_loc, keep_creds = broker.grant(_spec("fc-keep", "datasets/ds-fc/v1/", Access.read))
    assert _rclone(keep_loc, keep_creds, "lsf", f"X:dshub/{keep_loc.prefix}").returncode == 0
    for i in range(6):
        loc, creds = broker.grant(_spec(f"fc{i}", f"datasets/ds-fc{i}/v1/"))
        assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode == 0
        broker.revoke(f"fc{i}")
    entries = broker._rc("fscache/entries", {})["entries"]
    assert entries <= 2, f"rclone still caches {entries} Fs after the revocations"
    r = _rclone(keep_loc, keep_creds, "cat", f"X:dshub/{keep_loc.prefix}data.txt")
    assert r.returncode == 0 and r.stdout == "still served\n", r.stderr
    broker.revoke("fc-keep")


def test_refresh_keeps_keys_while_alive_and_rotates_after_revoke(broker: LocalBroker) -> None:
    spec = _spec("rf", "datasets/ds-rf/v1/")
    loc1, c1 = broker.grant(spec)
    later = GrantSpec(spec.grant_id, spec.prefix, spec.access, _later(7200))
    loc2, c2 = broker.refresh(later)
    assert (loc2.endpoint, c2.access_key_id, c2.secret_access_key) == (loc1.endpoint, c1.access_key_id,
                                                                      c1.secret_access_key)
    assert c2.expiry == later.expires_at
    broker.revoke("rf")
    loc3, c3 = broker.refresh(later)
    assert c3.access_key_id != c1.access_key_id  # revoked keys never come back
    assert _rclone(loc3, c3, "lsf", f"X:dshub/{loc3.prefix}").returncode == 0
    assert _rclone(loc3, c1, "lsf", f"X:dshub/{loc3.prefix}").returncode != 0
    broker.revoke("rf")


def test_admin_storage_sees_everything_and_etag_is_md5(broker: LocalBroker) -> None:
    loc, creds = broker.grant(_spec("ad", "datasets/ds-ad/v1/"))
    body = os.urandom(6 * 1024 * 1024)
    s3g = _s3(loc.endpoint or "", creds.access_key_id, creds.secret_access_key)
    # Multipart upload through the grant: the ETag the hub sees is still the whole-file MD5.
    mp = s3g.create_multipart_upload(Bucket="dshub", Key="datasets/ds-ad/v1/m.bin")
    p1 = s3g.upload_part(Bucket="dshub", Key="datasets/ds-ad/v1/m.bin", UploadId=mp["UploadId"],
                         PartNumber=1, Body=body[: 5 * 1024 * 1024])
    p2 = s3g.upload_part(Bucket="dshub", Key="datasets/ds-ad/v1/m.bin", UploadId=mp["UploadId"],
                         PartNumber=2, Body=body[5 * 1024 * 1024:])
    s3g.complete_multipart_upload(
        Bucket="dshub", Key="datasets/ds-ad/v1/m.bin", UploadId=mp["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]},
    )
    st = broker.storage()
    assert st.endpoint and st.endpoint.startswith("http://127.0.0.1:") and st.bucket == "dshub"
    admin = _s3(st.endpoint, st.access_key_id or "", st.secret_access_key or "")
    head = admin.head_object(Bucket="dshub", Key="datasets/ds-ad/v1/m.bin")
    assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    listed = admin.list_objects_v2(Bucket="dshub", Prefix="datasets/")
    assert "datasets/ds-ad/v1/m.bin" in [o["Key"] for o in listed.get("Contents", [])]
    admin.delete_object(Bucket="dshub", Key="datasets/ds-ad/v1/m.bin")
    assert not (broker.objects_dir / "dshub/datasets/ds-ad/v1/m.bin").exists()
    broker.revoke("ad")


def test_expired_grant_is_revoked_by_the_supervisor(broker: LocalBroker) -> None:
    loc, creds = broker.grant(_spec("ex", "datasets/ds-ex/v1/", seconds=1.5))
    assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode == 0
    deadline = time.monotonic() + 6
    while "ex" in broker.live_grants() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "ex" not in broker.live_grants()
    assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode != 0


def test_rcd_crash_is_recovered_with_same_port_and_keys(broker: LocalBroker) -> None:
    loc, creds = broker.grant(_spec("cr", "datasets/ds-cr/v1/"))
    pid = broker.rcd_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (broker.rcd_pid() in (None, pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Either the supervisor already relaunched it or this call triggers it.
    loc2, creds2 = broker.refresh(_spec("cr", "datasets/ds-cr/v1/"))
    assert broker.rcd_pid() not in (None, pid)
    assert (loc2.endpoint, creds2.access_key_id) == (loc.endpoint, creds.access_key_id)
    assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode == 0
    assert broker.restarts >= 1
    broker.revoke("cr")


def test_no_secret_in_argv_log_or_state(broker: LocalBroker, tmp_path: Path) -> None:
    loc, creds = broker.grant(_spec("sec", "datasets/ds-sec/v1/"))
    # Provoke errors that rclone logs.
    (tmp_path / "x").write_text("x")
    _rclone(loc, creds, "copyto", str(tmp_path / "x"), "X:dshub/elsewhere/x")
    pid = broker.rcd_pid()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    admin = broker.storage()
    env_pass = [e for e in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
                if e.startswith("RCLONE_RC_PASS=")][0].split("=", 1)[1]
    secrets_ = [creds.secret_access_key, admin.secret_access_key or "", env_pass]
    for s in secrets_:
        assert s and s not in cmdline
    state = broker.state_dir
    for f in ("rcd.log", "ports.json", "rcd.conf"):
        text = (state / f).read_text()
        for s in secrets_:
            assert s not in text, f
    saved = json.loads((state / "ports.json").read_text())
    assert saved["grants"]["sec"]["key_id"] == creds.access_key_id
    assert oct((state / "ports.json").stat().st_mode & 0o777) == "0o600"
    broker.revoke("sec")


def test_restore_after_restart_uses_same_port_and_keys(tmp_path: Path) -> None:
    b1 = _make(tmp_path)
    b1.start()
    spec = _spec("rs", "datasets/ds-rs/v2/")
    gone = _spec("old", "datasets/ds-old/v1/")
    loc, creds = b1.grant(spec)
    b1.grant(gone)
    b1.stop()
    assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode != 0

    b2 = _make(tmp_path)  # a new hub process: same state dir and secret
    b2.start()
    try:
        b2.restore([spec])
        loc2, creds2 = b2.refresh(spec)
        assert (loc2.endpoint, creds2.access_key_id, creds2.secret_access_key) == (
            loc.endpoint, creds.access_key_id, creds.secret_access_key)
        assert _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}").returncode == 0
        saved = json.loads((tmp_path / "state/ports.json").read_text())
        assert set(saved["grants"]) == {"rs"}
    finally:
        b2.stop()


_CHILD = """
import sys, time
from pathlib import Path
from dshub.hub.brokers.local import LocalBroker
b = LocalBroker(objects_dir=Path(sys.argv[1]) / "o", state_dir=Path(sys.argv[1]) / "s",
                rclone=sys.argv[2], secret=b"x" * 32)
b.start()
print(b.rcd_pid(), flush=True)
time.sleep(60)
"""


def test_rcd_dies_with_a_kill_9_hub(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: no orphan rclone even when the hub gets no chance to clean up."""
    hub = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), RCLONE],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert hub.stdout is not None
        rcd_pid = int(hub.stdout.readline())
        assert Path(f"/proc/{rcd_pid}").exists()
    finally:
        hub.kill()
        hub.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{rcd_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{rcd_pid}").exists()


def test_a_sweep_that_saw_a_grant_lapse_spares_it_once_refreshed(broker: LocalBroker, tmp_path: Path) -> None:
    """The hub's sweeper reads lapsed grants, then revokes them; a refresh landing between
    the two must keep its new credentials (seen as a refused PUT right after a refresh)."""
    saw_lapse = datetime.now(timezone.utc)
    loc, creds = broker.grant(_spec("race", "datasets/ds-race/staging/s/", seconds=3600))
    broker.revoke("race", lapsed_by=saw_lapse)  # the sweeper, late: the grant expires after that
    (tmp_path / "a.txt").write_text("a")
    r = _rclone(loc, creds, "copyto", str(tmp_path / "a.txt"), f"X:dshub/{loc.prefix}a.txt")
    assert r.returncode == 0, r.stderr
    broker.revoke("race", lapsed_by=_later(7200))  # still expiring by then: revoked
    r = _rclone(loc, creds, "lsf", f"X:dshub/{loc.prefix}")
    assert r.returncode != 0


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)


def test_rcd_runs_with_a_soft_memory_limit_the_operator_can_override(
    broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dshub.hub.brokers.rcd import RCD_MEMORY_LIMIT

    pid = broker.rcd_pid()
    assert pid is not None and _environ(pid)["GOMEMLIMIT"] == RCD_MEMORY_LIMIT
    monkeypatch.setenv("GOMEMLIMIT", "1GiB")
    other = _make(tmp_path / "own limit")
    other.start()
    try:
        pid2 = other.rcd_pid()
        assert pid2 is not None and _environ(pid2)["GOMEMLIMIT"] == "1GiB"
    finally:
        other.stop()
