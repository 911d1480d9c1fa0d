"""Request bodies: authenticate first, then read at most a capped number of bytes.

FastAPI reads and parses a route's JSON body before it runs the dependencies that check
the token, and it has no size limit: tokenless 88 MB POSTs each made the hub parse 88 MB
to answer 401 (measured: 201 MB → 1310 MB after four). This ASGI middleware runs before
any of that, for every API request that carries a body:

1. a request without a valid bearer token gets 401 without a byte of its body read
   (a route that takes a body always needs a user);
2. a declared ``Content-Length`` over the route's cap gets 413 at once; a body without
   one (chunked) is counted as it streams and cut with 413 at the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
from starlette.exceptions import HTTPException as StarletteHTTPException

from dshub.hub.errors import HubError, error_response
from dshub.hub.runtime import HubRuntime
from dshub.hub.security import authenticate
from dshub.models import API_PREFIX

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A commit's manifest, or the same manifest sent to plan carrying (about 150 bytes an
# entry: ~200,000 entries); everything else is a few small fields.
MAX_COMMIT_BODY = 32 * 1024 * 1024
# The NDJSON commit is parsed as it streams (about 3.5 million entries).
MAX_NDJSON_COMMIT_BODY = 512 * 1024 * 1024
MAX_BODY = 64 * 1024
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def body_cap(path: str) -> int:
    """The largest body the hub reads for ``path``."""
    if path.endswith(("/commit/ndjson", "/carry/ndjson")):
        return MAX_NDJSON_COMMIT_BODY
    return MAX_COMMIT_BODY if path.endswith(("/commit", "/carry")) else MAX_BODY


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive`` at the cap: FastAPI passes HTTP exceptions through its body
    parsing (others become 400), and the hub's handler renders it as ``too_large``."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, _too_large_message(cap), headers={"Connection": "close"})


def _too_large_message(cap: int) -> str:
    return f"request body larger than {cap:,} bytes, the limit of this route"


class BodyGuard:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, runtime: HubRuntime) -> None:
        self.app = app
        self._runtime = runtime

    def _token_ok(self, token: str, address: str) -> bool:
        """Check the token (and the failed-authentication limit of ``address``)."""
        limiter = self._runtime.auth_limiter
        limiter.check(address)
        with self._runtime.sessionmaker() as db:
            ok = authenticate(db, token) is not None
        if not ok:
            limiter.failed(address)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not str(
            scope["path"]
        ).startswith(API_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = chunked or (declared is not None and declared.strip() not in ("", "0"))
        if not has_body:
            await self.app(scope, receive, send)
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        client = scope.get("client")
        address = str(client[0]) if client else "?"
        try:
            ok = scheme.lower() == "bearer" and bool(token) and await anyio.to_thread.run_sync(
                self._token_ok, token, address
            )
        except HubError as e:  # over the failed-authentication limit
            await error_response(e.status, e.code, e.message, headers={**(e.headers or {}), "Connection": "close"})(
                scope, receive, send
            )
            return
        if not ok:
            await error_response(
                401, "unauthorized",
                "a valid token is required before the hub reads a request body; "
                "run `dshub login` (or set DSHUB_TOKEN) with a valid token",
                headers={"Connection": "close"},
            )(scope, receive, send)
            return
        cap = body_cap(str(scope["path"]))
        try:
            size = int(declared) if declared is not None else None
        except ValueError:
            size = None
        if size is not None and size > cap:
            await self._too_large(scope, receive, send, cap)
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _TooLarge(cap)
            return message

        await self.app(scope, capped_receive, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        await error_response(
            413, "too_large", _too_large_message(cap),
            headers={"Connection": "close"},
        )(scope, receive, send)
