"""``/datasets``: list, create, show, update, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from dshub.hub import service
from dshub.hub.deps import CurrentUser, DbDep, OptionalUser, OwnedDataset, ReadableDataset, RuntimeDep
from dshub.hub.errors import ERROR_RESPONSES
from dshub.models import USER_PATTERN, Dataset, DatasetCreate, DatasetList, DatasetUpdate

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


@router.get("", response_model=DatasetList)
def list_datasets(
    db: DbDep,
    user: OptionalUser,
    owner: Annotated[str | None, Query(max_length=100, json_schema_extra={"pattern": USER_PATTERN})] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DatasetList:
    """The caller's own and all public datasets (admin: all)."""
    return service.list_datasets(db, user, owner=owner, q=q, tag=tag, page=page, page_size=page_size)


@router.post("", response_model=Dataset, status_code=201)
def create_dataset(body: DatasetCreate, db: DbDep, user: CurrentUser) -> Dataset:
    """Create a dataset owned by the caller."""
    return service.create_dataset(db, user, body)


@router.get("/{owner}/{name}", response_model=Dataset)
def get_dataset(ds: ReadableDataset, db: DbDep) -> Dataset:
    """One dataset (404 for a private dataset of another user)."""
    return service.dataset_out(db, ds)


@router.patch("/{owner}/{name}", response_model=Dataset)
def update_dataset(body: DatasetUpdate, ds: OwnedDataset, db: DbDep, runtime: RuntimeDep) -> Dataset:
    """Change description, tags, license or visibility (owner only)."""
    return service.update_dataset(runtime, db, ds, body)


@router.delete("/{owner}/{name}", status_code=204, response_class=Response)
def delete_dataset(ds: OwnedDataset, db: DbDep, runtime: RuntimeDep) -> Response:
    """Delete the dataset, its versions and stored objects; aborts open sessions."""
    service.delete_dataset(runtime, db, ds)
    return Response(status_code=204)
