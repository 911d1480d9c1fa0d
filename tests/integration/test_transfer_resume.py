"""Resume after kill -9 at several points, over a few hundred files and one multipart file.

Each case: start `dshub upload` with a bandwidth limit, kill -9 at a chosen moment, run
the same command again (no limit) and check that it completes, that the files rclone had
reported finished before the kill were not sent again (from DSHUB_RCLONE_LOG, rclone's own
JSON log), that no rclone is left running, and that the version downloads byte-identical.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import HubFactory
from tests.integration.transfer_util import (
    User,
    child_rclones,
    copied,
    new_user,
    rclones_mentioning,
    tree_digest,
    wait_for,
)

pytestmark = pytest.mark.integration

# Multipart above 5 MiB (S3's minimum part size) so the 12 MB file is a multipart upload.
MULTIPART = {"RCLONE_S3_UPLOAD_CUTOFF": "5M", "RCLONE_S3_CHUNK_SIZE": "5M"}


@pytest.fixture(scope="module")
def bob(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> User:
    return new_user(module_hub(), "bob", tmp_path_factory.mktemp("bob"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "tree"
    rnd = __import__("random").Random(5)
    for i in range(300):
        p = root / f"part{i % 7}" / f"file-{i:03d}.dat"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rnd.randbytes(rnd.randint(1, 8000)))
    (root / "big.bin").write_bytes(rnd.randbytes(12 * 1024 * 1024))
    return root


def _finish_and_check(user: User, tree: Path, name: str, first_log: Path, tmp: Path) -> dict:
    sent_before = set(copied(first_log))
    log2 = tmp / "second.log"
    res = user.run_json("upload", str(tree), name, env=user.env(DSHUB_RCLONE_LOG=str(log2), **MULTIPART))
    assert res["status"] in ("committed", "up_to_date"), res
    sent_after = copied(log2)
    assert not sent_before & set(sent_after), (
        f"re-sent after resume: {sorted(sent_before & set(sent_after))[:5]}"
    )
    assert len(sent_after) == len(set(sent_after))
    dest = tmp / f"{name}-down"
    user.run_json("download", name, str(dest))
    assert tree_digest(dest) == tree_digest(tree)
    return {"res": res, "before": sent_before, "after": sent_after}


def test_kill9_early(bob: User, tree: Path, tmp_path: Path) -> None:
    log1 = tmp_path / "first.log"
    proc = bob.popen(
        "upload", str(tree), "early", "--bwlimit", "2M", env=bob.env(DSHUB_RCLONE_LOG=str(log1), **MULTIPART)
    )
    wait_for(lambda: child_rclones(proc.pid) and log1.exists(), 60, "rclone to start")
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)  # dshub dies; PR_SET_PDEATHSIG takes rclone with it
    proc.wait()
    wait_for(lambda: not rclones_mentioning(str(tree)), 10, "rclone to die with dshub")
    out = _finish_and_check(bob, tree, "early", log1, tmp_path)
    assert out["res"]["resumed"] is True


def test_kill9_rclone_mid_file(bob: User, tree: Path, tmp_path: Path) -> None:
    log1 = tmp_path / "first.log"
    proc = bob.popen(
        "upload",
        str(tree),
        "midfile",
        "--bwlimit",
        "3M",
        env=bob.env(DSHUB_RCLONE_LOG=str(log1), **MULTIPART),
    )
    # Wait until many small files are done and the big multipart file is in flight.
    wait_for(
        lambda: len(copied(log1)) >= 100 and '"big.bin"' in log1.read_text(),
        90,
        "the multipart file in flight",
    )
    pids = child_rclones(proc.pid)
    argvs = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids]
    environs = [Path(f"/proc/{pid}/environ").read_bytes() for pid in pids]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err  # transfer failed, retry may succeed
    assert b"run the same command" in err
    assert "big.bin" not in copied(log1)
    # Secrets were nowhere in rclone's argv; its environment named no static keys at all
    # (credential_process supplies them), and no AWS_* variable could shadow the profile.
    with bob.api() as c:
        grant = c.post("/datasets/bob/midfile/sessions", json={"resume": True}).json()
    secret = grant["credentials"]["secret_access_key"].encode()
    assert argvs and all(secret not in a and bob.token.encode() not in a for a in argvs)
    for e in environs:
        names = [kv.split(b"=", 1)[0] for kv in e.split(b"\0")]
        assert secret not in e
        assert b"AWS_ACCESS_KEY_ID" not in names and b"AWS_SECRET_ACCESS_KEY" not in names
        assert b"RCLONE_CONFIG_DSHUB_ENV_AUTH=true" in e.split(b"\0")
    out = _finish_and_check(bob, tree, "midfile", log1, tmp_path)
    assert "big.bin" in out["after"] and len(out["before"]) >= 100


def test_kill9_during_commit(bob: User, tree: Path, tmp_path: Path) -> None:
    log1 = tmp_path / "first.log"
    proc = bob.popen("upload", str(tree), "commit", env=bob.env(DSHUB_RCLONE_LOG=str(log1), **MULTIPART))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(b"Committing"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    out = _finish_and_check(bob, tree, "commit", log1, tmp_path)
    # Either the commit had landed (re-run: up to date) or not (re-run: commit only).
    assert out["after"] == []
    assert out["res"]["version"] == 1


def test_ctrl_c_keeps_session(bob: User, tree: Path, tmp_path: Path) -> None:
    log1 = tmp_path / "first.log"
    proc = bob.popen(
        "upload", str(tree), "ctrlc", "--bwlimit", "2M", env=bob.env(DSHUB_RCLONE_LOG=str(log1), **MULTIPART)
    )
    wait_for(lambda: len(copied(log1)) >= 20, 180, "some files sent")
    rclones = child_rclones(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"run the same command to resume" in err
    assert all(
        not Path(f"/proc/{p}").exists() or b"zombie" in Path(f"/proc/{p}/status").read_bytes()
        for p in rclones
    )
    with bob.api() as c:
        sessions = c.get("/datasets/bob/ctrlc/sessions").json()["items"]
    assert len(sessions) == 1 and sessions[0]["state"] == "open"
    out = _finish_and_check(bob, tree, "ctrlc", log1, tmp_path)
    assert out["res"]["resumed"] is True and out["res"]["skipped_files"] >= 20
