"""The hub's logic: datasets, versions, file listings, read grants.

Route functions are thin; they call these functions with a database session, the
caller and the runtime. Functions return wire models (``dshub.models``) and raise
``HubError``. Upload sessions and publishing live in ``dshub.hub.sessions``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
import logging
import re
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic_core import to_json
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dshub.hub.brokers.base import GrantSpec
from dshub.hub.db import DatasetRow, DirRow, FileRow, GrantRow, SessionRow, UserRow, VersionRow, utcnow
from dshub.hub.errors import HubError, invalid, not_found
from dshub.hub.runtime import HubRuntime
from dshub.models import (
    Access,
    Dataset,
    DatasetCreate,
    DatasetList,
    DatasetUpdate,
    FileEntry,
    FileList,
    ReadGrant,
    User,
    Version,
    VersionList,
    VersionSummary,
    Visibility,
)
from dshub.refs import RefError, parse_version, validate_name, validate_relpath, validate_user

log = logging.getLogger("dshub.hub.service")


@dataclass
class DatasetCtx:
    """A dataset row with its owner's name (what most routes need together)."""

    row: DatasetRow
    owner: str


def user_out(u: UserRow) -> User:
    return User(name=u.name, is_admin=u.is_admin, created_at=u.created_at)


def dataset_prefix(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/"


def version_prefix(dataset_id: str, number: int) -> str:
    """Where a committed version's files live: what readers (and raw rclone/aws) see."""
    return f"datasets/{dataset_id}/v{number}/"


def staging_prefix(dataset_id: str, session_id: str) -> str:
    """An upload session's own staging area; no reader's grant ever covers it."""
    return f"datasets/{dataset_id}/staging/{session_id}/"


# --- access rules -----------------------------------------------------------------------


def can_read(user: UserRow | None, ds: DatasetRow) -> bool:
    if ds.visibility == Visibility.public.value:
        return True
    return user is not None and (user.is_admin or user.id == ds.owner_id)


def is_owner(user: UserRow | None, ds: DatasetRow) -> bool:
    return user is not None and (user.is_admin or user.id == ds.owner_id)


def check_names(owner: str, name: str) -> None:
    """422 ``invalid`` for names that cannot exist (also keeps NUL bytes away from the DB)."""
    try:
        validate_user(owner)
        validate_name(name)
    except RefError as e:
        raise invalid(str(e)) from e


def load_dataset(db: Session, user: UserRow | None, owner: str, name: str) -> DatasetCtx:
    """The dataset if ``user`` may read it; 404 otherwise (a private dataset is never a 403)."""
    check_names(owner, name)
    found = db.execute(
        select(DatasetRow, UserRow.name)
        .join(UserRow, UserRow.id == DatasetRow.owner_id)
        .where(UserRow.name == owner, DatasetRow.name == name)
    ).first()
    if found is None or not can_read(user, found[0]):
        raise not_found(f"dataset {owner}/{name}")
    return DatasetCtx(row=found[0], owner=found[1])


def require_owner(user: UserRow | None, ctx: DatasetCtx) -> None:
    """Owner (or admin) only: others get 404 for a private dataset, 403 for a public one."""
    if is_owner(user, ctx.row):
        return
    if can_read(user, ctx.row):
        raise HubError(403, "forbidden", f"only the owner may change {ctx.owner}/{ctx.row.name}")
    raise not_found(f"dataset {ctx.owner}/{ctx.row.name}")


# --- datasets ---------------------------------------------------------------------------


def _latest(db: Session, dataset_id: str) -> VersionRow | None:
    return db.scalar(
        select(VersionRow).where(VersionRow.dataset_id == dataset_id).order_by(VersionRow.number.desc()).limit(1)
    )


def _latest_of(db: Session, dataset_ids: list[str]) -> dict[str, VersionRow]:
    """The newest version of each of ``dataset_ids`` that has one, in one query."""
    if not dataset_ids:
        return {}
    newest = (
        select(VersionRow.dataset_id, func.max(VersionRow.number).label("number"))
        .where(VersionRow.dataset_id.in_(dataset_ids))
        .group_by(VersionRow.dataset_id)
        .subquery()
    )
    rows = db.scalars(
        select(VersionRow).join(
            newest, and_(VersionRow.dataset_id == newest.c.dataset_id, VersionRow.number == newest.c.number)
        )
    )
    return {v.dataset_id: v for v in rows}


def dataset_out(db: Session, ctx: DatasetCtx, latest: VersionRow | None = None, *, known: bool = False) -> Dataset:
    """The wire form of a dataset. ``known``: ``latest`` is already its newest version
    (or None for none); otherwise it is looked up."""
    ds = ctx.row
    if not known:
        latest = _latest(db, ds.id)
    return Dataset(
        id=ds.id,
        owner=ctx.owner,
        name=ds.name,
        description=ds.description or "",
        tags=list(ds.tags or []),
        license=ds.license,
        visibility=Visibility(ds.visibility),
        created_at=ds.created_at,
        updated_at=ds.updated_at,
        latest_version=latest.number if latest else None,
        size=latest.size if latest else 0,
        file_count=latest.file_count if latest else 0,
    )


# C0 controls, DEL and C1 controls (ESC starts terminal escapes, U+009B/U+009D are CSI
# and OSC on their own; NUL cannot be stored by PostgreSQL). Descriptions keep tab and
# newline, which are text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _check_text(field: str, value: str | None, *, multiline: bool = False) -> None:
    """422 when ``value`` holds a control character (tab and newline allowed if ``multiline``)."""
    if value is None:
        return
    m = (_CONTROL_IN_TEXT if multiline else _CONTROL).search(value)
    if m:
        raise invalid(
            f"{field} contains the control character U+{ord(m.group()):04X} at position {m.start()}; "
            f"use printable text{' (tab and newline are fine)' if multiline else ''}"
        )


def _clean_tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        t = t.strip()
        if not t or len(t) > 50 or _CONTROL.search(t):
            shown = _CONTROL.sub("?", t[:60])
            raise invalid(f"invalid tag {shown!r}: 1-50 printable characters")
        if t not in out:
            out.append(t)
    return out


def create_dataset(db: Session, user: UserRow, body: DatasetCreate) -> Dataset:
    """Create ``user/<name>``; 409 ``conflict`` when it exists."""
    check_names(user.name, body.name)
    _check_text("description", body.description, multiline=True)
    _check_text("license", body.license)
    exists = db.scalar(select(DatasetRow.id).where(DatasetRow.owner_id == user.id, DatasetRow.name == body.name))
    if exists:
        raise HubError(409, "conflict", f"dataset {user.name}/{body.name} already exists")
    now = utcnow()
    row = DatasetRow(
        owner_id=user.id,
        name=body.name,
        description=body.description,
        tags=_clean_tags(body.tags),
        license=body.license,
        visibility=body.visibility.value,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    try:
        db.commit()
    except IntegrityError as e:  # a concurrent create won the race
        db.rollback()
        raise HubError(409, "conflict", f"dataset {user.name}/{body.name} already exists") from e
    return dataset_out(db, DatasetCtx(row=row, owner=user.name))


def update_dataset(runtime: HubRuntime, db: Session, ctx: DatasetCtx, body: DatasetUpdate) -> Dataset:
    """Change metadata; turning private revokes the read grants others hold."""
    ds = ctx.row
    was_public = ds.visibility == Visibility.public.value
    _check_text("description", body.description, multiline=True)
    _check_text("license", body.license)
    if body.description is not None:
        ds.description = body.description
    if body.tags is not None:
        ds.tags = _clean_tags(body.tags)
    if body.license is not None:
        ds.license = body.license or None
    if body.visibility is not None:
        ds.visibility = body.visibility.value
    ds.updated_at = utcnow()
    db.commit()
    if was_public and ds.visibility != Visibility.public.value:
        revoke_read_grants(runtime, db, ds, keep_user=ds.owner_id)
    return dataset_out(db, ctx)


_Stmt = TypeVar("_Stmt", bound=Select)  # type: ignore[type-arg]  # any row shape


def readable_only(stmt: _Stmt, user: UserRow | None) -> _Stmt:
    """``stmt`` (over ``DatasetRow``) limited to what ``user`` may read: the SQL form of
    :func:`can_read`, shared by the API's listing and the web pages' search."""
    if user is None:
        return stmt.where(DatasetRow.visibility == Visibility.public.value)
    if not user.is_admin:
        return stmt.where(or_(DatasetRow.owner_id == user.id, DatasetRow.visibility == Visibility.public.value))
    return stmt


def list_datasets(
    db: Session,
    user: UserRow | None,
    *,
    owner: str | None,
    q: str | None,
    tag: str | None,
    page: int,
    page_size: int,
) -> DatasetList:
    """Own and public datasets (admin: all), filtered, newest update first."""
    stmt = readable_only(select(DatasetRow, UserRow.name).join(UserRow, UserRow.id == DatasetRow.owner_id), user)
    if owner:
        try:
            validate_user(owner)
        except RefError as e:
            raise invalid(str(e)) from e
        stmt = stmt.where(UserRow.name == owner)
    if q:
        if "\x00" in q:
            raise invalid("search text contains a NUL byte")
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(func.lower(DatasetRow.name).like(pattern), func.lower(DatasetRow.description).like(pattern))
        )
    ordered = stmt.order_by(DatasetRow.updated_at.desc(), DatasetRow.id)
    start = (page - 1) * page_size
    if tag:
        # Tags are a JSON list; filtering in Python keeps the query portable (small lists).
        rows = [r for r in db.execute(ordered).all() if tag in (r[0].tags or [])]
        total = len(rows)
        rows = rows[start : start + page_size]
    else:
        # The database counts and pages: a hub with 100,000 datasets loads one page, and
        # the page's latest versions come in one query, not one per dataset.
        total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = list(db.execute(ordered.offset(start).limit(page_size)).all())
    latest = _latest_of(db, [r[0].id for r in rows])
    items = [dataset_out(db, DatasetCtx(row=r[0], owner=r[1]), latest.get(r[0].id), known=True) for r in rows]
    return DatasetList(items=items, total=total, page=page, page_size=page_size)


def delete_dataset(runtime: HubRuntime, db: Session, ctx: DatasetCtx) -> None:
    """Abort open sessions, revoke every grant, delete the stored objects, then the rows."""
    ds = ctx.row
    sessions = db.scalars(select(SessionRow).where(SessionRow.dataset_id == ds.id, SessionRow.state == "open")).all()
    for s in sessions:
        s.state = "aborted"
    live = db.scalars(
        select(GrantRow)
        .outerjoin(SessionRow, SessionRow.id == GrantRow.session_id)
        .outerjoin(VersionRow, VersionRow.id == GrantRow.version_id)
        .where(GrantRow.revoked_at.is_(None))
        .where(or_(SessionRow.dataset_id == ds.id, VersionRow.dataset_id == ds.id))
    ).all()
    now = utcnow()
    for g in live:
        g.revoked_at = now
    db.commit()
    for g in live:
        runtime.revoke(g.id)
    if runtime.broker is not None:
        store = runtime.storage()
        store.abort_multipart_uploads(dataset_prefix(ds.id))
        store.delete_prefix(dataset_prefix(ds.id))
    db.delete(ds)
    db.commit()


# --- versions ---------------------------------------------------------------------------


def delete_version(runtime: HubRuntime, db: Session, ctx: DatasetCtx, v: VersionRow) -> None:
    """Delete one committed version: revoke its read grants, delete its objects, then its rows.

    Other versions keep their own objects (a carried file is a hard link or a server-side
    copy, never shared state), so their readers are unaffected. The number is not reused:
    the next session is numbered after the committed sessions too (``sessions.open_session``).
    """
    live = db.scalars(select(GrantRow).where(GrantRow.version_id == v.id, GrantRow.revoked_at.is_(None))).all()
    now = utcnow()
    for g in live:
        g.revoked_at = now
    db.commit()
    for g in live:
        runtime.revoke(g.id)
    if runtime.broker is not None:
        runtime.storage().delete_prefix(v.prefix if v.prefix.endswith("/") else v.prefix + "/")
    db.delete(v)
    ctx.row.updated_at = now
    db.commit()



def resolve_version(db: Session, ctx: DatasetCtx, v: str) -> VersionRow:
    """``3``, ``v3`` or ``latest`` → the committed version row; 404 when there is none."""
    if v == "latest":
        row = _latest(db, ctx.row.id)
        if row is None:
            raise not_found(f"{ctx.owner}/{ctx.row.name} has no committed version; version")
        return row
    try:
        number = parse_version(v)
    except RefError as e:
        raise invalid(str(e)) from e
    row = db.scalar(select(VersionRow).where(VersionRow.dataset_id == ctx.row.id, VersionRow.number == number))
    if row is None:
        raise not_found(f"version {ctx.owner}/{ctx.row.name}@v{number}")
    return row


def version_out(ctx: DatasetCtx, v: VersionRow) -> Version:
    return Version(
        dataset_id=ctx.row.id,
        owner=ctx.owner,
        name=ctx.row.name,
        version=v.number,
        size=v.size,
        file_count=v.file_count,
        created_at=v.created_at,
        uploader=v.uploader,
        prefix=v.prefix,
        new_bytes=v.new_bytes,
    )


def list_versions(db: Session, ctx: DatasetCtx) -> VersionList:
    rows = db.scalars(
        select(VersionRow).where(VersionRow.dataset_id == ctx.row.id).order_by(VersionRow.number.desc())
    ).all()
    return VersionList(
        items=[
            VersionSummary(
                version=r.number, size=r.size, file_count=r.file_count, created_at=r.created_at, uploader=r.uploader,
                new_bytes=r.new_bytes,
            )
            for r in rows
        ]
    )


# --- file listings ----------------------------------------------------------------------


def _encode_cursor(kind: str, after: str) -> str:
    raw = json.dumps([kind, after], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, after = json.loads(raw.decode("utf-8"))
        if kind not in ("d", "f", "r") or not isinstance(after, str) or "\x00" in after:
            raise ValueError("bad cursor")
        return kind, after
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise invalid("invalid cursor: pass the next_cursor of a previous page unchanged") from e


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    try:
        return validate_relpath(prefix)
    except RefError as e:
        raise invalid(str(e)) from e


def _file_entry(f: FileRow) -> FileEntry:
    return FileEntry(path=f.path, size=f.size, md5=f.md5, blake3=f.blake3)


def list_files(
    db: Session, v: VersionRow, *, prefix: str, recursive: bool, limit: int, cursor: str | None
) -> FileList:
    """One directory level (dirs first) or every file below ``prefix``, keyset-paged."""
    prefix = _normalise_prefix(prefix)
    kind, after = _decode_cursor(cursor) if cursor else ("", "")
    if prefix and not cursor:
        is_dir = db.scalar(select(DirRow.id).where(DirRow.version_id == v.id, DirRow.path == prefix))
        if not is_dir:
            f = db.scalar(select(FileRow).where(FileRow.version_id == v.id, FileRow.path == prefix))
            if f is None:
                raise not_found(f"path {prefix!r} in v{v.number}")
            return FileList(items=[_file_entry(f)])

    if recursive:
        if kind not in ("", "r"):
            raise invalid("cursor belongs to a non-recursive listing")
        stmt = select(FileRow).where(FileRow.version_id == v.id)
        if prefix:
            # Every key below "p/" sorts in ["p/", "p0"): '0' is the character after '/'.
            stmt = stmt.where(FileRow.path >= prefix + "/", FileRow.path < prefix + "0")
        if after:
            stmt = stmt.where(FileRow.path > after)
        rows = db.scalars(stmt.order_by(FileRow.path).limit(limit + 1)).all()
        nxt = _encode_cursor("r", rows[limit - 1].path) if len(rows) > limit else None
        return FileList(items=[_file_entry(f) for f in rows[:limit]], next_cursor=nxt)

    if kind == "r":
        raise invalid("cursor belongs to a recursive listing")
    items: list[FileEntry] = []
    if kind in ("", "d"):
        stmt_d = select(DirRow).where(DirRow.version_id == v.id, DirRow.parent_dir == prefix)
        if kind == "d":
            stmt_d = stmt_d.where(DirRow.name > after)
        dirs = db.scalars(stmt_d.order_by(DirRow.name).limit(limit + 1)).all()
        if len(dirs) > limit:
            items = [
                FileEntry(path=d.path, is_dir=True, size=d.size, file_count=d.file_count) for d in dirs[:limit]
            ]
            return FileList(items=items, next_cursor=_encode_cursor("d", dirs[limit - 1].name))
        items = [FileEntry(path=d.path, is_dir=True, size=d.size, file_count=d.file_count) for d in dirs]
        kind, after = "f", ""
    room = limit - len(items)
    stmt_f = select(FileRow).where(FileRow.version_id == v.id, FileRow.parent_dir == prefix)
    if after:
        stmt_f = stmt_f.where(FileRow.name > after)
    files = db.scalars(stmt_f.order_by(FileRow.name).limit(room + 1)).all()
    nxt: str | None = None
    if len(files) > room:
        nxt = _encode_cursor("f", files[room - 1].name if room > 0 else after)
    items.extend(_file_entry(f) for f in files[:room])
    return FileList(items=items, next_cursor=nxt)


def iter_manifest(runtime: HubRuntime, version_id: int, batch: int = 5000) -> Iterator[bytes]:
    """NDJSON lines of a version's manifest, read in keyset batches with short sessions."""
    after: str | None = None
    while True:
        with runtime.sessionmaker() as db:
            stmt = select(FileRow.path, FileRow.size, FileRow.md5, FileRow.blake3).where(
                FileRow.version_id == version_id
            )
            if after is not None:
                stmt = stmt.where(FileRow.path > after)
            rows = db.execute(stmt.order_by(FileRow.path).limit(batch)).all()
        if not rows:
            return
        # The rows were validated at commit: serialise them straight from dicts (same bytes
        # as ManifestEntry.model_dump_json, a test checks) instead of building a model per
        # row — 3-4x less hub CPU per line (~0.15 s per 10,000 lines before).
        yield b"".join(
            to_json({"path": p, "size": s, "md5": m, "blake3": b}) + b"\n" for p, s, m, b in rows
        )
        after = rows[-1][0]


# --- read grants ------------------------------------------------------------------------


def _check_read_grant_quota(runtime: HubRuntime, db: Session, user: UserRow | None, now: datetime) -> None:
    limit = runtime.settings.max_read_grants_per_user
    if limit <= 0 or user is None:  # anonymous callers share one grant per version
        return
    n = db.scalar(
        select(func.count()).select_from(GrantRow).where(
            GrantRow.kind == "read", GrantRow.user_id == user.id, GrantRow.revoked_at.is_(None),
            GrantRow.expires_at > now,
        )
    ) or 0
    if n >= limit:
        raise HubError(
            429, "too_many_grants",
            f"{user.name} has {n} live read grants, the limit is {limit} per user; "
            "each lives for the credential TTL, retry when one expires",
        )


def revoke_read_grants(runtime: HubRuntime, db: Session, ds: DatasetRow, *, keep_user: int | None = None) -> int:
    """Revoke the live read grants of every version of ``ds`` (but those of ``keep_user``)."""
    stmt = (
        select(GrantRow)
        .join(VersionRow, VersionRow.id == GrantRow.version_id)
        .where(VersionRow.dataset_id == ds.id, GrantRow.kind == "read", GrantRow.revoked_at.is_(None))
    )
    if keep_user is not None:
        stmt = stmt.where(or_(GrantRow.user_id.is_(None), GrantRow.user_id != keep_user))
    rows = db.scalars(stmt).all()
    now = utcnow()
    for g in rows:
        g.revoked_at = now
    db.commit()
    for g in rows:
        try:
            runtime.revoke(g.id)
        except Exception as e:  # the row is revoked; the sweeper retries the endpoint
            log.warning("broker could not revoke read grant %s: %s", g.id, type(e).__name__)
    return len(rows)


def read_grant(
    runtime: HubRuntime, db: Session, ctx: DatasetCtx, v: VersionRow, user: UserRow | None = None,
    token_id: int | None = None,
) -> ReadGrant:
    """Read-only credentials for one committed version's prefix.

    A live read grant of the same version with at least half its lifetime left is handed
    out again (same keys, same expiry) instead of minting a new one: every ``download``,
    ``cat`` and ``open`` asks for one, and on the local broker each grant is its own S3
    endpoint (a listening port, ~0.25 s of rc calls to start). A grant is handed out
    again only to the same token (anonymous callers share theirs), so revoking a token
    or making the dataset private revokes exactly the grants it gave.
    """
    ttl = runtime.settings.effective_credential_ttl
    now = utcnow()
    row = db.execute(
        select(GrantRow)
        .where(
            GrantRow.kind == "read",
            GrantRow.version_id == v.id,
            GrantRow.revoked_at.is_(None),
            GrantRow.expires_at > now + timedelta(seconds=ttl / 2),
            GrantRow.token_id.is_(None) if token_id is None else GrantRow.token_id == token_id,
        )
        .order_by(GrantRow.expires_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        _check_read_grant_quota(runtime, db, user, now)
        row = GrantRow(
            kind="read",
            version_id=v.id,
            prefix=v.prefix,
            access=Access.read.value,
            expires_at=now + timedelta(seconds=ttl),
            user_id=user.id if user is not None else None,
            token_id=token_id,
        )
        db.add(row)
        db.commit()
    spec = GrantSpec(grant_id=row.id, prefix=row.prefix, access=Access.read, expires_at=row.expires_at)
    location, creds = runtime.grant(spec)
    return ReadGrant(owner=ctx.owner, name=ctx.row.name, version=v.number, location=location, credentials=creds)
