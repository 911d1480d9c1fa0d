"""Load on two hub replicas sharing one PostgreSQL database (sts broker, one moto server).

    python -m benchmarks.replicas_load [--seconds 30] [--clients 16] [--out docs/replicas-load.md]

Starts a throwaway PostgreSQL cluster, a moto server and two ``dshub hub serve`` processes
(the test suite's helpers), publishes a 200-file version, then runs ``--clients`` threads
for ``--seconds``, each alternating replicas: reads (info, dataset list, dataset, versions,
file listing, read credentials) and one upload session in ten (open, put one object with
the session's credentials, commit through the other replica). Prints p50/p99 per route
and the count of 5xx answers, as Markdown.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import boto3
import httpx

from tests.conftest import HubFactory, find_rclone_bin, free_port
from tests.pg_server import PgServer, find_pg_bin

ROLE = "arn:aws:iam::123456789012:role/dshub-load"


def _put(session: dict, key: str, body: bytes) -> None:
    loc, cr = session["location"], session["credentials"]
    s3 = boto3.client("s3", endpoint_url=loc["endpoint"], region_name=loc["region"],
                      aws_access_key_id=cr["access_key_id"], aws_secret_access_key=cr["secret_access_key"],
                      aws_session_token=cr["session_token"])
    s3.put_object(Bucket=loc["bucket"], Key=loc["prefix"] + key, Body=body)


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    bindir = find_pg_bin()
    if bindir is None:
        print("PostgreSQL server binaries not found (apt-get install postgresql)", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dshub-load-"))
    pg = PgServer(bindir).start()
    moto_port = free_port()
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto_url = f"http://127.0.0.1:{moto_port}"
    hubs = HubFactory(base, find_rclone_bin())
    try:
        for _ in range(100):
            try:
                httpx.get(moto_url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "DSHUB_HUB_DATABASE_URL": pg.create_database()}
        hub_args = ("--broker", "sts", "--sts-endpoint-url", moto_url, "--s3-endpoint-url", moto_url,
                    "--role-arn", ROLE, "--credential-ttl", "900")
        replicas = [hubs(*hub_args, env=env), hubs(*hub_args, env=env)]
        tok = replicas[0].create_user("load")
        with replicas[0].client(tok) as c:
            c.post("/datasets", json={"name": "data"})
            s = c.post("/datasets/load/data/sessions", json={}).json()
            files = {f"dir{i % 10}/f{i}.bin": bytes([i % 256]) * 100 for i in range(200)}
            for k, v in files.items():
                _put(s, k, v)
            r = c.post(f"/sessions/{s['id']}/commit",
                       json={"files": [{"path": k, "size": len(v)} for k, v in files.items()]})
            assert r.status_code == 201, r.text

        samples: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def timed(c: httpx.Client, method: str, route: str, url: str, **kw: object) -> httpx.Response:
            t = time.perf_counter()
            r = c.request(method, url, **kw)  # type: ignore[arg-type]
            dt = time.perf_counter() - t
            with lock:
                samples[f"{method} {route}"].append(dt)
                if r.status_code >= 500:
                    errors[f"{method} {route}"] += 1
            return r

        def client(n: int) -> None:
            rnd = random.Random(n)
            cs = [h.client(tok) for h in replicas]
            i = 0
            try:
                while time.monotonic() < stop_at:
                    c, other = cs[i % 2], cs[(i + 1) % 2]
                    i += 1
                    if rnd.random() < 0.1:
                        r = timed(c, "POST", "/datasets/{owner}/{name}/sessions", "/datasets/load/data/sessions",
                                  json={"resume": False, "concurrent": True})
                        if r.status_code == 201:
                            ss = r.json()
                            _put(ss, "x.bin", b"x" * 10)
                            timed(other, "POST", "/sessions/{id}/commit", f"/sessions/{ss['id']}/commit",
                                  json={"files": [{"path": "x.bin", "size": 10}]})
                        continue
                    op = rnd.choice(["info", "list", "ds", "versions", "files", "creds"])
                    if op == "info":
                        timed(c, "GET", "/info", "/info")
                    elif op == "list":
                        timed(c, "GET", "/datasets", "/datasets")
                    elif op == "ds":
                        timed(c, "GET", "/datasets/{owner}/{name}", "/datasets/load/data")
                    elif op == "versions":
                        timed(c, "GET", "/datasets/{owner}/{name}/versions", "/datasets/load/data/versions")
                    elif op == "files":
                        timed(c, "GET", "/datasets/{owner}/{name}/versions/{v}/files",
                              "/datasets/load/data/versions/1/files", params={"prefix": "dir3"})
                    else:
                        timed(c, "POST", "/datasets/{owner}/{name}/versions/{v}/credentials",
                              "/datasets/load/data/versions/1/credentials")
            finally:
                for x in cs:
                    x.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        with replicas[1].client(tok) as c:
            nums = sorted(v["version"] for v in c.get("/datasets/load/data/versions", params={"limit": 1000}).json()["items"])
        total = sum(len(v) for v in samples.values())
        lines = [
            f"Two replicas on PostgreSQL (sts broker, moto), {args.clients} clients, {wall:.0f} s, "
            f"{total} requests ({total / wall:.0f}/s), {sum(errors.values())} × 5xx; "
            f"versions 1..{nums[-1] if nums else 0}: {'no gap or duplicate' if nums == list(range(1, len(nums) + 1)) else 'GAP OR DUPLICATE'}.",
            "",
            "| route | requests | p50 ms | p99 ms | 5xx |",
            "|---|---|---|---|---|",
        ]
        for route in sorted(samples):
            xs = samples[route]
            lines.append(f"| `{route}` | {len(xs)} | {statistics.median(xs) * 1000:.1f} | "
                         f"{_quantile(xs, 0.99) * 1000:.1f} | {errors[route]} |")
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            args.out.write_text(text)
        return 0 if not errors else 1
    finally:
        hubs.close()
        moto.terminate()
        moto.wait(10)
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
