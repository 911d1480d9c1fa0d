"""What the local broker's gate costs: data up and down, through the gate and around it.

One :class:`~dshub.hub.brokers.local.LocalBroker` (its real ``rclone rcd``) in this process;
one write grant. rclone (the client) copies 8 × 128 MiB to the grant's endpoint and back,
once to the gate's port (what users get) and once straight to rclone's loopback port
behind it (what the gate adds is the difference). The gate runs in this process, so its
CPU is this process's CPU during the copy; the server's is rcd's (from /proc), the client's
that of the rclone child.

    python -m benchmarks.gate_cost [--repeats 3] [--workdir /dev/shm] [--files 8 --size 134217728]

Default 8 x 128 MiB (1 GiB); ``--files 2000 --size 20480`` shows the per-request cost.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dshub.hub.brokers.base import GrantSpec
from dshub.hub.brokers.local import LocalBroker
from dshub.models import Access

MiB = 2**20
FILES, FILE_SIZE = 8, 128 * MiB


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rclone(rclone: str, args: list[str], endpoint: str, key: str, secret: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(RCLONE_CONFIG=os.devnull, RCLONE_CONFIG_B_TYPE="s3", RCLONE_CONFIG_B_PROVIDER="Other",
               RCLONE_CONFIG_B_ACCESS_KEY_ID=key, RCLONE_CONFIG_B_SECRET_ACCESS_KEY=secret,
               RCLONE_CONFIG_B_ENDPOINT=endpoint, RCLONE_CONFIG_B_REGION="us-east-1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([rclone, *args, "--s3-no-check-bucket", "--s3-no-head", "--s3-disable-checksum",
                    "--transfers", "4"], env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default="/dev/shm")
    ap.add_argument("--files", type=int, default=FILES, help="number of files (default 8)")
    ap.add_argument("--size", type=int, default=FILE_SIZE, help="bytes per file (default 128 MiB)")
    args = ap.parse_args()
    files, size = args.files, args.size
    rclone = shutil.which("rclone") or str(Path(os.sys.executable).parent / "rclone")
    work = Path(tempfile.mkdtemp(prefix="dshub-gate-bench-", dir=args.workdir))
    try:
        src = work / "src"
        src.mkdir()
        for i in range(files):
            (src / f"f{i}.bin").write_bytes(os.urandom(size))
        broker = LocalBroker(objects_dir=work / "objects", state_dir=work / "state", rclone=rclone,
                             secret=os.urandom(32))
        broker.start()
        try:
            rows: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
            for rep in range(args.repeats):
                for route in ("gate", "direct"):
                    # A fresh grant (prefix and endpoint) per round: an endpoint's directory
                    # cache would otherwise remember the objects of the round before.
                    gid = f"bench-{rep}-{route}"
                    spec = GrantSpec(gid, f"datasets/bench/{gid}/", Access.write,
                                     datetime.now(timezone.utc) + timedelta(hours=1))
                    loc, creds = broker.grant(spec)
                    inner = broker._live[gid].inner_port  # noqa: SLF001 - the port behind the gate
                    endpoint = loc.endpoint if route == "gate" else f"http://127.0.0.1:{inner}"
                    for direction in ("up", "down"):
                        dst = work / "down"
                        shutil.rmtree(dst, ignore_errors=True)
                        remote = f"b:{loc.bucket}/{loc.prefix}"
                        cmd = ["copy", str(src), remote] if direction == "up" else ["copy", remote, str(dst)]
                        rcd0, gate0, t0 = _proc_cpu(broker.rcd_pid() or 0), _self_cpu(), time.monotonic()
                        client = _rclone(rclone, cmd, endpoint, creds.access_key_id, creds.secret_access_key)
                        wall = time.monotonic() - t0
                        gate = _self_cpu() - gate0
                        server = _proc_cpu(broker.rcd_pid() or 0) - rcd0
                        rows.setdefault((route, direction), []).append((wall, gate, server, client))
                        if direction == "down":
                            got = sum(f.stat().st_size for f in dst.iterdir())
                            assert got == files * size, f"downloaded {got} bytes"
                    broker.revoke(gid)
                    shutil.rmtree(work / "objects" / loc.bucket / "datasets" / "bench" / gid)
        finally:
            broker.stop()
        gib = files * size / 2**30
        print(f"{files} files x {size} bytes")
        print(f"| route | direction | wall s (median of {args.repeats}) | gate CPU-s/GiB | "
              "rclone server CPU-s/GiB | rclone client CPU-s/GiB |")
        print("|---|---|---|---|---|---|")
        for (route, direction), vals in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            med = [statistics.median(v[i] for v in vals) for i in range(4)]
            print(f"| {route} | {direction} | {med[0]:.2f} | {med[1] / gib:.2f} | {med[2] / gib:.2f} | "
                  f"{med[3] / gib:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
