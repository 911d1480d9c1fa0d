"""Upload sessions: open or resume, refresh credentials, commit (verify + publish), abort,
and the sweeper's expiry work.

A session reserves version ``N`` and owns the prefix ``datasets/<uuid>/v<N>/``; its
grant (same id as the session) is what the broker turns into write credentials.
Publishing is one database transaction (version, files, dirs, session state), so
readers see a version whole or not at all.
"""

from __future__ import annotations

import logging
import re
import posixpath
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dshub.hub.brokers.base import GrantSpec
from dshub.hub.db import DatasetRow, DirRow, FileRow, GrantRow, SessionRow, UserRow, VersionRow, utcnow
from dshub.hub.errors import HubError, not_found
from dshub.hub.runtime import HubRuntime
from dshub.hub.service import DatasetCtx, is_owner, version_out, version_prefix
from dshub.models import (
    Access,
    CommitRequest,
    Credentials,
    ErrorDetail,
    Location,
    SessionList,
    SessionOpen,
    SessionState,
    UploadSession,
    Version,
)
from dshub.refs import RefError, validate_relpath

log = logging.getLogger("dshub.hub.sessions")

MAX_DETAILS = 1000
# S3's largest object (5 TiB); also keeps sizes far inside the database's 64-bit integers.
MAX_OBJECT_SIZE = 5 * 1024**4
_INSERT_BATCH = 5000


def session_out(
    s: SessionRow, ctx: DatasetCtx, *, credentials: Credentials | None = None, resumed: bool = False
) -> UploadSession:
    loc = Location.model_validate(s.location) if s.location else Location(bucket="", prefix=s.prefix)
    return UploadSession(
        id=s.id,
        dataset_id=ctx.row.id,
        owner=ctx.owner,
        name=ctx.row.name,
        version=s.version,
        state=SessionState(s.state),
        created_at=s.created_at,
        expires_at=s.expires_at,
        location=loc,
        credentials=credentials,
        resumed=resumed,
    )


def _is_live(s: SessionRow, now: datetime) -> bool:
    return s.state == SessionState.open.value and s.expires_at > now


def _check_open(s: SessionRow) -> None:
    """409 when committed/aborted, 410 when expired (even if the sweeper has not run yet)."""
    if s.state in (SessionState.committed.value, SessionState.aborted.value):
        raise HubError(409, "session_closed", f"upload session {s.id} is {s.state}; open a new one")
    if s.state == SessionState.expired.value or s.expires_at <= utcnow():
        raise HubError(410, "session_expired", f"upload session {s.id} expired; open a new one to upload again")


def _mint(runtime: HubRuntime, db: Session, s: SessionRow) -> Credentials:
    """Fresh write credentials for session ``s`` (new grant, or refresh of the live one)."""
    now = utcnow()
    ttl = runtime.settings.effective_credential_ttl
    expires = min(now + timedelta(seconds=ttl), s.expires_at)
    g = db.get(GrantRow, s.id)
    first = g is None or g.revoked_at is not None
    if g is None:
        g = GrantRow(id=s.id, kind="session", session_id=s.id, prefix=s.prefix, access=Access.write.value,
                     expires_at=expires)
        db.add(g)
    g.expires_at = expires
    g.revoked_at = None
    db.commit()
    spec = GrantSpec(grant_id=s.id, prefix=s.prefix, access=Access.write, expires_at=expires)
    location, creds = runtime.grant(spec, refresh=not first)
    s.location = location.model_dump(mode="json")
    db.commit()
    return creds


def list_sessions(db: Session, ctx: DatasetCtx) -> SessionList:
    now = utcnow()
    rows = db.scalars(
        select(SessionRow)
        .where(SessionRow.dataset_id == ctx.row.id, SessionRow.state == SessionState.open.value)
        .order_by(SessionRow.version)
    ).all()
    return SessionList(items=[session_out(s, ctx) for s in rows if _is_live(s, now)])


