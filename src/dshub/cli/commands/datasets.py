"""``dshub ls``, ``dshub info``, ``dshub edit``, ``dshub rm``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, RefArg, YesOpt, examples
from dshub.errors import UsageError

if TYPE_CHECKING:
    from dshub.api.client import HubClient
    from dshub.cli.output import Output
    from dshub.cli.table import Column
    from dshub.library.client import Client
    from dshub.models import Dataset, FileEntry, UploadSession
    from dshub.refs import DatasetRef


LimitOpt = Annotated[
    int,
    typer.Option("--limit", "-n", metavar="N", help="Show at most N entries (pages are fetched lazily).", show_default="100"),
]


@app.command(
    "ls",
    epilog=examples(
        'dshub ls                               # datasets you can see',
        'dshub ls alice/taxi-data               # top level of the latest version',
        'dshub ls alice/taxi-data@v2:2024/ -r   # everything below 2024/ in v2',
        'dshub ls taxi-data -r -n 500 --cursor C  # the next 500, from where the last listing stopped',
        'dshub ls taxi-data --tree --all',
    ),
)
def ls(
    ref: Annotated[
        str | None,
        typer.Argument(metavar="REF", help="[OWNER/]NAME[@vN][:PATH] to list files; none lists datasets.", show_default=False),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="List every file below PATH.")] = False,
    tree: Annotated[bool, typer.Option("--tree", help="Show files below PATH as a tree (implies -r).")] = False,
    limit: LimitOpt = 100,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Show every entry (no --limit).")] = False,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", metavar="CURSOR", help="Continue a listing where the last one stopped (it prints the cursor).",
                     show_default=False),
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", metavar="NAME", help="Only datasets of this user.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", metavar="TEXT", help="Only datasets whose name/description match.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", metavar="TAG", help="Only datasets with this tag.")] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List datasets, or the files of one dataset version (one level at a time)."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_path=True) if ref else None
    if parsed is None and (recursive or tree):
        raise UsageError("--recursive/--tree list files: give a dataset, e.g. `dshub ls alice/data -r`")
    if limit < 1 and not all_:
        raise UsageError(f"--limit {limit}: give at least 1, or --all to list everything")
    page = Page(limit=None if all_ else limit, cursor=cursor)
    with connect(profile) as client:
        if parsed is None:
            _ls_datasets(client.hub, out, owner=owner, q=search, tag=tag, page=page)
        else:
            _ls_files(client.hub, out, client.ref(parsed), recursive=recursive or tree, tree=tree, page=page)


@dataclass(frozen=True)
class Page:
    """What of a listing to show: at most ``limit`` entries (None = all), from ``cursor`` on."""

    limit: int | None
    cursor: str | None = None

    def wants(self, have: int) -> bool:
        return self.limit is None or have < self.limit

    def left(self, have: int, page_max: int) -> int:
        return page_max if self.limit is None else min(self.limit - have, page_max)

    def more_hint(self, command: str, cursor: str) -> str:
        return f"… more entries: run `{command} --cursor {cursor}` for the next ones, or --all"


def _dataset_offset(cursor: str | None) -> int:
    # A dataset listing's cursor is how many datasets were shown before it: the hub pages
    # datasets by number, so a count is all it takes to go on.
    if cursor is None:
        return 0
    if not cursor.startswith("d") or not cursor[1:].isdigit():
        raise UsageError(f"--cursor {cursor!r}: not a cursor of a dataset listing (those look like d100)")
    return int(cursor[1:])


def _ls_datasets(client: HubClient, out: Output, *, owner: str | None, q: str | None, tag: str | None, page: Page) -> None:
    from dshub.models import DatasetList

    offset = _dataset_offset(page.cursor)
    page_size = 100
    number, skip = offset // page_size + 1, offset % page_size
    items: list[Dataset] = []
    total = 0
    while page.wants(len(items)):
        got: DatasetList = client.list_datasets(owner=owner, q=q, tag=tag, page=number, page_size=page_size)
        total = got.total
        items.extend(got.items[skip:])
        skip = 0
        if len(got.items) < page_size:
            break
        number += 1
    items = items if page.limit is None else items[: page.limit]
    shown = offset + len(items)
    result = DatasetList(items=items, total=total, page=1, page_size=len(items) or page_size)

    def human() -> None:
        if not items:
            out.info("No datasets yet. Upload one with `dshub upload ./folder` or create one with `dshub creds NAME --write`."
                     if not offset else "No more datasets.")
            return
        out.table(*_dataset_table(items))
        if total > shown:
            out.info(f"{total - shown} more. " + page.more_hint("dshub ls", f"d{shown}"))

    out.result(result, human)


def _dataset_table(items: list[Dataset]) -> tuple[list[Column], list[list[str]]]:
    from dshub.cli.table import Column
    from dshub.util.units import human_size, human_time

    columns = [Column(c, right=c in ("SIZE", "FILES")) for c in ("NAME", "OWNER", "VISIBILITY", "LATEST", "SIZE", "FILES", "UPDATED")]
    rows = [
        [
            d.name,
            d.owner,
            d.visibility.value,
            f"v{d.latest_version}" if d.latest_version else "-",
            human_size(d.size) if d.latest_version else "-",
            str(d.file_count) if d.latest_version else "-",
            human_time(d.updated_at),
        ]
        for d in items
    ]
    return columns, rows


def _ls_files(client: HubClient, out: Output, ref: DatasetRef, *, recursive: bool, tree: bool, page: Page) -> None:
    from dshub.models import FileList

    assert ref.owner is not None
    version = ref.version if ref.version is not None else client.get_version(ref.owner, ref.name, None).version
    prefix = f"{ref.path}/" if ref.path else ""
    # Page by hand rather than islice(iter_files): each request asks for no more than is
    # still to be shown, so a --limit 20 on a million-file version costs one small page.
    items: list[FileEntry] = []
    cursor = page.cursor
    while page.wants(len(items)):
        got = client.list_files(
            ref.owner, ref.name, version, prefix=prefix, recursive=recursive, limit=page.left(len(items), 1000), cursor=cursor
        )
        items.extend(got.items)
        cursor = got.next_cursor
        if not cursor or not got.items:
            cursor = None
            break
    result = FileList(items=items, next_cursor=cursor)
    where = f"{ref.owner}/{ref.name}@v{version}" + (f":{ref.path}" if ref.path else "")

    def human() -> None:
        if not items:
            out.info(f"{where}: no files" + (" here" if prefix else ""))
        elif tree:
            _print_tree(out, where, prefix, items)
        else:
            columns, rows, styles = _file_table(items, prefix)
            out.table(columns, rows, row_styles=styles, header=False)
        if cursor:
            flags = " --tree" if tree else (" -r" if recursive else "")
            out.info(page.more_hint(f"dshub ls {where}{flags} -n {page.limit}", cursor))

    out.result(result, human)


def _file_table(items: list[FileEntry], prefix: str) -> tuple[list[Column], list[list[str]], list[str | None]]:
    from dshub.cli.table import Column
    from dshub.util.units import human_size

    rows: list[list[str]] = []
    styles: list[str | None] = []
    for e in items:
        rel = e.path[len(prefix):] if e.path.startswith(prefix) else e.path
        if e.is_dir:
            files = f"{e.file_count} files" if e.file_count is not None else ""
            rows.append([human_size(e.size) if e.size else "-", files, rel.rstrip("/") + "/"])
            styles.append("bold blue")
        else:
            rows.append([human_size(e.size), "", rel])
            styles.append(None)
    return [Column("size", right=True), Column("files", right=True), Column("path")], rows, styles


def _print_tree(out: Output, where: str, prefix: str, items: list[FileEntry]) -> None:
    from rich.markup import escape
    from rich.tree import Tree

    from dshub.util.units import human_size

    root = Tree(escape(where), guide_style="dim")
    nodes: dict[str, Tree] = {"": root}
    for e in items:
        rel = e.path[len(prefix):] if e.path.startswith(prefix) else e.path
        parts = rel.strip("/").split("/")
        parent = ""
        for part in parts[:-1]:
            key = f"{parent}{part}/"
            if key not in nodes:
                nodes[key] = nodes[parent].add(f"[bold blue]{escape(part)}/[/]")
            parent = key
        label = escape(parts[-1]) + ("/" if e.is_dir else f"  [dim]{human_size(e.size)}[/]")
        key = f"{parent}{parts[-1]}/"
        if e.is_dir:
            if key not in nodes:
                nodes[key] = nodes[parent].add(f"[bold blue]{label}[/]")
        else:
            nodes[parent].add(label)
    out.out.print(root)


@app.command(
    epilog=examples(
        'dshub info alice/taxi-data',
        'dshub info taxi-data@v2 --json',
    )
)
def info(ref: RefArg, profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Show a dataset: metadata, versions, and how to download or open it."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.models import VersionList

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref)
    with connect(profile) as client:
        r = client.ref(parsed)
        ds = client.get_dataset(r)
        versions = VersionList(items=client.list_versions(r))
        open_sessions = _open_sessions(client, r, ds.owner)
    if r.version is not None and all(v.version != r.version for v in versions.items):
        from dshub.errors import NotFoundError

        raise NotFoundError(f"{ds.full_name} has no version v{r.version} (see `dshub info {ds.full_name}`)")

    def human() -> None:
        from rich.table import Table

        from dshub.util.units import human_size, human_time

        c = out.out
        c.print(f"[bold]{ds.full_name}[/]  ({ds.visibility.value})")
        if ds.description:
            c.print(ds.description, markup=False)
        meta = Table.grid(padding=(0, 2))
        meta.add_row("license", ds.license or "-")
        meta.add_row("tags", ", ".join(ds.tags) or "-")
        meta.add_row("created", human_time(ds.created_at))
        meta.add_row("updated", human_time(ds.updated_at))
        meta.add_row("latest", f"v{ds.latest_version}  ({human_size(ds.size)}, {ds.file_count} files)" if ds.latest_version else "no versions yet")
        c.print(meta)
        if versions.items:
            t = Table(title="versions", box=None, header_style="bold", title_justify="left")
            for col in ("VERSION", "SIZE", "NEW", "FILES", "CREATED", "UPLOADER"):
                t.add_column(col, justify="right" if col in ("SIZE", "NEW", "FILES") else "left", no_wrap=True)
            for v in versions.items:
                # NEW: what the version's upload added; the rest was carried from earlier ones.
                t.add_row(f"v{v.version}", human_size(v.size), human_size(v.new_bytes), str(v.file_count),
                          human_time(v.created_at), v.uploader)
            c.print(t)
            v = r.version or versions.items[0].version
            c.print("\n[bold]Download[/]")
            c.print(f"  dshub download {ds.full_name}@v{v}", markup=False)
            c.print("[bold]Python[/]")
            c.print(f'  import dshub; ds = dshub.open_dataset("{ds.full_name}@v{v}")', markup=False)
        else:
            c.print(f"\nNo versions yet: upload one with `dshub upload ./folder {ds.full_name}`", markup=False)
        if open_sessions:
            from dshub.cli.commands.sessions import print_sessions

            c.print("\n[bold]Open upload sessions[/] (re-run the upload to resume; `dshub abort REF` drops one)")
            print_sessions(out, open_sessions)

    out.result({"dataset": ds, "versions": versions.items, "sessions": open_sessions}, human)


def _open_sessions(client: Client, ref: DatasetRef, owner: str) -> list[UploadSession]:
    """Open upload sessions of a dataset the caller owns; none for someone else's (the hub would say 404)."""
    if owner != client.whoami().name:
        return []
    return client.sessions(ref.with_owner(owner).without_version())


