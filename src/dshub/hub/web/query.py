"""The dataset list's search: every readable dataset, by name, owner, tag and description.

Access comes from ``service.readable_only`` (the API's rule), so the page can never list
a dataset the API would hide. Each word of the search must match one of the four
fields (``taxi alice`` finds alice's taxi data); ``owner:NAME`` and ``tag:TAG`` match
exactly. The database filters, sorts and pages: the page loads one page of rows
whatever the registry holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from dshub.hub import service
from dshub.hub.db import DatasetRow, UserRow, VersionRow
from dshub.hub.errors import invalid
from dshub.models import Dataset, Visibility

Sort = Literal["updated", "name", "size"]
Scope = Literal["all", "mine", "public"]
SORTS: tuple[str, ...] = ("updated", "name", "size")
SCOPES: tuple[str, ...] = ("all", "mine", "public")
MAX_WORDS = 8


@dataclass
class SearchResult:
    items: list[Dataset]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _tag_clause(tag: str) -> Any:
    # Tags are stored as a JSON list: match the quoted element exactly.
    return func.lower(cast(DatasetRow.tags, String)).like(_like(json.dumps(tag.lower())), escape="\\")


def _word_clause(word: str) -> Any:
    low = word.lower()
    if low.startswith("owner:") and len(word) > 6:
        return func.lower(UserRow.name) == low[6:]
    if low.startswith("tag:") and len(word) > 4:
        return _tag_clause(word[4:])
    pattern = _like(low)
    # The tag match looks at the JSON text, where non-ASCII characters are \\u escapes.
    tag_pattern = _like(json.dumps(low)[1:-1])
    return or_(
        func.lower(DatasetRow.name).like(pattern, escape="\\"),
        func.lower(UserRow.name).like(pattern, escape="\\"),
        func.lower(DatasetRow.description).like(pattern, escape="\\"),
        func.lower(cast(DatasetRow.tags, String)).like(tag_pattern, escape="\\"),
    )


def search_datasets(
    db: Session,
    user: UserRow | None,
    *,
    q: str = "",
    tag: str = "",
    scope: str = "all",
    sort: str = "updated",
    page: int = 1,
    page_size: int = 25,
) -> SearchResult:
    """One page of the datasets ``user`` may read that match ``q`` (and carry ``tag``,
    spaces and all); 422 on a bad argument."""
    if sort not in SORTS:
        raise invalid(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    if scope not in SCOPES:
        raise invalid(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    if "\x00" in q or "\x00" in tag:
        raise invalid("search text contains a NUL byte")
    words = q.split()
    if len(words) > MAX_WORDS:
        raise invalid(f"search with at most {MAX_WORDS} words")

    base: Any = service.readable_only(
        select(DatasetRow, UserRow.name).join(UserRow, UserRow.id == DatasetRow.owner_id), user
    )
    if scope == "mine":
        base = base.where(DatasetRow.owner_id == (user.id if user is not None else -1))
    elif scope == "public":
        base = base.where(DatasetRow.visibility == Visibility.public.value)
    for w in words:
        base = base.where(_word_clause(w))
    if tag:
        base = base.where(_tag_clause(tag))
    # Counted without the versions: only the page needs each dataset's latest version.
    total = db.scalar(select(func.count()).select_from(base.with_only_columns(DatasetRow.id).subquery())) or 0

    newest = (
        select(VersionRow.dataset_id, func.max(VersionRow.number).label("number"))
        .group_by(VersionRow.dataset_id)
        .subquery()
    )
    latest = aliased(VersionRow)
    stmt = (
        base.add_columns(latest)
        .outerjoin(newest, newest.c.dataset_id == DatasetRow.id)
        .outerjoin(latest, and_(latest.dataset_id == DatasetRow.id, latest.number == newest.c.number))
    )
    order: tuple[Any, ...]
    if sort == "name":
        order = (DatasetRow.name, UserRow.name)
    elif sort == "size":
        order = (func.coalesce(latest.size, 0).desc(), DatasetRow.name, UserRow.name)
    else:
        order = (DatasetRow.updated_at.desc(), DatasetRow.id)
    rows = db.execute(stmt.order_by(*order).offset((page - 1) * page_size).limit(page_size)).all()
    items = [
        service.dataset_out(db, service.DatasetCtx(row=r[0], owner=r[1]), r[2], known=True) for r in rows
    ]
    return SearchResult(items=items, total=total, page=page, page_size=page_size)
