"""The hub's registry: SQLAlchemy 2 models and the engine/session factory.

Portable types only (SQLite by default, PostgreSQL by URL). Timestamps are stored as
naive UTC and handed out timezone-aware, because SQLite has no time zones.

Files and directories of a version are precomputed at commit (``files``, ``dirs``) so
that listing one directory level of a version with millions of files is an indexed
keyset query on ``(version_id, parent_dir, name)``, and a recursive listing is a keyset
over ``(version_id, path)`` with a prefix range — nothing ever loads a whole manifest.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Paths are at most 900 bytes (refs.MAX_PATH_BYTES); leave room for multi-byte characters.
# Keyset paging and prefix ranges rely on byte order; PostgreSQL's default collation is not.
PathStr = String(1024).with_variant(String(1024, collation="C"), "postgresql")


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC (SQLite drops tzinfo, PostgreSQL would keep it)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TokenRow(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the secret part
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_dataset_owner_name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    license: Mapped[str | None] = mapped_column(String(100), nullable=True)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number", name="uq_version_number"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploader: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(200))
    # Bytes this version added (what its upload sent, not what it carried); NULL for
    # versions published before carrying existed.
    new_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class FileRow(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_version_path", "version_id", "path", unique=True),
        Index("ix_files_version_parent_name", "version_id", "parent_dir", "name"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(PathStr)
    parent_dir: Mapped[str] = mapped_column(PathStr)  # "" for the version's root
    name: Mapped[str] = mapped_column(PathStr)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Added after the first release: a database from before it gets the column when it
    # is adopted as the baseline revision (NULL for the versions already stored).
    blake3: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # True when the hub itself checked the content against the digests above at commit
    # (only such files may be carried into another version).
    verified: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class CarryRow(Base):
    """A file an open session will take from a committed version of the same dataset
    instead of having it uploaded (filled at commit, server-side)."""

    __tablename__ = "carries"
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(PathStr, primary_key=True)
    # A source version deleted before the commit takes its carries with it: the file is
    # then missing at commit and the uploader sends it.
    source_version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(PathStr)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    blake3: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DirRow(Base):
    __tablename__ = "dirs"
    __table_args__ = (
        Index("ix_dirs_version_path", "version_id", "path", unique=True),
        Index("ix_dirs_version_parent_name", "version_id", "parent_dir", "name"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(PathStr)
    parent_dir: Mapped[str] = mapped_column(PathStr)
    name: Mapped[str] = mapped_column(PathStr)
    file_count: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_state_expires", "state", "expires_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    # The version number the session was published as; NULL while open (numbers are
    # given in commit order, so two jobs racing never publish an older folder as newer).
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    uploader: Mapped[str] = mapped_column(String(64))
    # The session's staging area (``datasets/<uuid>/staging/<session id>/``): never the
    # version's folder, which only the hub writes, at commit.
    prefix: Mapped[str] = mapped_column(String(200))
    # The uploading job's own id (SessionOpen.client_key); NULL for keyless opens.
    client_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # The last Location the broker gave out (JSON of models.Location), so GET can show it
    # without minting credentials.
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class GrantRow(Base):
    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_live", "revoked_at", "expires_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(16))  # "session" | "read"
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), nullable=True, index=True
    )
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), nullable=True, index=True
    )
    prefix: Mapped[str] = mapped_column(String(200))
    access: Mapped[str] = mapped_column(String(8))  # "read" | "write"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Who asked (NULL: anonymous, or a grant made before these columns): per-user quotas,
    # and a revoked token takes its grants with it. No foreign keys, so an older
    # database gains them with a plain ADD COLUMN.
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` and ``postgres://`` (the forms
    libpq, Heroku and most docs use) mean psycopg 3, the driver ``dshub[postgres]`` brings."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    A PostgreSQL URL without the driver installed is a one-line error naming the extra."""
    url = normalise_url(url)
    if url.startswith("postgresql+psycopg"):
        try:
            import psycopg  # noqa: F401
        except ImportError as e:
            from dshub.errors import DshubError

            raise DshubError(
                "PostgreSQL needs the psycopg driver: pip install 'dshub[hub,postgres]'"
            ) from e
    from sqlalchemy.exc import ArgumentError

    try:
        return _make_engine(url)
    except ArgumentError as e:  # NoSuchModuleError too: an unknown scheme or a malformed URL
        from dshub.errors import UsageError

        # Not the URL itself: it may hold a password.
        raise UsageError(
            "invalid database URL: use sqlite:///PATH or postgresql://USER@HOST[:PORT]/DB"
        ) from e


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    """A session factory; objects stay readable after commit (routes serialise them after)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


# Nullable columns added to existing tables before migrations existed, in order. Frozen:
# adopting a database of that time as the baseline revision adds the ones it lacks
# (hub/schema.py); every later change to the schema is an Alembic revision.
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("files", "blake3"),)


def create_tables(engine: Engine) -> None:
    """The schema as hubs made it before migrations: ``create_all`` plus ``ADDED_COLUMNS``.

    Kept for tests that build such a database; a hub uses ``hub.schema.ensure_schema``."""
    Base.metadata.create_all(engine)
    have: dict[str, set[str]] = {}
    with engine.begin() as conn:
        insp = inspect(conn)
        for table, column in ADDED_COLUMNS:
            if table not in have:
                have[table] = {c["name"] for c in insp.get_columns(table)}
            if column in have[table]:
                continue
            col = Base.metadata.tables[table].c[column]
            kind = col.type.compile(dialect=engine.dialect)
            conn.execute(text(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}'))
            have[table].add(column)
