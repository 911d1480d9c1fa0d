"""Upload sessions: open/resume, show, refresh, commit, abort."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from dshub.hub import sessions
from dshub.hub.deps import CurrentUser, DbDep, OwnedDataset, RuntimeDep, token_id_of
from dshub.hub.errors import ERROR_RESPONSES
from dshub.models import CarryPlan, CommitRequest, StagedList, SessionList, SessionOpen, UploadSession, Version

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


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
def abort_session(session_id: SessionId, db: DbDep, user: CurrentUser, runtime: RuntimeDep) -> Response:
    """Abort: revoke credentials and delete the session's objects."""
    s, _ctx = sessions.load_session(db, user, session_id)
    sessions.abort_session(runtime, db, s)
    return Response(status_code=204)
