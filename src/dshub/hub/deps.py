"""FastAPI dependencies: database session, the caller, and datasets with access rules.

Authentication and visibility live here, not in route bodies: a route that takes
``ReadableDataset`` can only ever see a dataset the caller may read, and one that takes
``OwnedDataset`` only one the caller owns (others get 404 for private, 403 for public).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from dshub.hub.db import UserRow
from dshub.hub.errors import HubError
from dshub.hub.runtime import HubRuntime
from dshub.hub.security import authenticate_token
from dshub.hub.service import DatasetCtx, load_dataset, require_owner
from dshub.models import NAME_PATTERN, USER_PATTERN


def get_runtime(request: Request) -> HubRuntime:
    runtime: HubRuntime = request.app.state.hub
    return runtime


RuntimeDep = Annotated[HubRuntime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Iterator[Session]:
    """One database session per request, closed afterwards."""
    with runtime.sessionmaker() as db:
        yield db


DbDep = Annotated[Session, Depends(get_db)]

_LOGIN_HINT = "run `dshub login` (or set DSHUB_TOKEN) with a valid token"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HubError(401, "unauthorized", f"malformed Authorization header; {_LOGIN_HINT}")
    return value.strip()


def client_address(request: Request) -> str:
    """The peer's address (what the failed-authentication limit counts by)."""
    return request.client.host if request.client is not None else "?"


def _check_token(request: Request, db: Session, runtime: HubRuntime, token: str) -> UserRow:
    """The token's user (its token row id kept in ``request.state.token_id``); 401/429 else."""
    address = client_address(request)
    runtime.auth_limiter.check(address)
    found = authenticate_token(db, token)
    if found is None:
        runtime.auth_limiter.failed(address)
        raise HubError(401, "unauthorized", f"token rejected (wrong, revoked or malformed); {_LOGIN_HINT}")
    request.state.token_id = found[1]
    return found[0]


def get_optional_user(request: Request, db: DbDep, runtime: RuntimeDep) -> UserRow | None:
    """The caller, or None for an anonymous request when the hub allows anonymous reads."""
    token = _bearer(request)
    if token is None:
        if runtime.settings.anonymous_read:
            return None
        raise HubError(401, "unauthorized", f"authentication required; {_LOGIN_HINT}")
    return _check_token(request, db, runtime, token)


def get_current_user(request: Request, db: DbDep, runtime: RuntimeDep) -> UserRow:
    """The caller; 401 ``unauthorized`` without a valid token."""
    token = _bearer(request)
    if token is None:
        raise HubError(401, "unauthorized", f"authentication required; {_LOGIN_HINT}")
    return _check_token(request, db, runtime, token)


def token_id_of(request: Request) -> int | None:
    """Row id of the token the request authenticated with (None: anonymous)."""
    value = getattr(request.state, "token_id", None)
    return value if isinstance(value, int) else None


OptionalUser = Annotated[UserRow | None, Depends(get_optional_user)]
CurrentUser = Annotated[UserRow, Depends(get_current_user)]

# The patterns are declared in the OpenAPI document (so generated clients validate) but
# checked by ``service.check_names``, whose 422 names the rule in words.
OwnerPath = Annotated[
    str, Path(max_length=200, description="Owner (user name).", json_schema_extra={"pattern": USER_PATTERN})
]
NamePath = Annotated[
    str, Path(max_length=200, description="Dataset name.", json_schema_extra={"pattern": NAME_PATTERN})
]


def get_readable_dataset(owner: OwnerPath, name: NamePath, db: DbDep, user: OptionalUser) -> DatasetCtx:
    """A dataset the caller (maybe anonymous) may read; 404 otherwise."""
    return load_dataset(db, user, owner, name)


def get_owned_dataset(owner: OwnerPath, name: NamePath, db: DbDep, user: CurrentUser) -> DatasetCtx:
    """A dataset the caller owns (or any, for an admin)."""
    ctx = load_dataset(db, user, owner, name)
    require_owner(user, ctx)
    return ctx


ReadableDataset = Annotated[DatasetCtx, Depends(get_readable_dataset)]
OwnedDataset = Annotated[DatasetCtx, Depends(get_owned_dataset)]
