"""The web pages: dataset list, dataset and folder pages, file page, sign-in, owner edits.

Route functions are thin, like the API's: access comes from ``service.load_dataset`` /
``service.require_owner`` (private datasets are 404 to everyone else), listings from
``service.list_files`` (keyset pages), changes from ``service.update_dataset``.
``WebRoute`` turns errors into HTML pages and adds the security headers to every answer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment
from pydantic import ValidationError
from sqlalchemy.orm import Session

from dshub.hub import service, sessions
from dshub.hub.db import VersionRow
from dshub.hub.deps import DbDep, RuntimeDep
from dshub.hub.errors import HubError, not_found
from dshub.hub.runtime import HubRuntime
from dshub.hub.security import authenticate, parse_token
from dshub.hub.web import auth
from dshub.hub.web.auth import AnyViewer, CheckedForm, PageViewer, SignInRequired, Viewer
from dshub.hub.web.preview import Preview, build_preview, image_type, sniff_image
from dshub.hub.web.query import SCOPES, SORTS, search_datasets
from dshub.hub.web.snippets import dataset_snippets, file_snippets
from dshub.models import DatasetUpdate, FileEntry, Visibility

STATIC = Path(__file__).parent / "static"
PAGE_SIZE = 25
TREE_PAGE = 200

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A file served from the store is never a page of this site, even if it holds HTML.
RAW_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"

_TITLES = {400: "Bad request", 401: "Sign-in failed", 403: "Not allowed", 404: "Not found", 413: "Too large",
           415: "Unsupported form", 422: "Invalid input", 503: "Unavailable"}


def security_headers(response: Response, *, csp: str = CSP) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", csp)
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "same-origin"
    h.setdefault("Cache-Control", "no-store")


def _templates(request: Request) -> Environment:
    env: Environment = request.app.state.web_templates
    return env


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``template`` with the viewer, the hub's settings and ``ctx``."""
    runtime: HubRuntime = request.app.state.hub
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    html = _templates(request).get_template(template).render(
        request_path=request.url.path,
        viewer=viewer,
        user=viewer.user if viewer else None,
        csrf_token=viewer.csrf_token if viewer else "",
        anonymous_read=runtime.settings.anonymous_read,
        **ctx,
    )
    return HTMLResponse(html, status_code=status_code)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status, title=_TITLES.get(status, "Error"), status=status, message=message)


def _finish(request: Request, response: Response) -> Response:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    if viewer is not None:
        if viewer.new_csrf_cookie and auth.CSRF_COOKIE not in response.headers.get("set-cookie", ""):
            auth.set_cookie(response, request, auth.CSRF_COOKIE, viewer.csrf_cookie, None)
        if viewer.stale_session:
            auth.clear_cookie(response, request, auth.SESSION_COOKIE)
    security_headers(response)
    return response