def open_session(
    runtime: HubRuntime, db: Session, user: UserRow, ctx: DatasetCtx, body: SessionOpen
) -> tuple[UploadSession, bool]:
    """Open a session (True = created) or resume the open one (False)."""
    with runtime.reserve_lock:
        now = utcnow()
        # Lock the dataset row where the database can (PostgreSQL), so replicas do not
        # reserve the same version; SQLite ignores FOR UPDATE and relies on reserve_lock.
        db.execute(select(DatasetRow.id).where(DatasetRow.id == ctx.row.id).with_for_update())
        open_rows = [
            s
            for s in db.scalars(
                select(SessionRow)
                .where(SessionRow.dataset_id == ctx.row.id, SessionRow.state == SessionState.open.value)
                .order_by(SessionRow.version)
            ).all()
            if _is_live(s, now)
        ]
        if open_rows and body.resume:
            s = open_rows[0]
            creds = _mint(runtime, db, s)
            return session_out(s, ctx, credentials=creds, resumed=True), False
        if open_rows and not body.concurrent:
            raise HubError(
                409,
                "session_open",
                f"{ctx.owner}/{ctx.row.name} already has an open upload session ({open_rows[0].id}); "
                "resume it, abort it, or open a concurrent one",
            )
        max_committed = db.scalar(select(func.max(VersionRow.number)).where(VersionRow.dataset_id == ctx.row.id))
        reserved = max([s.version for s in open_rows], default=0)
        number = 1 + max(max_committed or 0, reserved)
        s = SessionRow(
            dataset_id=ctx.row.id,
            version=number,
            state=SessionState.open.value,
            created_at=now,
            expires_at=now + timedelta(seconds=runtime.settings.session_ttl),
            uploader=user.name,
            prefix=version_prefix(ctx.row.id, number),
        )
        db.add(s)
        db.commit()
    try:
        creds = _mint(runtime, db, s)
    except HubError:
        # No credentials → no usable session; do not leave a reservation behind.
        s.state = SessionState.aborted.value
        db.commit()
        raise
    return session_out(s, ctx, credentials=creds), True


def load_session(db: Session, user: UserRow, session_id: str) -> tuple[SessionRow, DatasetCtx]:
    """The session if ``user`` owns its dataset (or is admin); 404 otherwise."""
    if len(session_id) > 64 or "\x00" in session_id:
        raise not_found("upload session")
    found = db.execute(
        select(SessionRow, DatasetRow, UserRow.name)
        .join(DatasetRow, DatasetRow.id == SessionRow.dataset_id)
        .join(UserRow, UserRow.id == DatasetRow.owner_id)
        .where(SessionRow.id == session_id)
    ).first()
    if found is None or not is_owner(user, found[1]):
        raise not_found(f"upload session {session_id}")
    return found[0], DatasetCtx(row=found[1], owner=found[2])


def refresh_session(runtime: HubRuntime, db: Session, s: SessionRow, ctx: DatasetCtx) -> UploadSession:
    _check_open(s)
    creds = _mint(runtime, db, s)
    return session_out(s, ctx, credentials=creds)


