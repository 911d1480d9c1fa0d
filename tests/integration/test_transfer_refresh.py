"""Credentials that live 30 s, an upload that takes over a minute: refreshed inside rclone
(credential_process through env_auth) without restarting it, and the upload completes.

The hub's local broker really stops honouring expired keys (its per-session endpoint is
stopped at expiry), so finishing at all proves the refresh worked; DSHUB_CRED_LOG shows
when rclone asked and that the hub was called for new expiries.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import HubFactory
from tests.integration.transfer_util import copied, new_user, tree_digest

pytestmark = pytest.mark.integration


def test_refresh_during_long_upload(hub: HubFactory, tmp_path: Path) -> None:
    h = hub("--credential-ttl", "30")
    user = new_user(h, "carol", tmp_path)
    src = tmp_path / "slow"
    src.mkdir()
    rnd = __import__("random").Random(7)
    for i in range(6):
        (src / f"chunk-{i}.bin").write_bytes(rnd.randbytes(11 * 1024 * 1024))  # multipart: requests all along
    credlog = tmp_path / "cred.log"
    rlog = tmp_path / "rclone.log"
    env = user.env(
        DSHUB_CRED_LOG=str(credlog),
        DSHUB_RCLONE_LOG=str(rlog),
        RCLONE_S3_UPLOAD_CUTOFF="5M",
        RCLONE_S3_CHUNK_SIZE="5M",
    )
    t0 = time.monotonic()
    res = user.run_json(
        "upload", str(src), "slow", "--bwlimit", "1M", "--transfers", "2", env=env, timeout=170
    )
    took = time.monotonic() - t0
    assert res["status"] == "committed"
    assert took > 62, f"upload took only {took:.0f}s; the test needs > 2 credential lifetimes"
    calls = credlog.read_text().splitlines()
    print("\n".join(calls))  # shown with -s: when rclone asked, and whether the hub was called
    refreshed = [c for c in calls if " refreshed " in c]
    assert len(refreshed) >= 2, calls  # at least one per 30 s lifetime after the first
    assert len(calls) < 40, "credential_process called far too often"
    assert len(copied(rlog)) == 6  # one rclone run, every file sent once
    dest = tmp_path / "down"
    user.run_json("download", "slow", str(dest))
    assert tree_digest(dest) == tree_digest(src)
