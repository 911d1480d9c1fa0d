"""``dshub creds`` and ``dshub rclone-config``: hand the scoped credentials to other tools."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, RefArg, examples
from dshub.errors import UsageError

if TYPE_CHECKING:
    from dshub.library.client import Client
    from dshub.models import Credentials, Location
    from dshub.refs import DatasetRef


class CredsFormat(str, Enum):
    table = "table"
    json = "json"
    env = "env"
    rclone = "rclone"
    aws = "aws"
    credential_process = "credential-process"


WriteOpt = Annotated[
    bool,
    typer.Option(
        "--write/--read",
        help="--write: credentials of an upload session (opened or resumed; creates the dataset if "
        "missing). --read: read-only credentials of a version (latest unless @vN).",
    ),
]


@dataclass
class Grant:
    """Credentials with what they are for, whichever hub call produced them."""

    model: Any  # ReadGrant | UploadSession, what --json prints
    owner: str
    name: str
    version: int | None  # None: write credentials, for the version the commit will get
    access: str  # "read" | "write"
    location: Location
    credentials: Credentials
    note: str = ""


def get_grant(client: Client, ref: DatasetRef, *, write: bool) -> Grant:
    """What ``dshub creds`` shows: the library's :meth:`Client.creds`, with what it was for."""
    from dshub.models import ReadGrant

    if write and (ref.version is not None or ref.latest):
        raise UsageError("--write opens an upload session for the next version: drop the @vN")
    g = client.creds(ref, write=write)
    if isinstance(g, ReadGrant):
        return Grant(g, g.owner, g.name, g.version, "read", g.location, g.credentials)
    assert g.credentials is not None  # Client.creds raises otherwise
    what = "resumed" if g.resumed else "opened"
    note = f"{what} upload session {g.id} for {g.owner}/{g.name}"
    return Grant(g, g.owner, g.name, g.version, "write", g.location, g.credentials, note)