def _revoke_session_grant(runtime: HubRuntime, db: Session, s: SessionRow) -> None:
    # Conditional, so a replica's sweeper revoking the same lapsed grant does not count twice;
    # the broker call below is idempotent and made anyway (a failed one earlier is retried).
    db.execute(
        update(GrantRow).where(GrantRow.id == s.id, GrantRow.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    db.commit()
    try:
        runtime.revoke(s.id)
    except Exception as e:  # logged; the grant row is revoked and restore() will skip it
        log.warning("broker could not revoke session %s: %s", s.id, type(e).__name__)


def _clean_prefix(runtime: HubRuntime, prefix: str) -> None:
    store = runtime.storage()
    store.abort_multipart_uploads(prefix)
    store.delete_prefix(prefix)


def abort_session(runtime: HubRuntime, db: Session, s: SessionRow) -> None:
    """Revoke credentials, delete the session's objects; idempotent for aborted/expired."""
    if s.state == SessionState.committed.value:
        raise HubError(409, "session_closed", f"upload session {s.id} is committed; delete the version instead")
    s.state = SessionState.aborted.value
    db.commit()
    _revoke_session_grant(runtime, db, s)
    if runtime.broker is not None:
        _clean_prefix(runtime, s.prefix)


# A compiled pattern, not a per-character loop: it runs twice for each of a commit's
# (tens of) thousands of entries (measured: 8 vs 42 ms per 5,000 entries).
_HEX = re.compile(r"[0-9a-fA-F]*")


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.fullmatch(value) is not None


def _validate_manifest(body: CommitRequest) -> None:
    if not body.files:
        raise HubError(422, "empty_manifest", "the manifest lists no files; upload at least one file")
    problems: list[ErrorDetail] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for e in body.files:
        try:
            validate_relpath(e.path)
        except RefError as err:
            problems.append(ErrorDetail(path=e.path.replace("\x00", "\\0")[:200], problem=str(err)))
            continue
        if e.size > MAX_OBJECT_SIZE:
            problems.append(ErrorDetail(path=e.path, problem="size is larger than any object can be", actual=str(e.size)[:30]))
        if e.path in seen:
            problems.append(ErrorDetail(path=e.path, problem="listed twice in the manifest"))
        seen.add(e.path)
        if e.md5 is not None and not _is_hex(e.md5, 32):
            problems.append(ErrorDetail(path=e.path, problem="md5 is not 32 hex digits"))
        if e.blake3 is not None and not _is_hex(e.blake3, 64):
            problems.append(ErrorDetail(path=e.path, problem="blake3 is not 64 hex digits"))
        parent = posixpath.dirname(e.path)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    for p in sorted(seen & dirs):
        problems.append(ErrorDetail(path=p, problem="is both a file and a directory"))
    if problems:
        raise HubError(
            422, "invalid", f"the manifest has {len(problems)} invalid entr{'y' if len(problems) == 1 else 'ies'}",
            problems[:MAX_DETAILS],
        )


def commit_session(
    runtime: HubRuntime, db: Session, s: SessionRow, ctx: DatasetCtx, body: CommitRequest
) -> Version:
    """Verify storage against the manifest and publish the version in one transaction.

    Idempotent: committing a committed session again (a retry after a lost response, or
    through another replica) returns the version it published, if the manifest is the same."""
    if s.state == SessionState.committed.value:
        return _committed_version(db, s, ctx, body)
    _check_open(s)
    _validate_manifest(body)
    store = runtime.storage()
    md5s: dict[str, str | None] = {}
    if store.sizes_match_on_disk(s.prefix, {e.path: e.size for e in body.files}):
        # Local broker, everything in place: the MD5s recorded are the uploader's (see
        # Storage.sizes_match_on_disk for why the hub does not re-read the bytes).
        return _finish_commit(runtime, db, s, ctx, body, md5s)
    stored = {}
    for obj in store.list_objects(s.prefix):
        rel = obj.key[len(s.prefix) :]
        stored[rel] = obj.size
        md5s[rel] = obj.md5
    problems: list[ErrorDetail] = []
    for e in body.files:
        if e.path not in stored:
            problems.append(ErrorDetail(path=e.path, problem="missing in storage"))
            continue
        if stored[e.path] != e.size:
            problems.append(ErrorDetail(path=e.path, problem="size differs", expected=e.size, actual=stored[e.path]))
            continue
        actual_md5 = md5s[e.path]
        if e.md5 and actual_md5 and e.md5.lower() != actual_md5:
            problems.append(ErrorDetail(path=e.path, problem="md5 differs", expected=e.md5.lower(), actual=actual_md5))
    listed = {e.path for e in body.files}
    for rel in sorted(set(stored) - listed):
        problems.append(ErrorDetail(path=rel, problem="in storage but not in the manifest", actual=stored[rel]))
    if problems:
        shown = problems[:MAX_DETAILS]
        if len(problems) > MAX_DETAILS:
            shown.append(ErrorDetail(problem=f"and {len(problems) - MAX_DETAILS} more differences"))
        raise HubError(
            422,
            "manifest_mismatch",
            f"storage does not match the manifest ({len(problems)} difference"
            f"{'' if len(problems) == 1 else 's'}); upload the missing files and commit again",
            shown,
        )
    return _finish_commit(runtime, db, s, ctx, body, md5s)


def _finish_commit(
    runtime: HubRuntime, db: Session, s: SessionRow, ctx: DatasetCtx, body: CommitRequest,
    md5s: dict[str, str | None],
) -> Version:
    try:
        version = _publish(db, s, ctx, body, md5s)
    except _ClaimLost:
        # Another request (here or on another replica) closed the session meanwhile.
        db.refresh(s)
        if s.state == SessionState.committed.value:
            return _committed_version(db, s, ctx, body)
        raise HubError(409, "session_closed", f"upload session {s.id} is {s.state}; open a new one") from None
    _revoke_session_grant(runtime, db, s)
    try:
        runtime.storage().abort_multipart_uploads(s.prefix)
    except Exception as e:  # the version is published; leftovers are only wasted space
        log.warning("could not abort multipart uploads of %s: %s", s.id, type(e).__name__)
    return version_out(ctx, version)


class _ClaimLost(Exception):
    """The session was no longer open when this commit tried to claim it."""


def _committed_version(db: Session, s: SessionRow, ctx: DatasetCtx, body: CommitRequest) -> Version:
    """The version a committed session published, when ``body`` lists the same files."""
    v = db.scalar(select(VersionRow).where(VersionRow.dataset_id == s.dataset_id, VersionRow.number == s.version))
    if v is None:
        raise HubError(409, "session_closed", f"upload session {s.id} is committed but v{s.version} was deleted")
    stored = db.execute(select(FileRow.path, FileRow.size).where(FileRow.version_id == v.id)).all()
    if {(p, n) for p, n in stored} != {(e.path, e.size) for e in body.files}:
        raise HubError(
            409, "session_closed",
            f"upload session {s.id} is already committed as v{s.version} with another manifest; open a new one",
        )
    return version_out(ctx, v)


def _publish(
    db: Session, s: SessionRow, ctx: DatasetCtx, body: CommitRequest, md5s: dict[str, str | None]
) -> VersionRow:
    now = utcnow()
    # Claim the session first: a concurrent commit of the same session updates 0 rows.
    claimed = db.execute(
        update(SessionRow)
        .where(SessionRow.id == s.id, SessionRow.state == SessionState.open.value)
        .values(state=SessionState.committed.value)
    ).rowcount
    if claimed != 1:
        db.rollback()
        raise _ClaimLost
    total = sum(e.size for e in body.files)
    v = VersionRow(
        dataset_id=ctx.row.id,
        number=s.version,
        size=total,
        file_count=len(body.files),
        created_at=now,
        uploader=s.uploader,
        prefix=s.prefix,
    )
    db.add(v)
    db.flush()
    dir_stats: dict[str, list[int]] = {}
    files: list[dict[str, object]] = []
    vid = v.id  # an ORM attribute read costs more than the dict it fills
    for e in sorted(body.files, key=lambda e: e.path):
        parent, name = posixpath.split(e.path)
        files.append(
            {"version_id": vid, "path": e.path, "parent_dir": parent, "name": name, "size": e.size,
             "md5": md5s.get(e.path) or (e.md5.lower() if e.md5 else None),
             # The uploader's: no store knows BLAKE3. A wrong one only makes downloads
             # of this version fail their check, it cannot make them accept other bytes.
             "blake3": e.blake3.lower() if e.blake3 else None}
        )
        d = parent
        while d:
            st = dir_stats.setdefault(d, [0, 0])
            st[0] += 1
            st[1] += e.size
            d = posixpath.dirname(d)
    # Core inserts (the tables, not the ORM classes): the rows are plain dicts the session
    # never tracks, and the ORM's bulk path costs ~50 % more per row (105 vs 70 ms for 5,000).
    for i in range(0, len(files), _INSERT_BATCH):
        db.execute(insert(FileRow.__table__), files[i : i + _INSERT_BATCH])
    dirs = [
        {"version_id": vid, "path": d, "parent_dir": posixpath.dirname(d), "name": posixpath.basename(d),
         "file_count": st[0], "size": st[1]}
        for d, st in sorted(dir_stats.items())
    ]
    for i in range(0, len(dirs), _INSERT_BATCH):
        db.execute(insert(DirRow.__table__), dirs[i : i + _INSERT_BATCH])
    ctx.row.updated_at = now
    try:
        db.commit()
    except IntegrityError as e:
        # Another replica published this version number first; nothing of ours is kept.
        db.rollback()
        raise HubError(409, "conflict", f"version v{s.version} was published concurrently") from e
    s.state = SessionState.committed.value
    return v


# --- sweeper ----------------------------------------------------------------------------


def sweep(runtime: HubRuntime) -> None:
    """One pass: expire sessions past their TTL, revoke credentials past their expiry."""
    now = utcnow()
    with runtime.sessionmaker() as db:
        expired = db.scalars(
            select(SessionRow).where(SessionRow.state == SessionState.open.value, SessionRow.expires_at <= now)
        ).all()
        for s in expired:
            n = db.execute(
                update(SessionRow)
                .where(SessionRow.id == s.id, SessionRow.state == SessionState.open.value)
                .values(state=SessionState.expired.value)
            ).rowcount
            db.commit()
            if n != 1:
                continue
            log.info("upload session %s expired", s.id)
            _revoke_session_grant(runtime, db, s)
            try:
                _clean_prefix(runtime, s.prefix)
            except Exception as e:
                log.warning("could not delete objects of expired session %s: %s", s.id, type(e).__name__)
        lapsed = db.scalars(
            select(GrantRow).where(GrantRow.revoked_at.is_(None), GrantRow.expires_at <= now)
        ).all()
        for g in lapsed:
            # Claimed by a conditional update, like the expiry above: when replicas sweep
            # at once, the row lock makes the second one's update find nothing to do.
            n = db.execute(
                update(GrantRow).where(GrantRow.id == g.id, GrantRow.revoked_at.is_(None)).values(revoked_at=now)
            ).rowcount
            db.commit()
            if n != 1:
                continue
            log.info("grant %s lapsed; revoked", g.id)
            try:
                runtime.revoke(g.id)
            except Exception as e:
                log.warning("broker could not revoke grant %s: %s", g.id, type(e).__name__)


def live_grants(runtime: HubRuntime) -> list[GrantSpec]:
    """Grants to re-arm at start-up: not revoked, not expired, session still open."""
    now = utcnow()
    with runtime.sessionmaker() as db:
        rows = db.execute(
            select(GrantRow, SessionRow.state)
            .outerjoin(SessionRow, SessionRow.id == GrantRow.session_id)
            .where(GrantRow.revoked_at.is_(None), GrantRow.expires_at > now)
        ).all()
    return [
        GrantSpec(grant_id=g.id, prefix=g.prefix, access=Access(g.access), expires_at=g.expires_at)
        for g, state in rows
        if g.kind != "session" or state == SessionState.open.value
    ]
