"""``dshub upload``, ``dshub download``, ``dshub cat``: thin skins over dshub.transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, YesOpt, examples

if TYPE_CHECKING:
    from dshub.cli.output import Output
    from dshub.library.client import Client
    from dshub.refs import DatasetRef
    from dshub.transfer.upload import UploadResult

IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        metavar="GLOB",
        help="Only files matching this rclone glob (repeatable; `*.csv`, `2022/**`).",
        show_default=False,
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        metavar="GLOB",
        help="Leave out files matching this rclone glob (repeatable; checked first).",
        show_default=False,
    ),
]
TransfersOpt = Annotated[
    int, typer.Option("--transfers", min=1, max=256, help="Files transferred in parallel.")
]
BwlimitOpt = Annotated[
    str | None,
    typer.Option("--bwlimit", metavar="RATE", help="Bandwidth limit, rclone syntax (`10M`, `512k`).", show_default=False),
]


PartSizeOpt = Annotated[
    str,
    typer.Option(
        "--part-size", metavar="SIZE",
        help="Files of two parts or more go in parts of this size (5M to 5G); each finished "
        "part survives an interruption, a re-run moves only the missing ones.",
    ),
]


def _part_bytes(text: str) -> int:
    from dshub.errors import UsageError
    from dshub.transfer.upload_options import check_part_size
    from dshub.util.units import parse_size

    try:
        n = parse_size(text)
    except ValueError as e:
        raise UsageError(f"--part-size: {e}") from None
    check_part_size(n)
    return n


PublicOpt = Annotated[
    bool | None,
    typer.Option("--public/--private", help="Visibility (new dataset default: private).", show_default=False),
]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", metavar="TEXT", help="Dataset description.", show_default=False)
]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", metavar="TAG", help="Dataset tag (repeatable).", show_default=False)
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Scan and show what would be uploaded; send nothing.")]
NewSessionOpt = Annotated[
    bool, typer.Option("--new-session", help="Abort the open upload session (deleting its files) and start over.")
]


@app.command(
    "upload",
    epilog=examples(
        "dshub upload ./taxi-data                       # → <you>/taxi-data, next version",
        "dshub upload ./taxi-data alice/taxi --public --tag nyc",
        "dshub upload ./data --include '*.csv' --exclude 'tmp/**'",
        "dshub upload ./data --json                     # CI: one JSON document on stdout",
    ),
)
def upload_cmd(
    path: Annotated[str, typer.Argument(metavar="PATH", help="File or folder to upload.", show_default=False)],
    ref: Annotated[
        str | None,
        typer.Argument(metavar="REF", help="[OWNER/]NAME (default: <you>/<folder name>).", show_default=False),
    ] = None,
    public: PublicOpt = None,
    description: DescriptionOpt = None,
    tag: TagOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    dry_run: DryRunOpt = False,
    transfers: TransfersOpt = 8,
    new_session: NewSessionOpt = False,
    bwlimit: BwlimitOpt = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session", metavar="ID",
            help="Resume this open upload session (e.g. a CI retry on a new machine); "
            "by default a re-run of the same folder resumes its own.",
            show_default=False,
        ),
    ] = None,
    part_size: PartSizeOpt = "64M",
    yes: YesOpt = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Upload a file or folder as the next version of a dataset; re-run to resume."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.cli.progress import make_renderer
    from dshub.models import Visibility
    from dshub.transfer.upload import UploadOptions

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_version=False) if ref else None
    part_bytes = _part_bytes(part_size)
    opts = UploadOptions(
        part_size=part_bytes,
        description=description,
        tags=tag or (),
        visibility=None if public is None else (Visibility.public if public else Visibility.private),
        include=include or (),
        exclude=exclude or (),
        dry_run=dry_run,
        transfers=transfers,
        new_session=new_session,
        bwlimit=bwlimit,
        session=session,
        remove_others=yes,
    )
    with connect(profile) as client:
        if new_session and not dry_run:
            _confirm_new_session(client, out, path, parsed, yes=yes)
        render = make_renderer(out)
        try:
            res = client.upload(path, parsed, options=opts, on_event=render)
        finally:
            render.close()
    out.result(res.to_dict(), lambda: _upload_summary(out, res))


def _confirm_new_session(client: Client, out: Output, path: str, parsed: DatasetRef | None, *, yes: bool) -> None:
    """Ask before ``--new-session`` drops an open session (and what it uploaded)."""
    from dshub.errors import NotFoundError
    from dshub.refs import DatasetRef
    from dshub.transfer.upload import default_name

    target = client.ref(parsed or DatasetRef(name=default_name(path)))
    try:
        open_ = client.sessions(target)
    except NotFoundError:
        open_ = []
    if open_:
        out.confirm(
            f"Abort your open upload session of {target.owner}/{target.name} "
            "and delete what it uploaded?",
            yes=yes,
            hint="pass --yes to abort the open session",
        )


def _upload_summary(out: Output, res: UploadResult) -> None:
    from dshub.util.units import human_size

    if res.name_normalised_from:
        out.info(f"Dataset name {res.owner}/{res.name} (from folder name {res.name_normalised_from!r})")
    if res.status == "dry_run":
        out.info(f"Dry run: would upload {res.files} files, {human_size(res.bytes)} to {res.owner}/{res.name}")
        return
    if res.status == "up_to_date":
        out.success(f"{res.ref} is up to date ({res.files} files, {human_size(res.bytes)}); nothing uploaded")
        return
    speed = f"{human_size(int(res.throughput))}/s" if res.sent_bytes else "-"
    resumed = f", {res.skipped_files} already uploaded before" if res.skipped_files else ""
    if res.kept_parts:
        resumed += f", {res.kept_parts} parts of big files kept from before"
    carried = ""
    if res.carried_files:
        sources = ", ".join(f"v{v}" for v in res.carried_from)
        carried = f"carried {res.carried_files} files ({human_size(res.carried_bytes)}) from {sources}, "
    out.success(
        f"Published {res.ref}: {res.files} files, {human_size(res.bytes)} in {res.seconds:.1f}s "
        f"({carried}sent {res.sent_files} files, {human_size(res.sent_bytes)} at {speed}{resumed})"
    )
    out.info(f"Download it with: dshub download {res.ref}")


@app.command(
    "download",
    epilog=examples(
        "dshub download alice/taxi-data                 # latest version into ./taxi-data",
        "dshub download alice/taxi-data@v2 /data/taxi --include '2022/**'",
        "dshub download alice/taxi-data --force         # overwrite local files that differ",
    ),
)
def download_cmd(
    ref: Annotated[str, typer.Argument(metavar="REF", help="[OWNER/]NAME[@vN][:PATH].", show_default=False)],
    dest: Annotated[
        str | None,
        typer.Argument(
            metavar="DEST", help="Folder to download into (default: ./NAME).", show_default=False
        ),
    ] = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite local files whose content differs.")
    ] = False,
    transfers: TransfersOpt = 8,
    bwlimit: BwlimitOpt = None,
    part_size: PartSizeOpt = "64M",
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Download a dataset version (or part of it); re-run to resume, verified against the manifest."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.cli.progress import make_renderer
    from dshub.util.units import human_size

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_path=True)
    part_bytes = _part_bytes(part_size)
    render = make_renderer(out)
    with connect(profile) as client:
        try:
            res = client.download(
                parsed,
                dest or parsed.name,
                include=include or (),
                exclude=exclude or (),
                force=force,
                transfers=transfers,
                bwlimit=bwlimit,
                part_size=part_bytes,
                on_event=render,
            )
        finally:
            render.close()

    def human() -> None:
        skipped = f", {res.skipped_files} already there" if res.skipped_files else ""
        if res.kept_parts:
            skipped += f", {res.kept_parts} ranges of big files kept from before"
        out.success(
            f"Downloaded {res.ref} to {res.dest}: {res.files} files, {human_size(res.bytes)} "
            f"in {res.seconds:.1f}s (fetched {res.fetched_files}{skipped}; each file checked against the manifest)"
        )

    out.result(res.to_dict(), human)


@app.command(
    "cat",
    epilog=examples(
        "dshub cat alice/taxi-data:2022/01.csv | head",
        "dshub cat alice/taxi-data@v1:2022/01.csv > jan.csv",
    ),
)
def cat_cmd(
    ref: Annotated[
        str,
        typer.Argument(metavar="REF:PATH", help="[OWNER/]NAME[@vN]:PATH of one file.", show_default=False),
    ],
    profile: ProfileOpt = None,
) -> None:
    """Stream one file of a dataset version to stdout (nothing is written to disk)."""
    import os
    import sys

    from dshub.cli.common import connect, parse_ref_arg
    from dshub.transfer.download import cat

    parsed = parse_ref_arg(ref, allow_path=True)
    with connect(profile) as client:
        cat(client.hub, parsed, sys.stdout.buffer)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`| head`): not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
