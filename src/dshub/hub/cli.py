"""``dshub hub …``: serve the hub and administer users and tokens.

Only typer is imported at module level: ``dshub --version`` must not pay for FastAPI,
uvicorn or SQLAlchemy. Commands raise ``dshub.errors`` exceptions; the one error
boundary in ``dshub.cli.main`` prints them as one line with the right exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

hub_app = typer.Typer(no_args_is_help=True)

_DATA_DIR_HELP = "Hub data directory (database, objects, secrets). Default: <user data dir>/dshub/hub."


def _data_dir(value: Optional[Path]) -> Path:
    if value is not None:
        return value.expanduser()
    from dshub.hub.settings import default_data_dir

    return default_data_dir()


def _db_url(data_dir: Optional[Path], database_url: Optional[str]) -> str:
    from dshub.hub.datadir import prepare_data_dir

    d = _data_dir(data_dir)
    if database_url is None:
        prepare_data_dir(d)
    return database_url or f"sqlite:///{d / 'hub.db'}"


def _open_db(data_dir: Optional[Path], database_url: Optional[str]) -> "Session":
    """A session on a database at head (an empty one is migrated; one behind is refused)."""
    from dshub.hub.db import make_engine, make_sessionmaker
    from dshub.hub.schema import ensure_schema

    engine = make_engine(_db_url(data_dir, database_url))
    ensure_schema(engine, migrate=False)
    return make_sessionmaker(engine)()


@hub_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", envvar="DSHUB_HUB_HOST", help="Address to bind."),
    port: int = typer.Option(8700, envvar="DSHUB_HUB_PORT", help="Port to bind."),
    data_dir: Optional[Path] = typer.Option(None, envvar="DSHUB_HUB_DATA_DIR", help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(
        None, envvar="DSHUB_HUB_DATABASE_URL", help="SQLAlchemy URL; default sqlite in the data dir."
    ),
    broker: Literal["local", "sts"] = typer.Option("local", envvar="DSHUB_HUB_BROKER", help="Credential broker."),
    s3_advertise_url: Optional[str] = typer.Option(
        None, envvar="DSHUB_HUB_S3_ADVERTISE_URL", help="URL clients use to reach the local S3 endpoints."
    ),
    s3_bind_host: str = typer.Option("127.0.0.1", envvar="DSHUB_HUB_S3_BIND_HOST", help="Local broker bind address."),
    session_ttl: int = typer.Option(86400, envvar="DSHUB_HUB_SESSION_TTL", help="Upload session lifetime (s)."),
    credential_ttl: int = typer.Option(3600, envvar="DSHUB_HUB_CREDENTIAL_TTL", help="Credential lifetime (s)."),
    anonymous_read: bool = typer.Option(
        False, "--anonymous-read", envvar="DSHUB_HUB_ANONYMOUS_READ", help="Let anyone read public datasets."
    ),
    bucket: str = typer.Option("dshub", envvar="DSHUB_HUB_BUCKET", help="Bucket holding the datasets."),
    region: str = typer.Option("us-east-1", envvar="DSHUB_HUB_REGION", help="S3 region."),
    sts_endpoint_url: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_STS_ENDPOINT_URL", help="STS endpoint."),
    s3_endpoint_url: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_S3_ENDPOINT_URL", help="S3 endpoint."),
    role_arn: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_ROLE_ARN", help="Role the sts broker assumes."),
    sweep_interval: float = typer.Option(1.0, envvar="DSHUB_HUB_SWEEP_INTERVAL", help="Sweeper period (s)."),
    max_sessions_per_user: int = typer.Option(
        20, envvar="DSHUB_HUB_MAX_SESSIONS_PER_USER", help="Open upload sessions a user may hold (0 = no limit)."
    ),
    max_read_grants_per_user: int = typer.Option(
        50, envvar="DSHUB_HUB_MAX_READ_GRANTS_PER_USER", help="Live read grants a user may hold (0 = no limit)."
    ),
    max_auth_failures: int = typer.Option(
        30, envvar="DSHUB_HUB_MAX_AUTH_FAILURES",
        help="Failed authentications per client address per minute before 429 (0 = no limit).",
    ),
    log_level: Literal["debug", "info", "warning", "error", "critical"] = typer.Option(
        "warning", envvar="DSHUB_HUB_LOG_LEVEL", help="Log level.", case_sensitive=False
    ),
    log_format: str = typer.Option(
        "text", envvar="DSHUB_HUB_LOG_FORMAT", help="Log lines: text, or json (one object a line, with request ids)."
    ),
    migrate: bool = typer.Option(
        False, "--migrate", envvar="DSHUB_HUB_MIGRATE", help="Upgrade a database schema that is behind before serving."
    ),
) -> None:
    """Run the hub server (Ctrl-C or SIGTERM stops it and its rclone processes)."""
    import signal
    import sys
    import threading
    import time

    import uvicorn

    from dshub.errors import UsageError
    from dshub.hub.app import create_app
    from dshub.hub.settings import HubSettings

    try:
        settings = HubSettings(
            host=host, port=port, data_dir=_data_dir(data_dir), database_url=database_url,
            broker=broker,  # type: ignore[arg-type]  # validated by HubSettings
            s3_advertise_url=s3_advertise_url, s3_bind_host=s3_bind_host, session_ttl=session_ttl,
            credential_ttl=credential_ttl, anonymous_read=anonymous_read, bucket=bucket, region=region,
            sts_endpoint_url=sts_endpoint_url, s3_endpoint_url=s3_endpoint_url, role_arn=role_arn,
            sweep_interval=sweep_interval, max_sessions_per_user=max_sessions_per_user,
            max_read_grants_per_user=max_read_grants_per_user, max_auth_failures=max_auth_failures,
            migrate=migrate, log_format=log_format,
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    from dshub.errors import DshubError
    from dshub.hub.datadir import DataDirBusy, check_port_free, lock_data_dir, prepare_data_dir
    from dshub.hub.db import make_engine
    from dshub.hub.observability import configure_logging
    from dshub.hub.schema import ensure_schema

    problem = check_port_free(host, port)
    if problem is not None:
        raise DshubError(problem)
    try:
        lock = lock_data_dir(prepare_data_dir(settings.data_dir))
    except DataDirBusy as e:
        raise DshubError(str(e)) from None
    configure_logging(log_level, log_format)
    # Checked here, before uvicorn: a schema that is behind is one line and exit 1, not a
    # failed lifespan with a traceback.
    engine = make_engine(settings.resolved_database_url)
    try:
        ensure_schema(engine, migrate=migrate)
    finally:
        engine.dispose()
    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), access_log=False, log_config=None,
                            lifespan="on")
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"dshub hub listening on http://{host}:{port}", file=sys.stderr, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal with the
    # previous handler; a no-op handler makes that a clean exit 0 for supervisors.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        lock.close()
    if not server.started:
        raise typer.Exit(1)


def _check_user_name(name: str) -> None:
    """A bad user name is a usage error (exit 2) with the rule in the message."""
    from dshub.errors import UsageError
    from dshub.refs import RefError, validate_user

    try:
        validate_user(name)
    except RefError as e:
        raise UsageError(str(e)) from e


@hub_app.command("create-user")
def create_user(
    name: str = typer.Argument(..., help="User name (lowercase letters, digits, '-', '_')."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an administrator."),
    data_dir: Optional[Path] = typer.Option(None, envvar="DSHUB_HUB_DATA_DIR", help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_DATABASE_URL", help="SQLAlchemy URL."),
) -> None:
    """Create a user and print its first API token (the last line of output)."""
    from sqlalchemy import select

    from dshub.errors import ConflictError
    from dshub.hub.db import UserRow
    from dshub.hub.security import create_token

    _check_user_name(name)
    with _open_db(data_dir, database_url) as db:
        if db.scalar(select(UserRow).where(UserRow.name == name)) is not None:
            raise ConflictError(f"user {name!r} already exists; use `dshub hub create-token {name}`")
        user = UserRow(name=name, is_admin=admin)
        db.add(user)
        db.flush()
        token = create_token(db, user)
        db.commit()
    print(f"Created {'admin ' if admin else ''}user {name}. API token (shown once):")
    print(token)


@hub_app.command("create-token")
def create_token_cmd(
    name: str = typer.Argument(..., help="Existing user name."),
    data_dir: Optional[Path] = typer.Option(None, envvar="DSHUB_HUB_DATA_DIR", help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_DATABASE_URL", help="SQLAlchemy URL."),
) -> None:
    """Create another API token for a user (printed as the last line)."""
    from sqlalchemy import select

    from dshub.errors import NotFoundError
    from dshub.hub.db import UserRow
    from dshub.hub.security import create_token

    _check_user_name(name)
    with _open_db(data_dir, database_url) as db:
        user = db.scalar(select(UserRow).where(UserRow.name == name))
        if user is None:
            raise NotFoundError(f"no user {name!r}; create it with `dshub hub create-user {name}`")
        token = create_token(db, user)
        db.commit()
    print(f"New API token for {name} (shown once):")
    print(token)


@hub_app.command("revoke-token")
def revoke_token_cmd(
    token: str = typer.Argument(
        ..., help="The token or its public id; '-' reads it from stdin (keeps it out of argv)."
    ),
    data_dir: Optional[Path] = typer.Option(None, envvar="DSHUB_HUB_DATA_DIR", help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_DATABASE_URL", help="SQLAlchemy URL."),
) -> None:
    """Revoke an API token: it stops working at once."""
    import sys

    from dshub.errors import NotFoundError, UsageError
    from dshub.hub.security import parse_token_or_public_id, revoke_token

    if token == "-":
        token = sys.stdin.readline().strip()
    public_id = parse_token_or_public_id(token)
    if public_id is None:
        raise UsageError("not a dshub token or token id (expected dshub_<id>_<secret> or the 16-hex id)")
    with _open_db(data_dir, database_url) as db:
        if not revoke_token(db, public_id):
            raise NotFoundError(f"no live token with id {public_id}")
        db.commit()
    print(f"Revoked token {public_id}.")



@hub_app.command("migrate")
def migrate_cmd(
    data_dir: Optional[Path] = typer.Option(None, envvar="DSHUB_HUB_DATA_DIR", help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, envvar="DSHUB_HUB_DATABASE_URL", help="SQLAlchemy URL."),
    sql: bool = typer.Option(False, "--sql", help="Print the SQL the upgrade would run; change nothing."),
) -> None:
    """Upgrade the hub's database schema to this version of dshub (run before starting it)."""
    from dshub.hub.db import make_engine
    from dshub.hub.schema import schema_state, upgrade, upgrade_sql

    url = _db_url(data_dir, database_url)
    engine = make_engine(url)
    try:
        state = schema_state(engine)
        if sql:
            if state.at_head:
                print(f"-- the database is at schema {state.head}: nothing to do")
            else:
                print(upgrade_sql(engine), end="")
            return
        if state.at_head:
            print(f"The database is up to date (schema {state.head}).")
            return
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    was = before or ("from before migrations" if state.has_tables else "empty")
    print(f"Migrated the database from {was} to schema {after}.")