@app.command(
    epilog=examples(
        "dshub edit taxi-data --description 'NYC taxi trips 2024' --tag nyc --tag transport",
        'dshub edit alice/taxi-data --untag draft --license CC-BY-4.0 --public',
    )
)
def edit(
    ref: RefArg,
    description: Annotated[str | None, typer.Option("--description", "-d", help="New description.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Add a tag (repeatable).")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove a tag (repeatable).")] = None,
    license_: Annotated[
        str | None,
        typer.Option("--license", metavar="SPDX_ID", help="SPDX licence id (CC-BY-4.0, CC0-1.0, ODbL-1.0, MIT, …) or LicenseRef-NAME."),
    ] = None,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="Make the dataset public or private.", show_default=False)
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a dataset's description, tags, licence or visibility."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_version=False)
    if description is None and not tag and not untag and license_ is None and public is None:
        raise UsageError("nothing to change: pass --description, --tag, --untag, --license, --public or --private")
    license_ = _spdx(license_)
    with connect(profile) as client:
        r = client.ref(parsed)
        tags = _new_tags(client.get_dataset(r).tags, tag or [], untag or []) if tag or untag else None
        visibility = None if public is None else ("public" if public else "private")
        ds = client.update_dataset(r, description=description, tags=tags, license=license_, visibility=visibility)
    out.result(ds, lambda: out.success(f"Updated {ds.full_name} ({ds.visibility.value}; tags: {', '.join(ds.tags) or '-'})"))


def _spdx(license_: str | None) -> str | None:
    """``--license`` as its SPDX id ("" clears the licence); exit 2 for an unknown one."""
    if not license_:
        return license_
    from dshub.util.spdx import check_license

    try:
        return check_license(license_)
    except ValueError as e:
        raise UsageError(f"--license: {e}") from None


def _new_tags(current: list[str], add: list[str], drop: list[str]) -> list[str]:
    """``current`` without ``drop``, then ``add`` in order, each tag once."""
    gone = set(drop)
    tags = [t for t in current if t not in gone]
    return tags + [t for t in dict.fromkeys(add) if t not in tags and t not in gone]


@app.command(
    epilog=examples(
        'dshub rm alice/old-data          # asks first',
        'dshub rm old-data --yes          # in scripts',
        'dshub rm alice/old-data@v2 --yes # one version; its number is not reused',
    )
)
def rm(ref: RefArg, yes: YesOpt = False, profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a dataset with all its versions and stored files, or one version with @vN (asks unless --yes)."""
    from dshub.cli.common import connect, parse_ref_arg
    from dshub.cli.output import Output
    from dshub.util.units import human_size

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref)
    with connect(profile) as client:
        r = client.ref(parsed)
        if r.version is not None or r.latest:
            v = client.get_version(r)
            out.confirm(
                f"Delete {v.owner}/{v.name}@v{v.version} ({v.file_count} files, {human_size(v.size)})? "
                "This cannot be undone",
                yes=yes,
                hint="pass --yes",
            )
            client.delete_version(r.with_version(v.version))
            out.result(v, lambda: out.success(f"Deleted {v.owner}/{v.name}@v{v.version} (v{v.version} is not reused)"))
            return
        ds = client.get_dataset(r)
        what = f"v{ds.latest_version}, {human_size(ds.size)} in the latest" if ds.latest_version else "no versions"
        out.confirm(f"Delete {ds.full_name} ({what}) and all its files? This cannot be undone", yes=yes, hint="pass --yes")
        client.delete_dataset(r)
    out.result(ds, lambda: out.success(f"Deleted {ds.full_name}"))