class WebRoute(APIRoute):
    """A page route: HubError → an HTML error page with its status, sign-in redirects,
    security headers on every response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await inner(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
            except HubError as e:
                response = error_page(request, e.status, e.message)
            except RequestValidationError as e:
                first = e.errors()[0] if e.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                response = error_page(request, 422, f"invalid request: {where}: {first.get('msg', 'invalid')}")
            response = _finish(request, response)
            # What the page cost the hub (browsers show it; scripts/bench_web.py reads it).
            response.headers["Server-Timing"] = f"page;dur={(time.perf_counter() - started) * 1000:.1f}"
            return response

        return handler


router = APIRouter(route_class=WebRoute, include_in_schema=False)


# --- static files -----------------------------------------------------------------------

_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str


def load_static() -> dict[str, StaticFile]:
    """The few static files, read once per app."""
    return {
        p.name: StaticFile(p.read_bytes(), _STATIC_TYPES.get(p.suffix, "application/octet-stream"))
        for p in STATIC.iterdir()
        if p.is_file()
    }


@router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    f = request.app.state.web_static.get(name)
    if f is None:
        raise not_found(f"static file {name!r}")
    return Response(f.body, media_type=f.media_type, headers={"Cache-Control": "public, max-age=3600"})


# --- sign-in ----------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only paths of this site: ``/x``, never ``//evil`` or ``https://…``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


@router.get("/signin")
def signin_page(request: Request, viewer: AnyViewer, next: Annotated[str, Query(max_length=2000)] = "/") -> Response:
    return render(request, "signin.html", title="Sign in", next=_safe_next(next), error="")


@router.post("/signin")
def signin(request: Request, form: CheckedForm, db: DbDep) -> Response:
    token = form.get("token", "").strip()
    target = _safe_next(form.get("next"))
    user = authenticate(db, token) if token else None
    parsed = parse_token(token)
    if user is None or parsed is None:
        return render(request, "signin.html", 401, title="Sign in", next=target,
                      error="Token rejected: it is wrong, revoked or malformed. "
                            "Create one with `dshub hub create-token NAME` on the hub.")
    response = RedirectResponse(target, status_code=303)
    auth.set_cookie(response, request, auth.SESSION_COOKIE, token, auth.SESSION_MAX_AGE)
    # A fresh CSRF secret per sign-in: a field seen before it is worth nothing after.
    auth.set_cookie(response, request, auth.CSRF_COOKIE, secrets.token_urlsafe(32), None)
    return response


@router.post("/signout")
def signout(request: Request, form: CheckedForm) -> Response:
    response = RedirectResponse("/", status_code=303)
    auth.clear_cookie(response, request, auth.SESSION_COOKIE)
    auth.set_cookie(response, request, auth.CSRF_COOKIE, secrets.token_urlsafe(32), None)
    return response


# --- dataset list -----------------------------------------------------------------------


@router.get("/")
def dataset_list(
    request: Request,
    db: DbDep,
    viewer: PageViewer,
    q: Annotated[str, Query(max_length=200)] = "",
    tag: Annotated[str, Query(max_length=50)] = "",
    sort: Annotated[str, Query(max_length=20)] = "updated",
    scope: Annotated[str, Query(max_length=20)] = "all",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    result = search_datasets(db, viewer.user, q=q, tag=tag, scope=scope, sort=sort, page=page, page_size=PAGE_SIZE)

    def link(**change: Any) -> str:
        params = {"q": q, "tag": tag, "sort": sort, "scope": scope, "page": page, **change}
        keep = {k: v for k, v in params.items() if v not in ("", None) and not (k == "page" and v == 1)
                and not (k == "sort" and v == "updated") and not (k == "scope" and v == "all")}
        return "/" + (f"?{urlencode(keep)}" if keep else "")

    return render(request, "list.html", title="Datasets", result=result, q=q, tag=tag, sort=sort, scope=scope,
                  sorts=SORTS, scopes=SCOPES if viewer.user else ("all",), link=link)


# --- dataset and folder pages -------------------------------------------------------------


def _crumbs(path: str) -> list[tuple[str, str]]:
    """``a/b/c`` → ``[("a", "a"), ("b", "a/b"), ("c", "a/b/c")]``."""
    parts = [p for p in path.split("/") if p]
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def _base(ctx: service.DatasetCtx) -> str:
    return f"/datasets/{quote(ctx.owner, safe='')}/{quote(ctx.row.name, safe='')}"


def _dataset_view(
    request: Request, db: Session, runtime: HubRuntime, viewer: Viewer, owner: str, name: str,
    v: str, path: str, cursor: str | None,
) -> Response:
    ctx = service.load_dataset(db, viewer.user, owner, name)
    ds = service.dataset_out(db, ctx)
    versions = service.list_versions(db, ctx).items
    owned = service.is_owner(viewer.user, ctx.row)
    open_sessions = sessions.list_sessions(runtime, db, ctx).items if owned else []
    base = _base(ctx)
    vrow: VersionRow | None = None
    items: list[FileEntry] = []
    next_cursor: str | None = None
    if versions or v != "latest":
        vrow = service.resolve_version(db, ctx, v)
        listing = service.list_files(db, vrow, prefix=path, recursive=False, limit=TREE_PAGE, cursor=cursor)
        path = path.strip("/")
        if path and len(listing.items) == 1 and not listing.items[0].is_dir and listing.items[0].path == path:
            return RedirectResponse(f"{base}/file/v{vrow.number}/{quote(path, safe='/')}", status_code=303)
        items, next_cursor = listing.items, listing.next_cursor
    snippets = (
        dataset_snippets(ctx.owner, ctx.row.name, vrow.number, runtime.settings.bucket, vrow.prefix) if vrow else []
    )
    return render(
        request, "dataset.html", title=f"{ctx.owner}/{ctx.row.name}", ds=ds, versions=versions, version=vrow,
        latest=versions[0].version if versions else None, items=items, next_cursor=next_cursor, path=path,
        crumbs=_crumbs(path), base=base, owned=owned, sessions=open_sessions, snippets=snippets,
        visibilities=[x.value for x in Visibility], edit_error="", cursor=cursor,
    )


Cursor = Annotated[str | None, Query(max_length=4096)]


@router.get("/datasets/{owner}/{name}")
def dataset_page(
    request: Request, owner: str, name: str, db: DbDep, runtime: RuntimeDep, viewer: PageViewer,
    cursor: Cursor = None,
) -> Response:
    return _dataset_view(request, db, runtime, viewer, owner, name, "latest", "", cursor)


@router.get("/datasets/{owner}/{name}/tree/{v}")
@router.get("/datasets/{owner}/{name}/tree/{v}/{path:path}")
def folder_page(
    request: Request, owner: str, name: str, v: str, db: DbDep, runtime: RuntimeDep, viewer: PageViewer,
    path: str = "", cursor: Cursor = None,
) -> Response:
    return _dataset_view(request, db, runtime, viewer, owner, name, v, path, cursor)


# --- file page, download, image -------------------------------------------------------------


def _file(db: Session, viewer: Viewer, owner: str, name: str, v: str, path: str
          ) -> tuple[service.DatasetCtx, VersionRow, FileEntry]:
    """The dataset, version and file entry of a file URL; 404 for a folder or nothing."""
    ctx = service.load_dataset(db, viewer.user, owner, name)
    vrow = service.resolve_version(db, ctx, v)
    path = path.strip("/")
    if not path:
        raise not_found("file")
    listing = service.list_files(db, vrow, prefix=path, recursive=False, limit=1, cursor=None)
    entry = listing.items[0] if listing.items else None
    if entry is None or entry.is_dir or entry.path != path:
        raise not_found(f"file {path!r} in v{vrow.number}")
    return ctx, vrow, entry


def _key(vrow: VersionRow, path: str) -> str:
    return vrow.prefix.rstrip("/") + "/" + path


@router.get("/datasets/{owner}/{name}/file/{v}/{path:path}")
def file_page(
    request: Request, owner: str, name: str, v: str, path: str, db: DbDep, runtime: RuntimeDep, viewer: PageViewer,
) -> Response:
    ctx, vrow, entry = _file(db, viewer, owner, name, v, path)
    ds = service.dataset_out(db, ctx)
    key = _key(vrow, entry.path)
    try:
        store = runtime.storage()
        preview = build_preview(entry.path, entry.size, lambda start, n: store.read_range(key, start, n))
    except HubError:
        raise
    except Exception as e:  # the store is down or lost the object: the page still shows the rest
        preview = Preview(kind="none", note=f"could not read the file from the store ({type(e).__name__})")
    base = _base(ctx)
    parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
    return render(
        request, "file.html", title=f"{entry.path} · {ctx.owner}/{ctx.row.name}", ds=ds, version=vrow,
        entry=entry, preview=preview, base=base, crumbs=_crumbs(entry.path), parent=parent,
        snippets=file_snippets(ctx.owner, ctx.row.name, vrow.number, entry.path),
        image=image_type(entry.path, entry.size) is not None and preview.kind == "image",
    )


def _stream(runtime: HubRuntime, key: str) -> Iterator[bytes]:
    """The object's chunks; the first is read before the response starts so a missing
    object is an error page, not a truncated download."""
    it = runtime.storage().iter_object(key)
    try:
        first = next(it, b"")
    except Exception as e:
        raise HubError(503, "unavailable", f"could not read the file from the store ({type(e).__name__})") from e
    return chain((first,), it)


def _disposition(kind: str, path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/datasets/{owner}/{name}/raw/{v}/{path:path}")
def download(
    request: Request, owner: str, name: str, v: str, path: str, db: DbDep, runtime: RuntimeDep, viewer: PageViewer,
) -> Response:
    _ctx, vrow, entry = _file(db, viewer, owner, name, v, path)
    body = _stream(runtime, _key(vrow, entry.path))
    response = StreamingResponse(body, media_type="application/octet-stream", headers={
        "Content-Length": str(entry.size), "Content-Disposition": _disposition("attachment", entry.path)})
    security_headers(response, csp=RAW_CSP)
    return response


@router.get("/datasets/{owner}/{name}/image/{v}/{path:path}")
def image(
    request: Request, owner: str, name: str, v: str, path: str, db: DbDep, runtime: RuntimeDep, viewer: PageViewer,
) -> Response:
    _ctx, vrow, entry = _file(db, viewer, owner, name, v, path)
    mime = image_type(entry.path, entry.size)
    if mime is None:
        raise not_found("image preview")
    data = runtime.storage().read_range(_key(vrow, entry.path), 0, entry.size)
    if not sniff_image(mime, data[:16]):
        raise HubError(415, "unsupported_media_type", f"{entry.path} is not a {mime} image")
    response = Response(data, media_type=mime, headers={"Content-Disposition": _disposition("inline", entry.path)})
    security_headers(response, csp=RAW_CSP)
    return response


# --- owner actions --------------------------------------------------------------------------


def _update_from_form(form: dict[str, str]) -> DatasetUpdate:
    tags = [t.strip() for t in form.get("tags", "").replace("\n", ",").split(",") if t.strip()]
    vis = form.get("visibility", "")
    if vis not in [x.value for x in Visibility]:
        raise HubError(422, "invalid", f"visibility must be one of {', '.join(x.value for x in Visibility)}")
    try:
        return DatasetUpdate(
            description=form.get("description", "").replace("\r\n", "\n"),
            tags=tags,
            license=form.get("license", "").strip(),
            visibility=Visibility(vis),
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise HubError(422, "invalid", f"{where}: {first.get('msg', 'invalid')}") from e


@router.post("/datasets/{owner}/{name}/edit")
def edit_dataset(
    request: Request, owner: str, name: str, form: CheckedForm, db: DbDep, viewer: PageViewer,
) -> Response:
    ctx = service.load_dataset(db, viewer.user, owner, name)
    service.require_owner(viewer.user, ctx)
    body = _update_from_form(form)
    service.update_dataset(request.app.state.hub, db, ctx, body)
    return RedirectResponse(_base(ctx), status_code=303)
