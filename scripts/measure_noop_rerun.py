#!/usr/bin/env python3
"""Count the S3 requests of a no-op re-run of `dshub upload` over N small files.

    python scripts/measure_noop_rerun.py [N]       (default 10,000)

Starts a hub, uploads N files of 512 B but stops right before the commit (as if killed
during commit), then runs the same upload again with ``RCLONE_DUMP=headers`` and counts
the HTTP requests every rclone process of that re-run made (from DSHUB_RCLONE_LOG). Also
times a re-run after the commit (the "up to date" check: hub manifest + local MD5s, no
S3 request at all).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    work = Path(tempfile.mkdtemp(prefix="dshub-noop-"))
    src = work / "files"
    for i in range(n):
        p = src / f"d{i // 500:03d}" / f"f{i:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(512))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "RCLONE_", "AWS_"))}
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dshub.cli.main",
            "hub",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(work / "hub"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/api/v1/info", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        token = (
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dshub.cli.main",
                    "hub",
                    "create-user",
                    "bench",
                    "--data-dir",
                    str(work / "hub"),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        os.environ.update(DSHUB_HUB_URL=url, DSHUB_TOKEN=token)
        from dshub.api.auth import resolve_client
        from dshub.refs import DatasetRef
        from dshub.transfer.upload import upload

        client = resolve_client()
        real_commit = client.commit_session

        class Stop(Exception):
            pass

        def no_commit(*a, **k):  # type: ignore[no-untyped-def]
            raise Stop

        client.commit_session = no_commit  # type: ignore[method-assign]
        t = time.monotonic()
        try:
            upload(client, src, DatasetRef(name="noop", owner="bench"))
        except Stop:
            pass
        print(f"first upload of {n} files (not committed): {time.monotonic() - t:.1f}s")
        client.commit_session = real_commit  # type: ignore[method-assign]
        log = work / "rerun.log"
        os.environ.update(RCLONE_DUMP="headers", DSHUB_RCLONE_LOG=str(log))
        t = time.monotonic()
        marks = []
        res = upload(
            client,
            src,
            DatasetRef(name="noop", owner="bench"),
            on_event=lambda e: marks.append(
                (round(time.monotonic() - t, 2), type(e).__name__, getattr(e, "name", ""))
            ),
        )
        took = time.monotonic() - t
        reqs = collections.Counter()
        for line in log.read_text(errors="replace").splitlines():
            m = re.search(r"DEBUG : (GET|HEAD|PUT|POST|DELETE) (\S+)", line)
            if m:
                kind = (
                    "ListMultipartUploads"
                    if "uploads" in m.group(2)
                    else ("ListObjectsV2" if "?" in m.group(2) and m.group(1) == "GET" else m.group(1))
                )
                reqs[kind] += 1
        print(
            f"re-run (resume, everything already uploaded): {took:.1f}s, sent {res.sent_files} files, "
            f"S3 requests: {sum(reqs.values())} {dict(reqs)}; then committed {res.ref}"
        )
        print("  phases (s since start):", [m for m in marks if m[1] == "Phase"])
        os.environ.pop("RCLONE_DUMP")
        t = time.monotonic()
        again = upload(client, src, DatasetRef(name="noop", owner="bench"))
        print(
            f"re-run after commit: {again.status} in {time.monotonic() - t:.1f}s (no S3 request: manifest + local MD5)"
        )
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
