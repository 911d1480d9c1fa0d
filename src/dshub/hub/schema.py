"""The registry's schema version: Alembic upgrades, checks at start-up, ``--sql`` rendering.

A database is one of:

- empty: migrated to head without asking (a first start, ``make demo``, tests);
- at head: nothing to do;
- behind (an older revision, or the tables of a hub from before migrations existed, which
  have no ``alembic_version``): the hub refuses to start until ``dshub hub migrate`` (or
  ``hub serve --migrate``) upgrades it;
- ahead (a revision this hub does not know, written by a newer hub): refused.

On PostgreSQL the upgrade holds an advisory lock, so replicas started together on a new
database do not both create the tables.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from dshub.errors import DshubError
from dshub.hub.db import ADDED_COLUMNS, Base

MIGRATIONS = Path(__file__).parent / "migrations"
# The revision whose schema is what hubs made before migrations existed (create_all
# plus ADDED_COLUMNS): such a database is adopted by stamping it with this revision.
BASELINE = "0001"
# Any fixed 64-bit number; only hubs take it, to serialise their migrations.
_PG_LOCK_KEY = 0x64736875625F6D67


class SchemaError(DshubError):
    """The database's schema is not the one this hub runs on (behind, ahead, unreadable)."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the stored revision; None when there is no alembic_version row
    head: str
    has_tables: bool  # any of the hub's tables exist

    @property
    def empty(self) -> bool:
        return self.current is None and not self.has_tables

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _state(conn: Connection) -> SchemaState:
    current = MigrationContext.configure(conn).get_current_revision()
    names = set(inspect(conn).get_table_names())
    return SchemaState(current=current, head=head_revision(), has_tables=bool(names & set(Base.metadata.tables)))


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    """A connection; a database that cannot be reached is one line (the driver's first,
    which names host and port, never the password), not a traceback."""
    try:
        conn = engine.connect()
    except DBAPIError as e:
        first = (str(e.orig).strip().splitlines() or [type(e.orig).__name__])[0]
        raise SchemaError(f"cannot reach the database: {first.removeprefix('connection failed: ')}") from None
    with conn:
        yield conn


def schema_state(engine: Engine) -> SchemaState:
    """Where the database stands against this hub's migrations."""
    with _connect(engine) as conn:
        return _state(conn)


def _adopt_legacy(conn: Connection) -> None:
    """Bring a pre-migrations database to exactly the baseline (its added columns)."""
    insp = inspect(conn)
    for table, column in ADDED_COLUMNS:
        if column not in {c["name"] for c in insp.get_columns(table)}:
            col = Base.metadata.tables[table].c[column]
            kind = col.type.compile(dialect=conn.dialect)
            conn.execute(text(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}'))


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head (adopting a pre-migrations database); returns (from, to) revisions."""
    from alembic import command

    with _connect(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
        try:
            state = _state(conn)
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            if state.current is None and state.has_tables:
                _adopt_legacy(conn)
                conn.commit()
                command.stamp(cfg, BASELINE)
                conn.commit()
            _refuse_unknown(state)
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # SQLite changes a column by rebuilding its table (drop, then rename the
                # copy): with foreign keys on, dropping `sessions` would cascade into
                # `grants`. The pragma only works outside a transaction.
                conn.commit()
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            try:
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
    return state.current, state.head


def _refuse_unknown(state: SchemaState) -> None:
    if state.current is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(state.current)
    except Exception as e:
        raise SchemaError(
            f"the database is at schema revision {state.current}, unknown to this hub "
            f"(made by a newer dshub?); upgrade dshub"
        ) from e


def ensure_schema(engine: Engine, *, migrate: bool) -> None:
    """Make sure the schema is at head before serving: an empty database is migrated
    always, one behind only when ``migrate`` is true; otherwise one line says what to run."""
    state = schema_state(engine)
    if state.at_head:
        return
    _refuse_unknown(state)
    if state.empty or migrate:
        upgrade(engine)
        return
    was = state.current or "from before migrations"
    raise SchemaError(
        f"the database schema is behind this hub (revision {was}, this hub needs {state.head}); "
        "run `dshub hub migrate` (or start with `dshub hub serve --migrate`)"
    )


def upgrade_sql(engine: Engine) -> str:
    """The SQL that :func:`upgrade` would run on this database (read, never written)."""
    from alembic import command

    with _connect(engine) as conn:
        state = _state(conn)
        missing = []
        if state.current is None and state.has_tables:
            insp = inspect(conn)
            for table, column in ADDED_COLUMNS:
                if column not in {c["name"] for c in insp.get_columns(table)}:
                    kind = Base.metadata.tables[table].c[column].type.compile(dialect=conn.dialect)
                    missing.append(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind};\n')
    _refuse_unknown(state)
    out = io.StringIO()
    # Only the dialect: rendering SQL connects nowhere and needs no password.
    cfg = alembic_config(f"{engine.url.drivername}://")
    cfg.output_buffer = out
    if state.current is None and state.has_tables:
        out.write("-- a database from before migrations: adopted as the baseline\n")
        out.writelines(missing)
        command.stamp(cfg, BASELINE, sql=True)
        start: str | None = BASELINE
    else:
        start = state.current
    if start != state.head:
        command.upgrade(cfg, f"{start}:head" if start else "head", sql=True)
    return out.getvalue()
