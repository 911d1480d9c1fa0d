"""Schema migrations on SQLite and a real PostgreSQL server.

- A database built from the last release's schema (``tests/fixtures/schema_last_release.*.sql``,
  frozen from ``create_all`` before migrations existed), filled with users, tokens,
  datasets, versions, files, dirs, sessions and grants, is upgraded by ``dshub hub migrate``;
  every row is still there and a hub serves it (the old token works, the version lists).
- ``hub serve`` on such a database refuses with one line naming ``dshub hub migrate``
  (exit 1) and ``--migrate`` upgrades it on start.
- The models and the migrations agree: Alembic's ``compare_metadata`` on a database
  upgraded to head finds no difference.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from dshub.hub.db import Base, make_engine
from dshub.hub.schema import head_revision, schema_state
from tests.conftest import HubFactory
from tests.pg_server import PgServer

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECRET = "s" * 40
PUBLIC_ID = "0123456789abcdef"
TOKEN = f"dshub_{PUBLIC_ID}_{SECRET}"
DS = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: a SQLite file, or a fresh database on the test cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        pg: PgServer = request.getfixturevalue("pg_server")
        yield pg.create_database()


def build_last_release(url: str, *, without_blake3: bool = False) -> None:
    """The last release's tables, filled; ``without_blake3``: as the very first schema."""
    engine = make_engine(url)
    ddl = (FIXTURES / f"schema_last_release.{engine.dialect.name}.sql").read_text()
    ddl = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    statements = [st.strip() for st in ddl.split(";") if st.strip()]
    ts = "'2026-01-02 03:04:05'"
    rows = [
        "INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'alice', false, " + ts + ")",
        "INSERT INTO users (id, name, is_admin, created_at) VALUES (2, 'root', true, " + ts + ")",
        f"INSERT INTO tokens (id, public_id, secret_hash, user_id, created_at) VALUES "
        f"(1, '{PUBLIC_ID}', '{hashlib.sha256(SECRET.encode()).hexdigest()}', 1, {ts})",
        f"INSERT INTO datasets (id, owner_id, name, description, tags, license, visibility, created_at, updated_at) "
        f"VALUES ('{DS}', 1, 'taxi', 'trips', '[\"nyc\"]', 'MIT', 'private', {ts}, {ts})",
        f"INSERT INTO versions (id, dataset_id, number, size, file_count, created_at, uploader, prefix) "
        f"VALUES (1, '{DS}', 1, 15, 2, {ts}, 'alice', 'datasets/{DS}/v1/')",
        "INSERT INTO files (id, version_id, path, parent_dir, name, size, md5"
        + ("" if without_blake3 else ", blake3") + ") VALUES "
        f"(1, 1, 'a.csv', '', 'a.csv', 5, '{'1' * 32}'" + ("" if without_blake3 else f", '{'2' * 64}'") + "), "
        f"(2, 1, 'd/b.csv', 'd', 'b.csv', 10, '{'3' * 32}'" + ("" if without_blake3 else ", NULL") + ")",
        "INSERT INTO dirs (id, version_id, path, parent_dir, name, file_count, size) VALUES (1, 1, 'd', '', 'd', 1, 10)",
        f"INSERT INTO sessions (id, dataset_id, version, state, created_at, expires_at, uploader, prefix) "
        f"VALUES ('sess-1', '{DS}', 2, 'open', {ts}, '2099-01-01 00:00:00', 'alice', 'datasets/{DS}/v2/')",
        f"INSERT INTO grants (id, kind, session_id, version_id, prefix, access, created_at, expires_at, revoked_at) "
        f"VALUES ('sess-1', 'session', 'sess-1', NULL, 'datasets/{DS}/v2/', 'write', {ts}, {ts}, {ts})",
    ]
    with engine.begin() as conn:
        for st in statements:
            conn.execute(text(st))
        if without_blake3:
            conn.execute(text("ALTER TABLE files DROP COLUMN blake3"))
        for st in rows:
            conn.execute(text(st))
        if engine.dialect.name == "postgresql":
            # Explicit ids leave the sequences behind; the old hub would have advanced them.
            for t in ("users", "tokens", "versions", "files", "dirs"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"))
    engine.dispose()


def _dshub(*args: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    return subprocess.run(
        [sys.executable, "-m", "dshub.cli.main", "hub", *args, "--data-dir", str(data_dir), "--database-url", url],
        env=env, capture_output=True, text=True, timeout=120,
    )


_TABLES = ("users", "tokens", "datasets", "versions", "files", "dirs", "sessions", "grants")


def _columns(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = {t: [c["name"] for c in inspect(conn).get_columns(t) if c["name"] != "blake3"] for t in _TABLES}
    engine.dispose()
    return out


def _snapshot(url: str, columns: dict[str, list[str]]) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the release's tables, in the columns the release had (later revisions
    add columns; what was there must be kept)."""
    engine = make_engine(url)
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for t, cols in columns.items():
            out[t] = [tuple(r) for r in conn.execute(text(f"SELECT {', '.join(cols)} FROM {t} ORDER BY id"))]
    engine.dispose()
    return out


@pytest.mark.parametrize("first_schema", [False, True], ids=["last-release", "first-schema"])
def test_migrate_upgrades_the_last_release_and_keeps_every_row(
    db_url: str, tmp_path: Path, first_schema: bool
) -> None:
    build_last_release(db_url, without_blake3=first_schema)
    columns = _columns(db_url)
    before = _snapshot(db_url, columns)
    assert all(before[t] for t in before), "every table holds rows before the upgrade"

    sql = _dshub("migrate", "--sql", url=db_url, data_dir=tmp_path)
    assert sql.returncode == 0, sql.stderr
    assert "alembic_version" in sql.stdout
    assert schema_state(make_engine(db_url)).current is None, "--sql changes nothing"

    res = _dshub("migrate", url=db_url, data_dir=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"from before migrations to schema {head_revision()}" in res.stdout
    again = _dshub("migrate", url=db_url, data_dir=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout

    after = _snapshot(db_url, columns)
    # The one intended change: an open session gives its reserved number back (numbers
    # are given at commit now); everything else is kept as it was.
    at = columns["sessions"].index("version")
    state = columns["sessions"].index("state")
    before["sessions"] = [
        tuple(None if i == at and row[state] == "open" else v for i, v in enumerate(row)) for row in before["sessions"]
    ]
    assert after == before
    engine = make_engine(db_url)
    with engine.connect() as conn:
        blake3 = conn.execute(text("SELECT path, blake3 FROM files ORDER BY path")).all()
    engine.dispose()
    assert blake3 == [("a.csv", None if first_schema else "2" * 64), ("d/b.csv", None)]


def test_serve_refuses_a_schema_behind_and_migrates_when_asked(
    hub: HubFactory, tmp_path: Path, db_url: str
) -> None:
    build_last_release(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    res = subprocess.run(
        [sys.executable, "-m", "dshub.cli.main", "hub", "serve", "--port", "1", "--data-dir", str(tmp_path / "x"),
         "--database-url", db_url],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "dshub hub migrate" in lines[0] and "Traceback" not in res.stderr, res.stderr
    # An admin command on it is refused the same way, and changes nothing.
    user = _dshub("create-user", "bob", url=db_url, data_dir=tmp_path)
    assert user.returncode == 1 and "dshub hub migrate" in user.stderr
    assert schema_state(make_engine(db_url)).current is None

    h = hub("--migrate", env={"DSHUB_HUB_DATABASE_URL": db_url})
    assert schema_state(make_engine(db_url)).at_head
    with h.client(TOKEN) as c:
        r = c.get("/datasets/alice/taxi/versions")
        assert r.status_code == 200, r.text
        assert [(v["version"], v["file_count"], v["size"]) for v in r.json()["items"]] == [(1, 2, 15)]
        files = c.get("/datasets/alice/taxi/versions/v1/files", params={"recursive": "true"})
        assert files.status_code == 200, files.text
        assert sorted(f["path"] for f in files.json()["items"]) == ["a.csv", "d/b.csv"]
    assert httpx.get(f"{h.api}/info", timeout=10).status_code == 200


def test_empty_database_is_migrated_on_first_start(db_url: str, tmp_path: Path) -> None:
    res = _dshub("create-user", "alice", url=db_url, data_dir=tmp_path)
    assert res.returncode == 0, res.stderr
    assert schema_state(make_engine(db_url)).at_head


def test_models_and_migrations_agree(db_url: str, tmp_path: Path) -> None:
    """Autogenerate against a database at head finds nothing to do."""
    res = _dshub("migrate", url=db_url, data_dir=tmp_path)
    assert res.returncode == 0, res.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_sql_on_an_empty_database_prints_the_whole_schema(db_url: str, tmp_path: Path) -> None:
    res = _dshub("migrate", "--sql", url=db_url, data_dir=tmp_path)
    assert res.returncode == 0, res.stderr
    for t in Base.metadata.tables:
        assert f"CREATE TABLE {t} " in res.stdout
    assert schema_state(make_engine(db_url)).empty


def test_postgres_url_without_driver_scheme_is_psycopg() -> None:
    from dshub.hub.db import normalise_url

    assert normalise_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_or_malformed_database_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    closed = f"postgresql://hub:pw-sekret@127.0.0.1:{free_port()}/hub"
    for args in (("migrate",), ("migrate", "--sql"), ("serve", "--port", "1"), ("create-user", "al")):
        res = _dshub(*args, url=closed, data_dir=tmp_path)
        assert res.returncode == 1, (args, res.stderr)
        assert res.stderr.strip().count("\n") == 0 and "cannot reach the database" in res.stderr, res.stderr
        assert "pw-sekret" not in res.stderr + res.stdout
    res = _dshub("migrate", url="nosuchdb://x:pw-sekret@h/d", data_dir=tmp_path)
    assert res.returncode == 2 and "invalid database URL" in res.stderr and "pw-sekret" not in res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr


def test_replicas_migrating_one_new_postgres_database_at_once_take_turns(pg_server: PgServer, tmp_path: Path) -> None:
    """Two ``migrate`` at the same moment on one empty database: the advisory lock lets
    one create the tables; the other then finds it at head. Both succeed."""
    url = pg_server.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dshub.cli.main", "hub", "migrate", "--data-dir", str(tmp_path / str(i)),
             "--database-url", url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert schema_state(make_engine(url)).at_head
