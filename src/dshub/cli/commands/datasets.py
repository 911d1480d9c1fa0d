"""``dshub ls``, ``dshub info``, ``dshub edit``, ``dshub rm``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, RefArg, YesOpt, examples
from dshub.errors import UsageError

if TYPE_CHECKING:
    from dshub.api.client import HubClient
    from dshub.cli.output import Output
    from dshub.models import DatasetList, FileEntry
    from dshub.refs import DatasetRef


@app.command(
    "ls",
    epilog=examples(
        'dshub ls                               # datasets you can see',
        'dshub ls alice/taxi-data               # top level of the latest version',
        'dshub ls alice/taxi-data@v2:2024/ -r   # everything below 2024/ in v2',
        'dshub ls taxi-data --tree --limit 200',
    ),
)
def ls(
    ref: Annotated[
        str | None,
        typer.Argument(metavar="REF", help="[OWNER/]NAME[@vN][:PATH] to list files; none lists datasets.", show_default=False),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="List every file below PATH.")] = False,
    tree: Annotated[bool, typer.Option("--tree", help="Show files below PATH as a tree (implies -r).")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show at most this many entries (pages are fetched lazily).")
    ] = 100,
    owner: Annotated[str | None, typer.Option("--owner", help="Only datasets of this user.")] = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="Only datasets whose name/description match.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only datasets with this tag.")] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List datasets, or the files of one dataset version (one level at a time)."""
    from dshub.api.auth import resolve_client
    from dshub.cli.common import parse_ref_arg, with_owner
    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_path=True) if ref else None
    if parsed is None and (recursive or tree):
        raise UsageError("--recursive/--tree list files: give a dataset, e.g. `dshub ls alice/data -r`")
    with resolve_client(profile) as client:
        if parsed is None:
            _ls_datasets(client, out, owner=owner, q=search, tag=tag, limit=limit)
        else:
            _ls_files(client, out, with_owner(client, parsed), recursive=recursive or tree, tree=tree, limit=limit)


def _ls_datasets(client: HubClient, out: Output, *, owner: str | None, q: str | None, tag: str | None, limit: int) -> None:
    from dshub.models import DatasetList

    page_size = min(limit, 100)
    first: DatasetList = client.list_datasets(owner=owner, q=q, tag=tag, page=1, page_size=page_size)
    items = list(first.items)
    page = 1
    while len(items) < min(limit, first.total) and len(items) == page * page_size:
        page += 1
        nxt = client.list_datasets(owner=owner, q=q, tag=tag, page=page, page_size=page_size)
        if not nxt.items:
            break
        items.extend(nxt.items)
    items = items[:limit]
    result = DatasetList(items=items, total=first.total, page=1, page_size=len(items) or page_size)

    def human() -> None:
        from dshub.cli.table import Column
        from dshub.util.units import human_size, human_time

        if not items:
            out.info("No datasets yet. Upload one with `dshub upload ./folder` or create one with `dshub creds NAME --write`.")
            return
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
        out.table(columns, rows)
        if first.total > len(items):
            out.info(f"… {first.total - len(items)} more; use --limit, --owner, --search or --tag")

    out.result(result, human)


