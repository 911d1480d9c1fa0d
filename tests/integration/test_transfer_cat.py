"""`dshub cat` streams: 200 MB pass through a pipe while neither dshub nor rclone holds
more than a few tens of MB, and nothing is written to disk.

Why not `prlimit --as` below the file size: rclone is a Go binary whose runtime reserves
~1 GB of virtual address space at start (measured: `rclone version` fails under a 500 MB
limit, runs under 1 GB), and the limit is inherited by it, so an address-space limit
smaller than the file cannot be applied. Peak resident memory (VmHWM) of both processes
is measured instead. dshub hands its stdout descriptor to rclone, so the bytes never pass
through Python at all.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import HubFactory
from tests.integration.transfer_util import DSHUB, child_rclones, new_user

pytestmark = pytest.mark.integration

SIZE_MB = 200


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_cat_streams_large_file(hub: HubFactory, tmp_path: Path) -> None:
    h = hub()
    user = new_user(h, "dave", tmp_path)
    src = tmp_path / "big"
    src.mkdir()
    block = os.urandom(1024 * 1024)
    want = hashlib.md5()
    with open(src / "large.bin", "wb") as f:
        for i in range(SIZE_MB):
            b = block[i:] + block[:i]  # every MiB different
            f.write(b)
            want.update(b)
    user.run_json("upload", str(src), "large", timeout=300)
    os.unlink(src / "large.bin")  # the only copy is in the store now

    work = tmp_path / "cwd"
    work.mkdir()
    env = user.env(TMPDIR=str(work))
    proc = subprocess.Popen(
        [*DSHUB, "cat", "large:large.bin"], env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    got = hashlib.md5()
    total = 0
    peak_py = peak_rc = 0
    last = 0.0
    while chunk := proc.stdout.read(256 * 1024):
        got.update(chunk)
        total += len(chunk)
        now = time.monotonic()
        if now - last > 0.05:
            last = now
            peak_py = max(peak_py, _hwm_kb(proc.pid))
            for pid in child_rclones(proc.pid):
                peak_rc = max(peak_rc, _hwm_kb(pid))
        if total < 20 * 1024 * 1024:
            time.sleep(0.002)  # a slow reader at first: back-pressure must not make anyone buffer
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.wait() == 0, err
    assert total == SIZE_MB * 1024 * 1024 and got.hexdigest() == want.hexdigest()
    print(f"peak RSS: dshub {peak_py // 1024} MB, rclone {peak_rc // 1024} MB for {SIZE_MB} MB streamed")
    assert 0 < peak_py < 120 * 1024, f"dshub peak RSS {peak_py} kB"
    assert 0 < peak_rc < 120 * 1024, f"rclone peak RSS {peak_rc} kB"
    assert list(work.iterdir()) == []  # nothing written to disk
