"""Carrying: a new version costs only what changed.

Before an upload sends anything, the uploader gives the hub the manifest it is about to
commit; the hub answers which entries it can fill itself from the same dataset's
committed versions — the same content under any path, so renames and moves are free —
and remembers that for the session. At commit those paths are filled server-side (hard
links on the hub's disk, ``CopyObject`` on S3) instead of from staging.

Only content the hub itself checked at commit may be carried (``files.verified``): on the
hub's disk that is the BLAKE3 it computed, on S3 the MD5 of its server-side copy, so a
match is on that digest and the size. The search never leaves the dataset, which the
uploader can already read: claiming a hash it does not have gains it nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from dshub.hub.db import CarryRow, FileRow, SessionRow, VersionRow
from dshub.hub.publish import Carry
from dshub.hub.service import DatasetCtx
from dshub.models import CarriedFile, CarryPlan

_IN_BATCH = 500


class Entry(Protocol):
    """A manifest entry: a ``ManifestEntry`` from JSON or a tuple parsed from NDJSON."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def md5(self) -> str | None: ...
    @property
    def blake3(self) -> str | None: ...


def _key(e: Entry, by_blake3: bool) -> str | None:
    digest = e.blake3 if by_blake3 else e.md5
    return f"{e.size}:{digest.lower()}" if digest else None


def plan(db: Session, s: SessionRow, ctx: DatasetCtx, files: Sequence[Entry], *, by_blake3: bool) -> CarryPlan:
    """Match ``files`` against the dataset's verified files; record and return the carries
    (replacing any earlier plan of the session: a resumed upload plans again, once)."""
    wanted: dict[str, list[Entry]] = {}
    for e in files:
        k = _key(e, by_blake3)
        if k is not None:
            wanted.setdefault(k, []).append(e)
    digest_col = FileRow.blake3 if by_blake3 else FileRow.md5
    digests = sorted({k.split(":", 1)[1] for k in wanted})
    found: dict[str, tuple[FileRow, VersionRow]] = {}
    for i in range(0, len(digests), _IN_BATCH):
        rows = db.execute(
            select(FileRow, VersionRow)
            .join(VersionRow, VersionRow.id == FileRow.version_id)
            .where(VersionRow.dataset_id == ctx.row.id, FileRow.verified.is_(True), digest_col.in_(digests[i : i + _IN_BATCH]))
            .order_by(VersionRow.number.desc())
        ).all()
        for f, v in rows:
            digest = f.blake3 if by_blake3 else f.md5
            found.setdefault(f"{f.size}:{digest}", (f, v))  # the newest version's copy
    db.execute(delete(CarryRow).where(CarryRow.session_id == s.id))
    carried: list[CarriedFile] = []
    rows_out: list[dict[str, object]] = []
    for k, entries in wanted.items():
        hit = found.get(k)
        if hit is None:
            continue
        f, v = hit
        for e in entries:
            carried.append(CarriedFile(path=e.path, size=e.size, from_version=v.number))
            rows_out.append({"session_id": s.id, "path": e.path, "source_version_id": v.id, "source_path": f.path,
                             "size": f.size, "md5": f.md5, "blake3": f.blake3})
    for i in range(0, len(rows_out), 5000):
        db.execute(insert(CarryRow.__table__), rows_out[i : i + 5000])
    db.commit()
    carried.sort(key=lambda c: c.path)
    return CarryPlan(carried=carried, carried_files=len(carried), carried_bytes=sum(c.size for c in carried))


def carries_for_commit(db: Session, s: SessionRow, files: Sequence[Entry]) -> Mapping[str, Carry]:
    """The session's planned carries that still hold: the committed entry has the same
    size and digests as the source file, and the source version still exists."""
    entries = {e.path: e for e in files}
    out: dict[str, Carry] = {}
    rows = db.execute(
        select(CarryRow, VersionRow.prefix).join(VersionRow, VersionRow.id == CarryRow.source_version_id)
        .where(CarryRow.session_id == s.id)
    ).all()
    for c, prefix in rows:
        e = entries.get(c.path)
        if e is None or e.size != c.size:
            continue
        if (e.blake3 and c.blake3 and e.blake3.lower() != c.blake3) or (e.md5 and c.md5 and e.md5.lower() != c.md5):
            continue
        out[c.path] = Carry(source=prefix + c.source_path, md5=c.md5, blake3=c.blake3)
    return out