def _ls_files(client: HubClient, out: Output, ref: DatasetRef, *, recursive: bool, tree: bool, limit: int) -> None:
    from dshub.models import FileList

    assert ref.owner is not None
    version = ref.version if ref.version is not None else client.get_version(ref.owner, ref.name, None).version
    prefix = f"{ref.path}/" if ref.path else ""
    # Page by hand rather than islice(iter_files): each request asks for no more than is
    # still to be shown, so a --limit 20 on a million-file version costs one small page.
    items: list[FileEntry] = []
    cursor: str | None = None
    while len(items) < limit:
        page = client.list_files(
            ref.owner, ref.name, version, prefix=prefix, recursive=recursive, limit=min(limit - len(items), 1000), cursor=cursor
        )
        items.extend(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            cursor = None
            break
    items = items[:limit]
    result = FileList(items=items, next_cursor=cursor)
    where = f"{ref.owner}/{ref.name}@v{version}" + (f":{ref.path}" if ref.path else "")

    def human() -> None:
        from dshub.util.units import human_size

        if not items:
            out.info(f"{where}: no files" + (" here" if prefix else ""))
            return
        if tree:
            _print_tree(out, where, prefix, items)
        else:
            from dshub.cli.table import Column

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
            columns = [Column("size", right=True), Column("files", right=True), Column("path")]
            out.table(columns, rows, row_styles=styles, header=False)
        if cursor:
            out.info(f"… more entries in {where}; raise --limit (now {limit}) to see them")

    out.result(result, human)


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
    from dshub.api.auth import resolve_client
    from dshub.cli.common import parse_ref_arg, with_owner
    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref)
    with resolve_client(profile) as client:
        r = with_owner(client, parsed)
        assert r.owner is not None
        ds = client.get_dataset(r.owner, r.name)
        versions = client.list_versions(r.owner, r.name)
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
            for col in ("VERSION", "SIZE", "FILES", "CREATED", "UPLOADER"):
                t.add_column(col, justify="right" if col in ("SIZE", "FILES") else "left", no_wrap=True)
            for v in versions.items:
                t.add_row(f"v{v.version}", human_size(v.size), str(v.file_count), human_time(v.created_at), v.uploader)
            c.print(t)
            v = r.version or versions.items[0].version
            c.print("\n[bold]Download[/]")
            c.print(f"  dshub download {ds.full_name}@v{v}", markup=False)
            c.print("[bold]Python[/]")
            c.print(f'  import dshub; ds = dshub.open_dataset("{ds.full_name}@v{v}")', markup=False)
        else:
            c.print(f"\nNo versions yet: upload one with `dshub upload ./folder {ds.full_name}`", markup=False)

    out.result({"dataset": ds, "versions": versions.items}, human)


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
    license_: Annotated[str | None, typer.Option("--license", help="SPDX licence id, e.g. CC-BY-4.0.")] = None,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="Make the dataset public or private.", show_default=False)
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a dataset's description, tags, licence or visibility."""
    from dshub.api.auth import resolve_client
    from dshub.cli.common import parse_ref_arg, with_owner
    from dshub.cli.output import Output
    from dshub.models import DatasetUpdate, Visibility

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_version=False)
    if description is None and not tag and not untag and license_ is None and public is None:
        raise UsageError("nothing to change: pass --description, --tag, --untag, --license, --public or --private")
    with resolve_client(profile) as client:
        r = with_owner(client, parsed)
        assert r.owner is not None
        tags = None
        if tag or untag:
            current = client.get_dataset(r.owner, r.name).tags
            drop = set(untag or [])
            tags = [t for t in current if t not in drop]
            tags += [t for t in dict.fromkeys(tag or []) if t not in tags and t not in drop]
        body = DatasetUpdate(
            description=description,
            tags=tags,
            license=license_,
            visibility=None if public is None else (Visibility.public if public else Visibility.private),
        )
        ds = client.update_dataset(r.owner, r.name, body)
    out.result(ds, lambda: out.success(f"Updated {ds.full_name} ({ds.visibility.value}; tags: {', '.join(ds.tags) or '-'})"))


@app.command(
    epilog=examples(
        'dshub rm alice/old-data          # asks first',
        'dshub rm old-data --yes          # in scripts',
    )
)
def rm(ref: RefArg, yes: YesOpt = False, profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a dataset with all its versions and stored files (asks unless --yes)."""
    from dshub.api.auth import resolve_client
    from dshub.cli.common import parse_ref_arg, with_owner
    from dshub.cli.output import Output
    from dshub.util.units import human_size

    out = Output(json_mode=json_out)
    parsed = parse_ref_arg(ref, allow_version=False)
    with resolve_client(profile) as client:
        r = with_owner(client, parsed)
        assert r.owner is not None
        ds = client.get_dataset(r.owner, r.name)
        what = f"v{ds.latest_version}, {human_size(ds.size)} in the latest" if ds.latest_version else "no versions"
        out.confirm(f"Delete {ds.full_name} ({what}) and all its files? This cannot be undone", yes=yes, hint="pass --yes")
        client.delete_dataset(r.owner, r.name)
    out.result(ds, lambda: out.success(f"Deleted {ds.full_name}"))
