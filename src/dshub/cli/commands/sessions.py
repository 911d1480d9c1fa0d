"""``dshub sessions`` and ``dshub abort``: see and drop open upload sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, YesOpt, examples

if TYPE_CHECKING:
    from dshub.cli.output import Output
    from dshub.models import UploadSession


def _span(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 86400}d {s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h {s % 3600 // 60:02d}m"


def session_rows(items: list[UploadSession]) -> list[list[str]]:
    """Table rows of open sessions: dataset, id, age, what they hold, time left."""
    from datetime import datetime, timezone

    from dshub.util.units import human_size

    now = datetime.now(timezone.utc)

    def utc(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    rows = []
    for s in items:
        held = "-" if s.stored_files is None else f"{s.stored_files} files, {human_size(s.stored_bytes or 0)}"
        age = _span((now - utc(s.created_at)).total_seconds())
        left = _span((utc(s.expires_at) - now).total_seconds())
        rows.append([f"{s.owner}/{s.name}", s.id, age, held, left])
    return rows


SESSION_COLUMNS = ("SESSION FOR", "ID", "AGE", "STORED", "EXPIRES IN")


def print_sessions(out: Output, items: list[UploadSession]) -> None:
    """The open sessions as an aligned table on stdout."""
    from dshub.cli.table import Column

    out.table([Column(c, right=c in ("AGE", "STORED", "EXPIRES IN")) for c in SESSION_COLUMNS], session_rows(items))


@app.command(
    epilog=examples(
        "dshub sessions                      # open upload sessions of all your datasets",
        "dshub sessions taxi-data --json",
    )
)
def sessions(
    ref: Annotated[
        str | None,
        typer.Argument(metavar="REF", help="[OWNER/]NAME: only this dataset's sessions.", show_default=False),
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List open upload sessions: their dataset, id, age, and what each holds so far."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.models import SessionList

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref) if ref else None
    with connect(profile) as client:
        items = client.sessions(parsed)

    def human() -> None:
        if not items:
            out.info("No open upload sessions.")
            return
        print_sessions(out, items)
        out.info("Resume one by running its `dshub upload` again; drop one with `dshub abort REF`.")

    out.result(SessionList(items=items), human)


@app.command(
    epilog=examples(
        "dshub abort taxi-data               # asks first",
        "dshub abort alice/taxi-data@v4 --yes",
        "dshub abort 3f2a9c1e-…-… --yes      # by session id (see `dshub sessions`)",
    )
)
def abort(
    target: Annotated[
        str,
        typer.Argument(metavar="REF|SESSION", help="[OWNER/]NAME[@vN] or a session id.", show_default=False),
    ],
    yes: YesOpt = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Abort an open upload session: revoke its credentials and delete what it uploaded (asks unless --yes)."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.library.client import is_session_id

    out = Output(json_mode=json_out)
    what = target if is_session_id(target) else parse_ref_arg(target)
    with connect(profile) as client:
        s = client.find_session(what)
        held = "" if s.stored_files is None else f" ({s.stored_files} files uploaded so far)"
        out.confirm(
            f"Abort the upload session {s.id} of {s.owner}/{s.name}{held} and delete what it uploaded?",
            yes=yes,
            hint="pass --yes",
        )
        client.abort(s)
    out.result(s, lambda: out.success(f"Aborted upload session {s.id} of {s.owner}/{s.name}"))


@app.command(
    "commit",
    epilog=examples(
        "dshub creds taxi-data --write --format env      # then upload with rclone, aws, boto3 …",
        "dshub commit taxi-data --dry-run                # what the session holds",
        "dshub commit taxi-data                          # publish it as the next version",
        "dshub commit 3f2a9c1e-…-… --json                # by session id (see `dshub sessions`)",
    ),
)
def commit_cmd(
    target: Annotated[
        str,
        typer.Argument(metavar="REF|SESSION", help="[OWNER/]NAME or a session id.", show_default=False),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be published; publish nothing.")] = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Publish an open upload session as it stands (filled with rclone or any S3 tool): the
    hub lists its files, hashes them and publishes them as the next version."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.library.client import is_session_id
    from dshub.util.units import human_size

    out = Output(json_mode=json_out)
    what = target if is_session_id(target) else parse_ref_arg(target, allow_version=False)
    with connect(profile) as client:
        s = client.find_session(what)
        if dry_run:
            staged = client.staged(s)

            def listing() -> None:
                from dshub.cli.table import Column

                out.table([Column("SIZE", right=True), Column("PATH")], [[human_size(o.size), o.path] for o in staged.items])
                out.info(f"Would publish {staged.files} files, {human_size(staged.bytes)} of session {s.id} "
                         f"as the next version of {s.owner}/{s.name}")

            out.result(staged, listing)
            return
        v = client.commit_staged(s)
    out.result(v, lambda: out.success(
        f"Published {v.owner}/{v.name}@v{v.version}: {v.file_count} files, {human_size(v.size)} (hashed by the hub)"
    ))
