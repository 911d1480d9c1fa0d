"""Helpers for the web page tests: seed a hub with datasets and drive its pages over HTTP.

Data goes in through the hub API and the session's own S3 endpoint (``library_util.publish``),
the way a client uploads; the 20,000-file version is written onto the local broker's disk
and verified by the hub at commit, like ``test_hub_listing``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import httpx

from dshub.models import ManifestEntry, Visibility
from tests.conftest import HubProcess
from tests.integration.library_util import publish

XSS_DESCRIPTION = 'Trips <script>window.__xss = 1; alert("desc")</script> & fares'
XSS_FILE = "<img src=x onerror=alert(1)>.csv"
TAXI_CSV = "tpep_pickup_datetime,trip_distance,fare_amount\n" + "".join(
    f"2022-01-{1 + i % 28:02d} 10:{i % 60:02d}:00,{1 + i % 9}.5,{10 + i}.25\n" for i in range(120)
)
BIG_DIRS = 10
BIG_PER_DIR = 1998
BIG_ROOT = 20


def parquet_bytes(rows: int = 500) -> bytes:
    """A small Parquet file: zone id, borough name, trips."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "zone_id": list(range(rows)),
        "borough": [("Manhattan", "Queens", "Brooklyn", "Bronx")[i % 4] for i in range(rows)],
        "trips": [i * 3 + 1 for i in range(rows)],
    })
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=200)
    return buf.getvalue()


@dataclass
class Seeded:
    alice: str  # tokens
    bob: str
    hub: HubProcess


def seed(h: HubProcess, *, big: bool = False) -> Seeded:
    """alice/taxi (public, CSV + Parquet two folders down, an XSS-named file),
    alice/secret (private), bob/weather (public, tagged); ``big``: alice/big, 20,000 files."""
    alice = h.create_user("alice")
    bob = h.create_user("bob")
    publish(h.url, alice, "alice", "taxi", {
        "2022/01/trips.csv": TAXI_CSV.encode(),
        "2022/02/trips.csv": TAXI_CSV.encode(),
        "zones/lookup/zones.parquet": parquet_bytes(),
        "README.md": b"# NYC taxi trips\n\nJanuary and February 2022.\n",
        XSS_FILE: b"a,b\n<b>bold</b>,<script>alert(2)</script>\n",
    }, visibility=Visibility.public)
    with h.client(alice) as c:
        r = c.patch("/datasets/alice/taxi", json={"description": XSS_DESCRIPTION, "tags": ["nyc", "transport"],
                                                   "license": "CC-BY-4.0"})
        assert r.status_code == 200, r.text
    publish(h.url, alice, "alice", "secret", {"salaries.csv": b"name,pay\nx,1\n"})
    publish(h.url, bob, "bob", "weather", {"2023/temps.csv": b"day,temp\n1,3.5\n2,4.0\n"},
            visibility=Visibility.public)
    with h.client(bob) as c:
        assert c.patch("/datasets/bob/weather", json={"description": "Daily temperatures in Oslo",
                                                      "tags": ["climate", "open data"]}).status_code == 200
    if big:
        publish_big(h, alice)
    return Seeded(alice=alice, bob=bob, hub=h)


def publish_big(h: HubProcess, token: str, name: str = "big") -> None:
    """``alice/<name>``: 20,000 files, 10 folders of 1,998 and 20 at the root (written on disk)."""

    def write(vdir: Path) -> list[ManifestEntry]:
        entries = []
        for d in range(BIG_DIRS):
            (vdir / f"d{d}").mkdir(parents=True, exist_ok=True)
            for i in range(BIG_PER_DIR):
                rel = f"d{d}/f{i:05d}.txt"
                (vdir / rel).write_bytes(b"x" * (i % 7))
                entries.append(ManifestEntry(path=rel, size=i % 7))
        for i in range(BIG_ROOT):
            (vdir / f"r{i:02d}.txt").write_bytes(b"r")
            entries.append(ManifestEntry(path=f"r{i:02d}.txt", size=1))
        return entries

    publish(h.url, token, "alice", name, data_dir=h.data_dir, disk_writer=write, visibility=Visibility.public)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "page has no CSRF field"
    return m.group(1)


def browser(h: HubProcess) -> httpx.Client:
    """An HTTP client that keeps cookies like a browser (no redirects followed)."""
    return httpx.Client(base_url=h.url, timeout=60, follow_redirects=False)


def sign_in(c: httpx.Client, token: str) -> httpx.Response:
    page = c.get("/signin")
    assert page.status_code == 200
    r = c.post("/signin", data={"token": token, "next": "/", "csrf_token": csrf_of(page.text)})
    return r
