"""Helpers for the library tests: publish versions through the hub API, without the transfer engine.

``publish`` opens an upload session, puts the objects either with boto3 against the
session's own S3 endpoint (the real path) or straight onto the local broker's disk
(``<data_dir>/objects/<bucket>/<prefix><path>``, for tens of thousands of files), then
commits the manifest. :class:`CountingTransport` counts the HTTP requests a HubClient makes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import parse_qs

import blake3
import httpx

from dshub.api.client import HubClient
from dshub.errors import ConflictError
from dshub.models import DatasetCreate, ManifestEntry, SessionOpen, Version, Visibility


def make_csvs(root: Path, years: Iterable[int] = (2022, 2023), months: int = 3, rows: int = 400) -> list[str]:
    """Small taxi-like CSVs ``<year>/<mm>.csv`` (pickup time, distance, fare); return rel paths."""
    import random

    rng = random.Random(7)
    rels = []
    for y in years:
        for m in range(1, months + 1):
            rel = f"{y}/{m:02d}.csv"
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            lines = ["tpep_pickup_datetime,trip_distance,fare_amount"]
            for i in range(rows):
                day = 1 + i % 28
                lines.append(
                    f"{y}-{m:02d}-{day:02d} {i % 24:02d}:{i % 60:02d}:00,"
                    f"{rng.uniform(0.3, 20):.2f},{rng.uniform(3, 80) + m:.2f}"
                )
            p.write_text("\n".join(lines) + "\n")
            rels.append(rel)
    return rels


def publish(
    hub_url: str,
    token: str,
    owner: str,
    name: str,
    files: Mapping[str, bytes] | None = None,
    *,
    data_dir: Path | None = None,
    disk_writer: Callable[[Path], list[ManifestEntry]] | None = None,
    visibility: Visibility = Visibility.private,
    with_blake3: bool = True,
) -> Version:
    """Publish the next version of ``owner/name`` with ``files`` (via S3) or ``disk_writer`` (on disk).

    ``disk_writer(version_dir)`` writes files under the session prefix on the hub's disk
    and returns their manifest entries.
    """
    with HubClient(hub_url, token) as hub:
        try:
            hub.create_dataset(DatasetCreate(name=name, visibility=visibility))
        except ConflictError:
            pass
        s = hub.open_session(owner, name, SessionOpen(resume=True))
        assert s.credentials is not None
        entries: list[ManifestEntry] = []
        if files:
            import boto3
            from botocore.config import Config

            s3 = boto3.client(
                "s3",
                endpoint_url=s.location.endpoint,
                region_name=s.location.region,
                aws_access_key_id=s.credentials.access_key_id,
                aws_secret_access_key=s.credentials.secret_access_key,
                aws_session_token=s.credentials.session_token,
                config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
            )
            for rel, data in files.items():
                s3.put_object(Bucket=s.location.bucket, Key=s.location.prefix + rel, Body=data)
                entries.append(
                    ManifestEntry(
                        path=rel,
                        size=len(data),
                        md5=hashlib.md5(data).hexdigest(),
                        blake3=blake3.blake3(data).hexdigest() if with_blake3 else None,
                    )
                )
        if disk_writer is not None:
            assert data_dir is not None
            vdir = data_dir / "objects" / s.location.bucket / s.location.prefix
            vdir.mkdir(parents=True, exist_ok=True)
            entries.extend(disk_writer(vdir))
        return hub.commit_session(s.id, entries)


class CountingTransport(httpx.BaseTransport):
    """An httpx transport that forwards to the network and records each request."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(
                (request.method, request.url.path, parse_qs(request.url.query.decode()))
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    @property
    def count(self) -> int:
        return len(self.requests)

    def file_requests(self) -> list[dict[str, list[str]]]:
        """Query parameters of each ``…/files`` listing request."""
        return [q for m, p, q in self.requests if p.endswith("/files")]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
