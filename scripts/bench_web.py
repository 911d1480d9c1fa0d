#!/usr/bin/env python3
"""Server time of the hub's web pages: p50/p99 over N requests per page.

Starts a real hub (temporary data dir, free loopback port), registers 1,000 datasets
(50 of them with a version of CSV and Parquet files) and one version of 20,000 files,
signs in through the page's form like a browser, then asks each page N times in a row
(default 200, one connection). Server time is the hub's own ``Server-Timing: page;dur=``
(route start to response, template rendering included); the round trip over loopback is
shown beside it. The figures go to docs/benchmarks.md by hand.

    .venv/bin/python scripts/bench_web.py [--requests 200] [--datasets 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ beside scripts/
from benchmarks.servers import wait_for_hub

DSHUB = [sys.executable, "-m", "dshub.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def commit_on_disk(api: httpx.Client, data_dir: Path, owner: str, name: str, files: dict[str, bytes]) -> None:
    """One version of ``owner/name`` written straight into the local broker's store, then committed."""
    s = api.post(f"/datasets/{owner}/{name}/sessions", json={}).json()
    root = data_dir / "objects" / s["location"]["bucket"] / s["location"]["prefix"]
    manifest = []
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        manifest.append({"path": rel, "size": len(data), "md5": hashlib.md5(data).hexdigest(),
                         "blake3": blake3.blake3(data).hexdigest()})
    r = api.post(f"/sessions/{s['id']}/commit", json={"files": manifest})
    r.raise_for_status()


def parquet(rows: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(rows)), "zone": [f"zone {i % 263}" for i in range(rows)],
                             "fare": [i * 0.25 for i in range(rows)]}), buf)
    return buf.getvalue()


@contextmanager
def running_hub(*serve_args: str, user: str = "bench") -> Iterator[tuple[str, Path, str]]:
    """A hub on a free loopback port with a temporary data dir: (url, data_dir, admin token)."""
    work = Path(tempfile.mkdtemp(prefix="dshub-web-"))
    data_dir = work / "hub"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    rclone = Path(sys.executable).parent / "rclone"
    if rclone.exists():
        env["DSHUB_RCLONE"] = str(rclone)
    log = open(work / "hub.log", "wb")
    hub = subprocess.Popen([*DSHUB, "hub", "serve", "--port", str(port), "--data-dir", str(data_dir), *serve_args],
                           env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_hub(url, hub, work / "hub.log")
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
        yield url, data_dir, create_user(data_dir, env, user)
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def create_user(data_dir: Path, env: dict[str, str] | None, name: str) -> str:
    """``dshub hub create-user NAME``; its token."""
    res = subprocess.run([*DSHUB, "hub", "create-user", name, "--data-dir", str(data_dir)], env=env,
                         capture_output=True, text=True, check=True)
    return res.stdout.strip().splitlines()[-1]


def sign_in(web: httpx.Client, token: str) -> None:
    """Sign ``web`` in through the page's form, as a browser does."""
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/signin").text)
    assert csrf is not None
    assert web.post("/signin", data={"token": token, "csrf_token": csrf.group(1)}).status_code == 303


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--datasets", type=int, default=1000)
    args = ap.parse_args()
    with running_hub() as (url, data_dir, token):
        t0 = time.monotonic()
        csv = ("pickup,distance,fare\n" + "".join(f"2024-01-01 10:{i % 60:02d},{i % 9}.5,{i}.25\n"
                                                  for i in range(5000))).encode()
        pq_bytes = parquet(20_000)
        with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=300) as api:
            for i in range(args.datasets):
                r = api.post("/datasets", json={"name": f"set-{i:04d}", "visibility": "public" if i % 2 else "private",
                                                "description": f"Dataset {i} of trips and zones", "tags": [f"t{i % 10}"]})
                r.raise_for_status()
                if i % (args.datasets // 50 or 1) == 0:
                    commit_on_disk(api, data_dir, "bench", f"set-{i:04d}",
                                   {"2024/01/trips.csv": csv, "zones/lookup/zones.parquet": pq_bytes})
            api.post("/datasets", json={"name": "big"}).raise_for_status()
            big = {f"d{d}/f{i:05d}.txt": b"x" * (i % 7) for d in range(10) for i in range(1998)}
            big.update({f"r{i:02d}.txt": b"r" for i in range(20)})
            commit_on_disk(api, data_dir, "bench", "big", big)
        print(f"registry: {args.datasets + 1} datasets, a 20,000-file version ({time.monotonic() - t0:.0f} s to set up)")

        pages = {
            f"list, first page ({args.datasets + 1:,} datasets)": "/",
            "list, search 'trips t3'": "/?q=trips+t3",
            "list, sorted by size": "/?sort=size",
            "dataset, 20,000-file version (root)": "/datasets/bench/big",
            "folder of 1,998 files (first 200)": "/datasets/bench/big/tree/v1/d3",
            "file, CSV preview": "/datasets/bench/set-0000/file/v1/2024/01/trips.csv",
            "file, Parquet preview": "/datasets/bench/set-0000/file/v1/zones/lookup/zones.parquet",
        }
        with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as web:
            sign_in(web, token)
            print(f"\n{'page':40} {'server p50':>11} {'p99':>8} {'round trip p50':>15} {'p99':>8}   (ms, {args.requests} requests)")
            for label, path in pages.items():
                for _ in range(5):  # warm: templates compiled, pyarrow imported
                    web.get(path).raise_for_status()
                server: list[float] = []
                wall: list[float] = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = web.get(path)
                    wall.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    server.append(float(r.headers["server-timing"].split("dur=")[1]))
                print(f"{label:40} {statistics.median(server):11.1f} {pct(server, 99):8.1f} "
                      f"{statistics.median(wall):15.1f} {pct(wall, 99):8.1f}")


if __name__ == "__main__":
    main()
