"""Versions of a dataset, their files, manifests and read credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from dshub.hub import service
from dshub.hub.deps import DbDep, OptionalUser, OwnedDataset, ReadableDataset, RuntimeDep, token_id_of
from dshub.hub.errors import ERROR_RESPONSES
from dshub.models import FileList, ReadGrant, Version, VersionList

router = APIRouter(prefix="/datasets/{owner}/{name}/versions", tags=["versions"], responses=ERROR_RESPONSES)

VersionPath = Annotated[
    str,
    Path(max_length=20, description="`3`, `v3` or `latest`.",
         json_schema_extra={"pattern": r"^(latest|v?[1-9][0-9]{0,8})$"}),
]


@router.get("", response_model=VersionList)
def list_versions(ds: ReadableDataset, db: DbDep) -> VersionList:
    """Committed versions, newest first."""
    return service.list_versions(db, ds)


@router.get("/{v}", response_model=Version)
def get_version(v: VersionPath, ds: ReadableDataset, db: DbDep) -> Version:
    """One committed version."""
    return service.version_out(ds, service.resolve_version(db, ds, v))


@router.delete("/{v}", status_code=204, response_class=Response)
def delete_version(v: VersionPath, ds: OwnedDataset, db: DbDep, runtime: RuntimeDep) -> Response:
    """Delete one version and its stored objects (owner only); its number is never reused."""
    service.delete_version(runtime, db, ds, service.resolve_version(db, ds, v))
    return Response(status_code=204)


@router.get("/{v}/files", response_model=FileList)
def list_files(
    v: VersionPath,
    ds: ReadableDataset,
    db: DbDep,
    prefix: Annotated[str, Query(max_length=1024)] = "",
    recursive: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> FileList:
    """One directory level (directories first) or, recursive, every file below ``prefix``."""
    row = service.resolve_version(db, ds, v)
    return service.list_files(db, row, prefix=prefix, recursive=recursive, limit=limit, cursor=cursor)


@router.get(
    "/{v}/manifest",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                     "description": "One ManifestEntry JSON object a line, sorted by path."}},
)
def get_manifest(v: VersionPath, ds: ReadableDataset, db: DbDep, runtime: RuntimeDep) -> StreamingResponse:
    """The whole manifest as NDJSON, streamed."""
    row = service.resolve_version(db, ds, v)
    return StreamingResponse(service.iter_manifest(runtime, row.id), media_type="application/x-ndjson")


@router.post("/{v}/credentials", response_model=ReadGrant)
def read_credentials(
    v: VersionPath, ds: ReadableDataset, db: DbDep, runtime: RuntimeDep, user: OptionalUser, request: Request
) -> ReadGrant:
    """Read-only credentials for this version's prefix."""
    row = service.resolve_version(db, ds, v)
    return service.read_grant(runtime, db, ds, row, user, token_id_of(request))
