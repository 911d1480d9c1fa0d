"""Load on one hub: N concurrent clients for T seconds, loopback only; a script, not a test.

``python -m benchmarks.hub_load [--clients 50] [--seconds 60] [--json out.json]``

Starts its own ``dshub hub serve`` (local broker, fresh data dir in a temp folder), makes
a few users and one committed dataset each, then runs ``--clients`` threads until the
deadline, each picking at random: list datasets, dataset info, open + refresh + abort a
session, a read grant, a small download (GET of a 1 KiB object with a read grant), a
small upload (open, PUT 1 KiB, commit). Reported: count, 5xx and p50/p99 latency per
route, and the hub's (and its rclone's) RSS and open descriptors before the load and
after it stopped and settled. Bounded: at most ``--clients`` ≤ 200 threads for at most
600 s, every socket to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from benchmarks.servers import wait_for_hub

USERS = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_stats(pid: int) -> dict[str, int]:
    """RSS (KiB) and open descriptors of ``pid``."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _stats(hub_pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {"hub": _proc_stats(hub_pid)}
    for child in _children(hub_pid):
        try:
            out["rclone"] = _proc_stats(child)
        except OSError:
            pass
    return out


def _s3(grant: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    loc, cred = grant["location"], grant["credentials"]
    return boto3.session.Session().client(
        "s3", endpoint_url=loc["endpoint"], region_name=loc["region"],
        aws_access_key_id=cred["access_key_id"], aws_secret_access_key=cred["secret_access_key"],
        aws_session_token=cred.get("session_token"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


class Recorder:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.codes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.errors: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def call(self, c: httpx.Client, route: str, method: str, url: str, **kw: Any) -> httpx.Response:
        t0 = time.perf_counter()
        r = c.request(method, url, **kw)
        dt = time.perf_counter() - t0
        with self._lock:
            self.lat[route].append(dt)
            self.codes[route][r.status_code] += 1
        return r

    def timed(self, route: str, fn: Any) -> None:
        t0 = time.perf_counter()
        try:
            fn()
            ok = True
        except Exception:  # an S3 failure is counted, not raised
            ok = False
        with self._lock:
            self.lat[route].append(time.perf_counter() - t0)
            if not ok:
                self.errors[route] += 1


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] if s else 0.0


def run(clients: int, seconds: float) -> dict[str, Any]:
    rclone = os.environ.get("DSHUB_RCLONE") or shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")
    base = Path(tempfile.mkdtemp(prefix="dshub-load-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    env["DSHUB_RCLONE"] = rclone
    data = base / "hub"
    cli = [sys.executable, "-m", "dshub.cli.main", "hub"]
    log = open(base / "hub.log", "wb")
    hub = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--data-dir", str(data), "--max-sessions-per-user", "0",
         "--max-read-grants-per-user", "0"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for_hub(f"http://127.0.0.1:{port}", hub, base / "hub.log")
        tokens = []
        for i in range(USERS):
            out = subprocess.run([*cli, "create-user", f"load{i}", "--data-dir", str(data)], env=env,
                                 capture_output=True, text=True, check=True)
            tokens.append(out.stdout.strip().splitlines()[-1])
        payload = b"x" * 1024
        md5 = hashlib.md5(payload).hexdigest()
        for i, t in enumerate(tokens):
            with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {t}"}, timeout=60) as c:
                c.post("/datasets", json={"name": "base", "visibility": "public"})
                s = c.post(f"/datasets/load{i}/base/sessions", json={}).json()
                _s3(s).put_object(Bucket=s["location"]["bucket"], Key=s["location"]["prefix"] + "f.bin", Body=payload)
                r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "f.bin", "size": 1024, "md5": md5}]})
                assert r.status_code == 201, r.text
        time.sleep(2)
        before = _stats(hub.pid)
        rec = Recorder()
        stop_at = time.monotonic() + seconds

        def client(n: int) -> None:
            rnd = random.Random(n)
            i = n % USERS
            owner = f"load{i}"
            with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {tokens[i]}"}, timeout=120) as c:
                while time.monotonic() < stop_at:
                    op = rnd.choices(["list", "info", "session", "grant", "download", "upload"],
                                     [3, 3, 2, 2, 2, 1])[0]
                    ds = f"/datasets/load{rnd.randrange(USERS)}/base"
                    if op == "list":
                        rec.call(c, "GET /datasets", "GET", "/datasets")
                    elif op == "info":
                        rec.call(c, "GET /datasets/{o}/{n}", "GET", ds)
                    elif op == "grant" or op == "download":
                        r = rec.call(c, "POST …/credentials", "POST", ds + "/versions/latest/credentials")
                        if op == "download" and r.status_code == 200:
                            g = r.json()
                            rec.timed("S3 GET (1 KiB)", lambda: _s3(g).get_object(
                                Bucket=g["location"]["bucket"], Key=g["location"]["prefix"] + "f.bin")["Body"].read())
                    elif op == "session":
                        r = rec.call(c, "POST …/sessions", "POST", f"/datasets/{owner}/base/sessions",
                                     json={"resume": False, "concurrent": True})
                        if r.status_code == 201:
                            sid = r.json()["id"]
                            rec.call(c, "POST /sessions/{id}/refresh", "POST", f"/sessions/{sid}/refresh")
                            rec.call(c, "DELETE /sessions/{id}", "DELETE", f"/sessions/{sid}")
                    else:
                        r = rec.call(c, "POST …/sessions", "POST", f"/datasets/{owner}/base/sessions",
                                     json={"resume": False, "concurrent": True})
                        if r.status_code == 201:
                            s = r.json()
                            rec.timed("S3 PUT (1 KiB)", lambda: _s3(s).put_object(
                                Bucket=s["location"]["bucket"], Key=s["location"]["prefix"] + "f.bin", Body=payload))
                            rec.call(c, "POST /sessions/{id}/commit", "POST", f"/sessions/{s['id']}/commit",
                                     json={"files": [{"path": "f.bin", "size": 1024, "md5": md5}]})

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        time.sleep(5)  # let revocations finish
        after = _stats(hub.pid)
        routes = {}
        for route, xs in sorted(rec.lat.items()):
            codes = dict(rec.codes.get(route, {}))
            routes[route] = {
                "count": len(xs), "p50_ms": round(_pct(xs, 0.5) * 1000, 1), "p99_ms": round(_pct(xs, 0.99) * 1000, 1),
                "codes": codes, "5xx": sum(v for k, v in codes.items() if k >= 500), "s3_errors": rec.errors.get(route, 0),
            }
        return {"clients": clients, "seconds": round(elapsed, 1), "routes": routes, "before": before, "after": after,
                "total_5xx": sum(r["5xx"] for r in routes.values())}
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not 1 <= a.clients <= 200 or not 1 <= a.seconds <= 600:
        ap.error("--clients 1..200 and --seconds 1..600")
    res = run(a.clients, a.seconds)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    print(f"{res['clients']} clients, {res['seconds']} s, 5xx: {res['total_5xx']}")
    print(f"{'route':34} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}  codes")
    for route, r in res["routes"].items():
        print(f"{route:34} {r['count']:6} {r['p50_ms']:8} {r['p99_ms']:8}  {r['codes'] or ''}"
              f"{' s3 errors: ' + str(r['s3_errors']) if r['s3_errors'] else ''}")
    print("before:", res["before"], "after:", res["after"])
    return 0 if res["total_5xx"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