def _expires_in(g: Grant) -> str:
    from datetime import datetime, timezone

    from dshub.util.units import human_time

    exp = g.credentials.expiry
    if exp.tzinfo is None:
        exp = exp.replace(tzinfo=timezone.utc)
    mins = int((exp - datetime.now(timezone.utc)).total_seconds() // 60)
    return f"{human_time(exp)} (in {mins} min)" if mins >= 0 else f"{human_time(exp)} (expired)"


@app.command(
    epilog=examples(
        'dshub creds alice/taxi-data                       # read, latest version, as a table',
        'eval "$(dshub creds alice/taxi-data@v2 --format env)" && rclone ls dshub:BUCKET/PREFIX/',
        'dshub creds taxi-data --write --format json       # upload session credentials',
        'credential_process = dshub creds alice/taxi-data --format credential-process   (in ~/.aws/config)',
    )
)
def creds(
    ref: RefArg,
    write: WriteOpt = False,
    fmt: Annotated[CredsFormat, typer.Option("--format", "-f", help="Output format.")] = CredsFormat.table,
    remote: Annotated[
        str, typer.Option("--remote", help="Remote name for --format env/rclone (AWS profile name for --format aws).")
    ] = "dshub",
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print short-lived S3 credentials scoped to a dataset, for rclone, the AWS tools or by hand."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.library import creds_format as cf

    if json_out:
        fmt = CredsFormat.json
    out = Output(json_mode=fmt is CredsFormat.json)
    parsed = parse_ref_arg(ref)
    if fmt is CredsFormat.env:
        cf.validate_remote_name(remote, for_env=True)
    elif fmt is CredsFormat.rclone:
        cf.validate_remote_name(remote)
    with connect(profile) as client:
        g = get_grant(client, parsed, write=write)
    if g.note and fmt is not CredsFormat.credential_process:
        out.info(g.note)
    loc, c = g.location, g.credentials
    if fmt is CredsFormat.json:
        out.result(g.model)
    elif fmt is CredsFormat.env:
        out.raw(cf.format_env(loc, c, remote))
    elif fmt is CredsFormat.rclone:
        out.raw(cf.format_rclone_section(loc, c, remote))
    elif fmt is CredsFormat.aws:
        out.raw(cf.format_aws_profile(loc, c, remote))
    elif fmt is CredsFormat.credential_process:
        out.raw(cf.format_credential_process(c))
    else:
        _print_table(out, g, ref, write, remote)


def _print_table(out: Any, g: Grant, ref: str, write: bool, remote: str) -> None:
    import shlex

    from dshub.library import creds_format as cf

    c = out.out
    which = f"@v{g.version}" if g.version is not None else " (next version)"
    c.print(f"[bold]{g.access.capitalize()} credentials[/] for {g.owner}/{g.name}{which}, expire {_expires_in(g)}", soft_wrap=True)
    # Plain "label  value" lines, not a Rich table: an STS session token is ~1 kB and a
    # table would crop or fold it, breaking copy and paste.
    for label, value in cf.table_rows(g.location, g.credentials):
        c.print(f"[bold]{label:<18}[/] ", end="", soft_wrap=True)
        c.print(value, markup=False, soft_wrap=True, highlight=False)
    path = cf.remote_path(remote, g.location)
    flag = " --write" if write else ""
    # The remote is defined by environment variables, so no secret ever lands in argv.
    c.print("\n[bold]Use with rclone[/]", soft_wrap=True)
    c.print(f"  eval \"$(dshub creds {shlex.quote(ref)}{flag} --format env --remote {remote})\"", markup=False, soft_wrap=True)
    if write:
        c.print(f"  rclone copy ./folder {path}", markup=False, soft_wrap=True)
    else:
        c.print(f"  rclone ls {path}", markup=False, soft_wrap=True)
        c.print(f"  rclone copy {path} ./folder", markup=False, soft_wrap=True)
    if write:
        c.print(
            "Files sent this way are published only by a commit: `dshub upload` commits the session for you.",
            markup=False,
            soft_wrap=True,
        )


@app.command(
    "rclone-config",
    epilog=examples(
        'dshub rclone-config alice/taxi-data                 # asks on a terminal',
        'dshub rclone-config alice/taxi-data@v2 --remote taxi && rclone ls taxi:BUCKET/PREFIX/',
        'dshub rclone-config taxi-data --write --remote taxi-up --config ./rclone.conf',
    ),
)
def rclone_config(
    ref: RefArg,
    remote: Annotated[str | None, typer.Option("--remote", help="Remote name (default dshub-NAME).")] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="rclone config file (default: $RCLONE_CONFIG or rclone's).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="S3 region (default: the hub's, us-east-1).")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="S3 endpoint URL (default: the hub's).")] = None,
    write: WriteOpt = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write (or update) an rclone remote with credentials for a dataset, in rclone's config file (0600)."""
    from pathlib import Path

    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.library import creds_format as cf

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref)
    ask = out.interactive and not json_out and remote is None and config is None and region is None and endpoint is None
    if remote is not None:
        cf.validate_remote_name(remote)
    with connect(profile) as client:
        g = get_grant(client, parsed, write=write)
    if g.note:
        out.info(g.note)
    if ask:
        remote, region, endpoint = _ask_remote(out, g)
    remote = remote or f"dshub-{g.name}"
    loc = g.location.model_copy(
        update={"region": region or g.location.region or "us-east-1", "endpoint": endpoint or g.location.endpoint}
    )
    path = Path(config).expanduser() if config else cf.default_rclone_config_path()
    updated = cf.write_rclone_remote(path, remote, cf.rclone_options(loc, g.credentials))
    rpath = cf.remote_path(remote, loc)
    result = {
        "remote": remote, "config_path": str(path), "remote_path": rpath, "updated": updated, "access": g.access,
        "owner": g.owner, "name": g.name, "version": g.version, "location": loc, "expiry": g.credentials.expiry,
    }
    out.result(result, lambda: _rclone_config_done(out, g, remote, path, rpath, config=config, write=write,
                                                   updated=updated))


def _ask_remote(out: Any, g: Grant) -> tuple[str, str, str | None]:
    """Remote name, region and endpoint, asked on the terminal with the hub's values as defaults."""
    from dshub.library import creds_format as cf

    loc = g.location
    remote = out.prompt("rclone remote name", default=f"dshub-{g.name}")
    cf.validate_remote_name(remote)
    region = out.prompt("S3 region", default=loc.region or "us-east-1")
    endpoint = out.prompt("S3 endpoint", default=loc.endpoint or "") if loc.endpoint else None
    return remote, region, endpoint


def _rclone_config_done(
    out: Any, g: Grant, remote: str, path: Any, rpath: str, *, config: str | None, write: bool, updated: bool
) -> None:
    import shlex

    cfg = "" if not config else f" --config {shlex.quote(str(path))}"
    out.success(f"{'Updated' if updated else 'Added'} rclone remote {remote!r} in {path} (mode 0600)")
    lines = [f"rclone{cfg} ls {rpath}"]
    if write:
        lines.append(f"rclone{cfg} copy ./folder {rpath}")
    else:
        lines.append(f"rclone{cfg} copy {rpath} ./folder")
    out.info("Next:")
    for line in lines:
        out.out.print(f"  {line}", markup=False, soft_wrap=True)
    if write:
        out.info("Files sent this way are published by a commit: `dshub upload` does it for you.")
    out.info(f"Credentials expire {_expires_in(g)}; run this command again to refresh them.")
