"""Upload sessions: open/resume, show, refresh, commit, abort."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from dshub.hub import sessions
from dshub.hub.db import SessionRow, UserRow
from dshub.hub.deps import CurrentUser, DbDep, OwnedDataset, RuntimeDep, token_id_of
from dshub.hub.errors import ERROR_RESPONSES, HubError
from dshub.hub.runtime import HubRuntime
from dshub.hub.service import DatasetCtx
from dshub.models import (
    CarryPlan,
    CommitRequest,
    ErrorDetail,
    SessionList,
    SessionOpen,
    StagedList,
    UploadSession,
    Version,
)

router = APIRouter(tags=["sessions"], responses=ERROR_RESPONSES)

SessionId = Annotated[str, Path(max_length=64)]


@router.get("/sessions", response_model=SessionList)
def list_my_sessions(db: DbDep, user: CurrentUser, runtime: RuntimeDep) -> SessionList:
    """Open upload sessions of every dataset the caller owns (no credentials)."""
    return sessions.list_user_sessions(runtime, db, user)


@router.get("/datasets/{owner}/{name}/sessions", response_model=SessionList)
def list_sessions(ds: OwnedDataset, db: DbDep, runtime: RuntimeDep) -> SessionList:
    """Open upload sessions of a dataset (no credentials)."""
    return sessions.list_sessions(runtime, db, ds)


@router.post(
    "/datasets/{owner}/{name}/sessions",
    response_model=UploadSession,
    status_code=201,
    responses={200: {"model": UploadSession, "description": "An open session was resumed."}},
)
def open_session(
    ds: OwnedDataset, db: DbDep, user: CurrentUser, runtime: RuntimeDep, response: Response, request: Request,
    body: SessionOpen | None = None,
) -> UploadSession:
    """Open an upload session reserving the next version, or resume the open one."""
    out, created = sessions.open_session(runtime, db, user, ds, body or SessionOpen(), token_id_of(request))
    response.status_code = 201 if created else 200
    return out


@router.get("/sessions/{session_id}", response_model=UploadSession)
def get_session(session_id: SessionId, db: DbDep, user: CurrentUser, runtime: RuntimeDep) -> UploadSession:
    """One session (no credentials)."""
    s, ctx = sessions.load_session(db, user, session_id)
    sessions.current_location(runtime, db, s)
    return sessions.session_out(s, ctx)


@router.post("/sessions/{session_id}/refresh", response_model=UploadSession)
def refresh_session(
    session_id: SessionId, db: DbDep, user: CurrentUser, runtime: RuntimeDep, request: Request
) -> UploadSession:
    """New credentials for an open session, same scope."""
    s, ctx = sessions.load_session(db, user, session_id)
    return sessions.refresh_session(runtime, db, s, ctx, user, token_id_of(request))


@router.get("/sessions/{session_id}/staged", response_model=StagedList)
def staged(session_id: SessionId, db: DbDep, user: CurrentUser, runtime: RuntimeDep) -> StagedList:
    """What the session's staging area holds now (objects put there by any tool)."""
    s, _ctx = sessions.load_session(db, user, session_id)
    return sessions.staged(runtime, s)


@router.post("/sessions/{session_id}/carry", response_model=CarryPlan)
def plan_carry(
    session_id: SessionId, body: CommitRequest, db: DbDep, user: CurrentUser, runtime: RuntimeDep
) -> CarryPlan:
    """Give the manifest about to be committed; the hub answers which entries it fills
    itself from the dataset's committed versions (same verified content, any path)."""
    s, ctx = sessions.load_session(db, user, session_id)
    return sessions.plan_carry(runtime, db, s, ctx, body)


@router.post("/sessions/{session_id}/commit", response_model=Version, status_code=201)
def commit_session(
    session_id: SessionId, body: CommitRequest, db: DbDep, user: CurrentUser, runtime: RuntimeDep
) -> Version:
    """Verify storage against the manifest and publish the version."""
    s, ctx = sessions.load_session(db, user, session_id)
    return sessions.commit_session(runtime, db, s, ctx, body)


async def _read_ndjson(request: Request) -> list[sessions.ManifestTuple]:
    """A manifest sent as NDJSON (one ``ManifestEntry`` a line), parsed as it streams."""
    files: list[sessions.ManifestTuple] = []
    problems: list[ErrorDetail] = []
    rest = b""
    line_no = 1
    async for chunk in request.stream():
        rest += chunk
        *lines, rest = rest.split(b"\n")
        if lines:
            await anyio.to_thread.run_sync(sessions.parse_ndjson_lines, lines, line_no, files, problems)
            line_no += len(lines)
        if len(rest) > sessions.MAX_NDJSON_LINE:
            problems.append(ErrorDetail(path=f"line {line_no}", problem=f"longer than {sessions.MAX_NDJSON_LINE} bytes"))
            break
        if len(problems) > sessions.MAX_DETAILS:
            break
    else:
        sessions.parse_ndjson_lines([rest], line_no, files, problems)
    if problems:
        raise HubError(422, "invalid", f"the manifest has {len(problems)} unreadable line"
                       f"{'' if len(problems) == 1 else 's'}", problems[: sessions.MAX_DETAILS])
    return files


T = TypeVar("T")


async def _on_session(
    runtime: HubRuntime, user: UserRow, session_id: str, fn: Callable[[Session, SessionRow, DatasetCtx], T]
) -> T:
    """Run ``fn`` on the caller's session in a worker thread with a database session of its own
    (the NDJSON routes read their bodies on the event loop, then do the work off it)."""

    def work() -> T:
        with runtime.sessionmaker() as db:
            s, ctx = sessions.load_session(db, user, session_id)
            return fn(db, s, ctx)

    return await anyio.to_thread.run_sync(work)


_NDJSON_BODY = {
    "requestBody": {
        "required": True,
        "description": "The manifest, one `ManifestEntry` JSON object a line (NDJSON), up to 512 MiB.",
        "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/ManifestEntry"}}},
    }
}


@router.post("/sessions/{session_id}/carry/ndjson", response_model=CarryPlan, openapi_extra=_NDJSON_BODY)
async def plan_carry_ndjson(
    session_id: SessionId, request: Request, user: CurrentUser, runtime: RuntimeDep
) -> CarryPlan:
    """Like ``/carry``, with the manifest as NDJSON read as it streams (large manifests)."""
    files = await _read_ndjson(request)
    return await _on_session(runtime, user, session_id, lambda db, s, ctx: sessions.plan_carry(
        runtime, db, s, ctx, sessions.StreamedManifest(files)))


@router.post(
    "/sessions/{session_id}/commit/ndjson",
    response_model=Version,
    status_code=201,
    openapi_extra=_NDJSON_BODY,
)
async def commit_session_ndjson(
    session_id: SessionId, request: Request, user: CurrentUser, runtime: RuntimeDep
) -> Version:
    """Like ``/commit``, with the manifest as NDJSON read as it streams (large manifests).

    The body is parsed a chunk at a time into compact tuples, never held as one JSON
    document plus its models.
    """
    files = await _read_ndjson(request)
    return await _on_session(runtime, user, session_id, lambda db, s, ctx: sessions.commit_session(
        runtime, db, s, ctx, sessions.StreamedManifest(files)))


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
def abort_session(session_id: SessionId, db: DbDep, user: CurrentUser, runtime: RuntimeDep) -> Response:
    """Abort: revoke credentials and delete the session's objects."""
    s, _ctx = sessions.load_session(db, user, session_id)
    sessions.abort_session(runtime, db, s)
    return Response(status_code=204)
