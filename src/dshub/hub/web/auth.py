"""Who is browsing, and CSRF protection of the pages' forms.

Sign-in puts the API token in an HttpOnly, SameSite=Strict cookie (Secure over https):
page scripts cannot read it and other sites cannot send it. Each page request
authenticates it the way the API authenticates a bearer token (``security.authenticate``),
so a revoked token signs the browser out at once.

CSRF: every browser gets a random ``dshub_csrf`` cookie (HttpOnly, SameSite=Strict); a
form carries ``HMAC(cookie, "form:" + token id)``. Another site can neither read the
cookie nor compute the field, and a field copied from one browser or session is worth
nothing in another. A POST also has to come from this origin when the browser says
where it comes from (``Origin``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request, Response

from dshub.hub.db import UserRow
from dshub.hub.deps import DbDep, RuntimeDep
from dshub.hub.errors import HubError
from dshub.hub.security import authenticate, parse_token

SESSION_COOKIE = "dshub_session"
CSRF_COOKIE = "dshub_csrf"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE = 14 * 86_400
# A form of the pages is a few short fields; anything bigger is not one of ours.
MAX_FORM_BYTES = 64 * 1024


class SignInRequired(Exception):
    """The page needs a signed-in user (a hub without ``--anonymous-read``); the route
    class turns it into a redirect to the sign-in page."""


@dataclass
class Viewer:
    """The browser's user (None: a visitor) and its CSRF cookie value."""

    user: UserRow | None
    csrf_cookie: str
    new_csrf_cookie: bool
    token_public_id: str = ""
    stale_session: bool = False

    @property
    def csrf_token(self) -> str:
        """The value every form of this page carries."""
        return csrf_for(self.csrf_cookie, self.token_public_id)


def csrf_for(cookie: str, token_public_id: str) -> str:
    return hmac.new(cookie.encode(), f"form:{token_public_id}".encode(), hashlib.sha256).hexdigest()


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=is_https(request), httponly=True, samesite="strict"
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", secure=is_https(request), httponly=True, samesite="strict")


_CSRF_COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def _valid_csrf_cookie(value: str | None) -> bool:
    """Only a value this hub could have made (``token_urlsafe``) is taken as the secret."""
    return value is not None and _CSRF_COOKIE_RE.fullmatch(value) is not None


def get_viewer(request: Request, db: DbDep) -> Viewer:
    """The browser's user from its session cookie; a visitor without one (or with a dead one)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    new = not _valid_csrf_cookie(cookie)
    if new:
        cookie = secrets.token_urlsafe(32)
    assert cookie is not None
    viewer = Viewer(user=None, csrf_cookie=cookie, new_csrf_cookie=new)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        user = authenticate(db, token)
        parsed = parse_token(token)
        if user is None or parsed is None:
            viewer.stale_session = True
        else:
            viewer.user = user
            viewer.token_public_id = parsed.public_id
    request.state.viewer = viewer
    return viewer


def get_page_viewer(viewer: Annotated[Viewer, Depends(get_viewer)], runtime: RuntimeDep) -> Viewer:
    """Like :func:`get_viewer`, but a hub without anonymous reads wants a signed-in user."""
    if viewer.user is None and not runtime.settings.anonymous_read:
        raise SignInRequired()
    return viewer


AnyViewer = Annotated[Viewer, Depends(get_viewer)]
PageViewer = Annotated[Viewer, Depends(get_page_viewer)]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not every browser sends it on a same-origin POST
        return True
    host = request.headers.get("host", "")
    return origin == f"{request.url.scheme}://{host}"


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form POST (first value of each), bounded in size."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not ctype and request.headers.get("content-length", "0") == "0":
        return {}  # a form without fields (a browser sends none only for an empty form)
    if ctype != "application/x-www-form-urlencoded":
        raise HubError(415, "unsupported_media_type", "send the form as application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise HubError(413, "too_large", f"form larger than {MAX_FORM_BYTES // 1024} KiB")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise HubError(413, "too_large", f"form larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=50, errors="strict")
    except (UnicodeDecodeError, ValueError) as e:
        raise HubError(400, "invalid", "malformed form data") from e
    out = {k: v[0] for k, v in fields.items()}
    if any("\x00" in v for v in out.values()):
        raise HubError(422, "invalid", "a form field contains a NUL byte")
    return out


async def checked_form(request: Request, viewer: AnyViewer) -> dict[str, str]:
    """A form POST whose CSRF field matches this browser's cookie and session; 403 otherwise."""
    if not _same_origin(request):
        raise HubError(403, "forbidden", "form sent from another site; reload the page and try again")
    form = await read_form(request)
    sent = form.pop(CSRF_FIELD, "")
    if viewer.new_csrf_cookie or not hmac.compare_digest(sent.encode(), viewer.csrf_token.encode()):
        raise HubError(403, "forbidden", "the form's CSRF token is missing or stale; reload the page and try again")
    return form


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]
