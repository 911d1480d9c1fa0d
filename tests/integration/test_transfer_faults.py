"""What a user sees when a transfer meets the real world: big files, a read-only or full
destination, the hub dying mid-upload. Real hub, real rclone, real file systems.

Read-only and full destinations are real tmpfs mounts made by the test (root can write
through chmod, not through a read-only mount); without root or mount(8) those tests skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HubFactory
from tests.integration.transfer_util import User, child_rclones, new_user, tree_digest, wait_for

pytestmark = pytest.mark.integration

# rclone switches to "Multi-thread Copied" above --multi-thread-cutoff (256 MiB by
# default); lowered here so a 6 MB file takes the same path as a 600 MB one.
MULTI_THREAD = {
    "RCLONE_MULTI_THREAD_CUTOFF": "1M",
    "RCLONE_S3_UPLOAD_CUTOFF": "5M",
    "RCLONE_S3_CHUNK_SIZE": "5M",
}


@pytest.fixture(scope="module")
def carol(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> User:
    return new_user(module_hub(), "carol", tmp_path_factory.mktemp("carol"))


class Mounts:
    """tmpfs mounts made by one test, all unmounted at teardown."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, where: Path, *, size: str = "1m", read_only: bool = False) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0755" + (",ro" if read_only else "")
        argv = ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            why = r.stderr.strip() or r.returncode
            pytest.skip(f"cannot mount a tmpfs here ({why}): needs root and mount(8)")
        self.points.append(where)
        return where

    def close(self) -> None:
        for p in reversed(self.points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    if os.geteuid() != 0 or not (shutil.which("mount") and shutil.which("umount")):
        pytest.skip("read-only and full file systems are made with mount(8), which needs root")
    m = Mounts()
    yield m
    m.close()


def _upload(user: User, src: Path, name: str, files: dict[str, int]) -> None:
    for rel, size in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
    r = user.run("upload", str(src), name)
    assert r.returncode == 0, r.stderr.decode()


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _one_line_error(r: subprocess.CompletedProcess[bytes], code: int) -> str:
    """stderr of a failed command: the right exit code, no traceback, a handful of lines."""
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert "Traceback" not in err and "dshub bug" not in err, err
    rclone_lines = [ln for ln in err.splitlines() if ln.startswith("rclone:")]
    assert len(rclone_lines) <= 3, err
    return err


def test_files_above_the_multi_thread_cutoff_are_counted(carol: User, tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(6_000_000))
    (src / "small.txt").write_bytes(b"small\n")
    log = tmp_path / "rclone.log"
    env = carol.env(DSHUB_RCLONE_LOG=str(log), **MULTI_THREAD)
    up = carol.run_json("upload", str(src), "big", env=env)
    assert up["sent_files"] == 2 and up["sent_bytes"] == 6_000_006, up
    dest = tmp_path / "down"
    down = carol.run_json("download", "big", str(dest), env=env)
    assert down["fetched_files"] == 2 and down["fetched_bytes"] == 6_000_006, down
    assert down["checked_files"] == 2 and tree_digest(dest) == tree_digest(src)
    # Both directions really took rclone's multi-thread path.
    assert log.read_text().count('"msg":"Multi-thread Copied (new)"') == 2


def test_download_into_a_read_only_folder(carol: User, mounts: Mounts, tmp_path: Path) -> None:
    _upload(carol, tmp_path / "src", "ro-target", {f"d{i % 3}/f{i:02d}.bin": 3000 for i in range(40)})
    ro = mounts.tmpfs(tmp_path / "ro", read_only=True)
    err = _one_line_error(carol.run("download", "ro-target", str(ro)), 1)
    assert "not writable" in err and "Read-only file system" in err
    # A new folder under it: makedirs fails; one line, not a traceback.
    err = _one_line_error(carol.run("download", "ro-target", str(ro / "new" / "sub")), 1)
    assert "cannot create" in err and "Read-only file system" in err


def test_read_only_subfolder_met_mid_download(carol: User, mounts: Mounts, tmp_path: Path) -> None:
    """The folder itself is writable, a subfolder is not: rclone meets it file after
    file. The engine stops rclone at the first, shows a few lines, says what it was."""
    files = {"top.txt": 10, **{f"sub/f{i:03d}.bin": 2000 for i in range(60)}}
    _upload(carol, tmp_path / "src", "ro-sub", files)
    dest = tmp_path / "dest"
    mounts.tmpfs(dest / "sub", read_only=True)
    err = _one_line_error(carol.run("download", "ro-sub", str(dest)), 1)
    assert "destination is not writable" in err and "read-only file system" in err
    assert sorted(os.listdir(dest / "sub")) == []


def test_download_into_a_full_disk(carol: User, mounts: Mounts, tmp_path: Path) -> None:
    _upload(carol, tmp_path / "src", "too-big", {"a.bin": 700_000, "b.bin": 700_000})
    small = mounts.tmpfs(tmp_path / "small", size="1m")
    err = _one_line_error(carol.run("download", "too-big", str(small / "here")), 1)
    assert "not enough space" in err and "nothing was fetched" in err
    assert os.listdir(small) == []  # nothing fetched, no folder made


def test_hub_killed_mid_upload_exits_5_and_rerun_succeeds(hub: HubFactory, tmp_path: Path) -> None:
    h = hub()
    user = new_user(h, "dave", tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(200_000))
    log = tmp_path / "first.log"
    # One attempt per request: rclone's default ten back off for minutes against an
    # endpoint that is gone (a real user waits that long, a test need not).
    env = user.env(DSHUB_RCLONE_LOG=str(log), RCLONE_LOW_LEVEL_RETRIES="1")
    proc = user.popen("upload", str(src), "dies", "--bwlimit", "1M", env=env)
    wait_for(lambda: child_rclones(proc.pid) and "Copied" in _text(log), 60, "a file sent")
    h.kill()  # SIGKILL: the hub and the S3 endpoint it serves are gone at once
    _, err_b = proc.communicate(timeout=120)
    err = err_b.decode()
    assert proc.returncode == 5, err
    assert "Traceback" not in err and "dshub bug" not in err, err
    assert "run the same command again" in err
    assert len([ln for ln in err.splitlines() if ln.startswith("rclone:")]) <= 3, err
    h.start()  # same data dir and port: the session is still open
    again = user.run_json("upload", str(src), "dies", env=user.env())
    assert again["status"] == "committed" and again["resumed"] is True, again

    # The same for a download: the read endpoint dies with the hub; the re-run fetches the rest.
    dest = tmp_path / "down"
    log2 = tmp_path / "down.log"
    env2 = user.env(DSHUB_RCLONE_LOG=str(log2), RCLONE_LOW_LEVEL_RETRIES="1")
    proc = user.popen("download", "dies", str(dest), "--bwlimit", "1M", env=env2)
    wait_for(lambda: child_rclones(proc.pid) and "Copied" in _text(log2), 60, "a file fetched")
    h.kill()
    _, err_b = proc.communicate(timeout=120)
    err = err_b.decode()
    assert proc.returncode == 5 and "stopped answering" in err and "Traceback" not in err, err
    h.start()
    down = user.run_json("download", "dies", str(dest))
    assert 0 < down["skipped_files"] < 40 and down["fetched_files"] == 40 - down["skipped_files"], down
    assert tree_digest(dest) == tree_digest(src)


def test_ctrl_c_is_not_mapped(carol: User, tmp_path: Path) -> None:
    """SIGINT still means "interrupted" (130), not a failure kind."""
    _upload(carol, tmp_path / "src", "slow", {f"f{i}.bin": 400_000 for i in range(6)})
    proc = carol.popen("download", "slow", str(tmp_path / "d"), "--bwlimit", "500k")
    wait_for(lambda: bool(child_rclones(proc.pid)), 60, "rclone to start")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
