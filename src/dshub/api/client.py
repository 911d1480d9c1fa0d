"""``HubClient``: the one place dshub talks HTTP to a hub.

Every response goes through :func:`raise_for_hub_status`, the single place where HTTP
failures become typed :mod:`dshub.errors` exceptions (the role of huggingface_hub's
``hf_raise_for_status``), and every successful body is parsed into a model of
:mod:`dshub.models`, so callers never see raw JSON or ``httpx`` exceptions.

Transient failures (connection errors, timeouts, 429/502/503/504) are retried with
exponential backoff by ``httpx_retries.RetryTransport``. Requests that are not idempotent
(create a dataset, commit a session) are retried only when the connection could not be
established, i.e. when the hub cannot have seen them.

The token is sent as ``Authorization: Bearer``; it never appears in exception text or in
log records (httpx logs URLs, never headers).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from httpx_retries import Retry, RetryTransport
from pydantic import BaseModel, TypeAdapter, ValidationError

from dshub.version import __version__
from dshub.errors import (
    AuthError,
    CommitRefusedError,
    ConflictError,
    HubResponseError,
    HubUnreachableError,
    NotFoundError,
    PermissionDeniedError,
    SessionExpiredError,
    TransferError,
    UsageError,
)
from dshub.models import (
    API_PREFIX,
    CarryPlan,
    StagedList,
    CommitRequest,
    Dataset,
    DatasetCreate,
    DatasetList,
    DatasetUpdate,
    ErrorBody,
    FileEntry,
    FileList,
    HubInfo,
    ManifestEntry,
    ReadGrant,
    SessionList,
    SessionOpen,
    UploadSession,
    User,
    Version,
    VersionList,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"dshub/{__version__}"
# Every method: PATCH/PUT/DELETE are idempotent here, and the POSTs sent with the default
# policy (read credentials, open-or-resume a session, refresh) return the same result when
# repeated. Non-idempotent POSTs pass `_ConnectOnlyRetry` per request instead.
_ALL_METHODS = ("HEAD", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "POST")
_BACKOFF_FACTOR = 0.25
_MAX_BACKOFF = 8.0


class _ConnectOnlyRetry(Retry):
    """Retry only failures where the request never reached the hub (connect errors).

    ``Retry(status_forcelist=[])`` falls back to the default status list, so the status
    check is switched off by overriding it instead.
    """

    def is_retryable_status_code(self, status_code: int) -> bool:
        return False


def normalise_hub_url(url: str) -> str:
    """Return ``url`` without trailing slash or API prefix; raise UsageError if it has no scheme."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"hub URL {display_url(url)!r} is not an http(s) URL: "
            "use e.g. http://localhost:8080 or https://hub.example.org"
        )
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def display_url(url: str) -> str:
    """``url`` with any ``user:password@`` removed, safe for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# Manifests above this many entries go as NDJSON, which the hub parses as it streams: the
# JSON routes take 32 MiB (~200,000 entries) and build one document of models first.
NDJSON_ABOVE = 20_000
_NDJSON_HEADERS = {"Content-Type": "application/x-ndjson"}


def _ndjson(files: list[ManifestEntry]) -> bytes:
    """The manifest as NDJSON: one compact ``ManifestEntry`` object a line."""
    return b"".join(e.model_dump_json(exclude_none=True).encode() + b"\n" for e in files)


def _seg(value: str | int) -> str:
    """One URL path segment, fully escaped (a name can never smuggle a '/' or '?')."""
    return quote(str(value), safe="")


def _error_body(resp: httpx.Response) -> ErrorBody | None:
    try:
        return ErrorBody.model_validate_json(resp.content)
    except (ValidationError, ValueError):
        return None


def raise_for_hub_status(resp: httpx.Response, hub_url: str) -> None:
    """Raise the dshub error matching a failed hub response; return if it succeeded.

    The hub's ``ErrorBody`` code and message are kept (``exc.code``); anything that is not
    a well-formed ``ErrorBody`` with a 4xx status counts as an unexpected response.
    """
    if resp.is_success:
        return
    status = resp.status_code
    hub = display_url(hub_url)
    body = _error_body(resp)
    code = body.error.code if body else None
    msg = body.error.message.strip() if body else ""
    details = body.error.details if body else None

    if status == 401:
        raise AuthError(f"token rejected by {hub}", code=code or "unauthorized")
    if status == 507 and body is not None:
        # The hub ran out of room (joining a big file's parts): retry once it has some.
        raise TransferError(msg or f"the hub at {hub} has no room left", code=code, details=details)
    if body is None or status >= 500:
        what = resp.headers.get("content-type", "no content type").split(";")[0]
        raise HubResponseError(
            f"hub returned an unexpected response (HTTP {status}, {what}) from {hub}",
            code=code,
        )
    if status == 403:
        raise PermissionDeniedError(
            f"permission denied: {msg or 'the hub refused this request'}",
            code=code,
        )
    if status == 404:
        raise NotFoundError(msg or "not found", code=code)
    if status == 409:
        raise ConflictError(msg or "conflict with the hub's state", code=code, details=details)
    if status == 410:
        raise SessionExpiredError(
            msg or "upload session expired",
            code=code or "session_expired",
        )
    if status == 422 and code == "manifest_mismatch":
        raise CommitRefusedError(
            msg or "storage does not match the manifest",
            code=code,
            details=details,
        )
    if status == 429:
        raise HubResponseError(f"hub at {hub} is busy (HTTP 429)", code=code or "rate_limited")
    # 400 / 422 and other 4xx: the request itself was wrong (name, path, body).
    raise UsageError(msg or f"hub refused the request (HTTP {status})", code=code, details=details)


def _transport_for(base_url: str) -> httpx.HTTPTransport:
    """The network transport. A plain-http hub never negotiates TLS (redirects are not
    followed), so its transport skips loading the CA bundle, a visible part of every
    command's start-up. https hubs verify certificates as usual."""
    if base_url.startswith("http://"):
        return httpx.HTTPTransport(verify=False)
    return httpx.HTTPTransport()


@functools.cache
def _manifest_adapter() -> TypeAdapter[list[ManifestEntry]]:
    """Validator of a JSON array of manifest entries (built on first use: ~ms)."""
    return TypeAdapter(list[ManifestEntry])


class HubClient:
    """Typed client of the hub's REST API (``docs/api.md``).

    >>> with HubClient("http://localhost:8080", token) as hub:   # doctest: +SKIP
    ...     hub.whoami().name
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Create a client of the hub at ``base_url`` (``http(s)://host[:port]``).

        ``transport`` replaces the network transport (tests pass ``httpx.MockTransport``);
        it is wrapped by the retry transport either way.
        """
        self.base_url = normalise_hub_url(base_url)
        self._token = token
        self._retries = retries
        self._connect_only = _ConnectOnlyRetry(
            total=retries,
            allowed_methods=_ALL_METHODS,
            retry_on_exceptions=(httpx.ConnectError, httpx.ConnectTimeout),
            backoff_factor=_BACKOFF_FACTOR,
            max_backoff_wait=_MAX_BACKOFF,
        )
        retry = Retry(
            total=retries,
            allowed_methods=_ALL_METHODS,
            backoff_factor=_BACKOFF_FACTOR,
            max_backoff_wait=_MAX_BACKOFF,
        )
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=RetryTransport(transport=transport or _transport_for(self.base_url), retry=retry),
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show the token
        return f"HubClient({display_url(self.base_url)!r}, token={'<hidden>' if self._token else None})"

    @property
    def token(self) -> str | None:
        """The API token, for handing to a child process's environment (never print it)."""
        return self._token

    @property
    def has_token(self) -> bool:
        """True when the client sends a token."""
        return bool(self._token)

    # --- plumbing -----------------------------------------------------------------------

    def _unreachable(self, e: httpx.HTTPError) -> HubUnreachableError:
        hub = display_url(self.base_url)
        if isinstance(e, httpx.TimeoutException):
            why = "no answer in time"
        elif isinstance(e, httpx.ConnectError):
            why = "connection failed"
        else:
            why = type(e).__name__
        return HubUnreachableError(f"cannot reach hub at {hub}: {why}", code="hub_unreachable")

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        extensions = {} if idempotent else {"retry": self._connect_only}
        try:
            resp = self._http.request(method, path, params=params, json=json, content=content, headers=headers,
                                      extensions=extensions)
        except httpx.HTTPError as e:
            # `from None`: httpx's exception text holds only the URL, but keep tracebacks
            # (--debug) short and free of request internals.
            raise self._unreachable(e) from None
        raise_for_hub_status(resp, self.base_url)
        return resp

    def _parse(self, resp: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(resp.content)
        except ValidationError:
            raise HubResponseError(
                f"hub returned an unexpected response to {resp.request.method} "
                f"{resp.request.url.path} (not a valid {model.__name__}) from "
                f"{display_url(self.base_url)}: is the hub a compatible dshub version?"
            ) from None

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._parse(self._request("GET", path, params=clean or None), model)

    @staticmethod
    def _ds(owner: str, name: str) -> str:
        return f"/datasets/{_seg(owner)}/{_seg(name)}"

    @staticmethod
    def _v(version: int | None) -> str:
        return "latest" if version is None else _seg(version)

    # --- hub and user -------------------------------------------------------------------

    def info(self) -> HubInfo:
        """What the hub is and its clock (no auth needed)."""
        return self._get("/info", HubInfo)

    def whoami(self) -> User:
        """The user the token belongs to; AuthError if the hub rejects it."""
        return self._get("/whoami", User)

    # --- datasets -----------------------------------------------------------------------

    def list_datasets(
        self,
        *,
        owner: str | None = None,
        q: str | None = None,
        tag: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> DatasetList:
        """One page of the datasets visible to the caller."""
        return self._get("/datasets", DatasetList, owner=owner, q=q, tag=tag, page=page, page_size=page_size)

    def create_dataset(self, body: DatasetCreate) -> Dataset:
        """Create a dataset owned by the caller; ConflictError if the name exists."""
        resp = self._request("POST", "/datasets", json=body.model_dump(mode="json"), idempotent=False)
        return self._parse(resp, Dataset)

    def get_dataset(self, owner: str, name: str) -> Dataset:
        """Metadata of one dataset; NotFoundError if it does not exist or is not visible."""
        return self._get(self._ds(owner, name), Dataset)

    def update_dataset(self, owner: str, name: str, body: DatasetUpdate) -> Dataset:
        """Change the fields set in ``body`` (None fields are left unchanged)."""
        resp = self._request(
            "PATCH", self._ds(owner, name), json=body.model_dump(mode="json", exclude_none=True)
        )
        return self._parse(resp, Dataset)

    def delete_dataset(self, owner: str, name: str) -> None:
        """Delete a dataset, its versions and stored objects."""
        self._request("DELETE", self._ds(owner, name))

    # --- versions and files -------------------------------------------------------------

    def list_versions(self, owner: str, name: str) -> VersionList:
        """Committed versions, newest first."""
        return self._get(f"{self._ds(owner, name)}/versions", VersionList)

    def get_version(self, owner: str, name: str, version: int | None) -> Version:
        """One committed version; ``None`` = the latest."""
        return self._get(f"{self._ds(owner, name)}/versions/{self._v(version)}", Version)

    def delete_version(self, owner: str, name: str, version: int) -> None:
        """Delete one committed version and its stored objects (owner only)."""
        self._request("DELETE", f"{self._ds(owner, name)}/versions/{self._v(version)}", idempotent=False)

    def list_files(
        self,
        owner: str,
        name: str,
        version: int,
        *,
        prefix: str = "",
        recursive: bool = False,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> FileList:
        """One page of a version's file listing (one directory level unless ``recursive``)."""
        return self._get(
            f"{self._ds(owner, name)}/versions/{self._v(version)}/files",
            FileList,
            prefix=prefix or None,
            recursive="true" if recursive else "false",
            limit=limit,
            cursor=cursor,
        )

    def iter_files(
        self,
        owner: str,
        name: str,
        version: int,
        *,
        prefix: str = "",
        recursive: bool = False,
        page_size: int = 1000,
    ) -> Iterator[FileEntry]:
        """All entries of a listing, fetching the next page only when the caller gets there."""
        cursor: str | None = None
        while True:
            page = self.list_files(
                owner, name, version, prefix=prefix, recursive=recursive, limit=page_size, cursor=cursor
            )
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def iter_manifest(self, owner: str, name: str, version: int) -> Iterator[ManifestEntry]:
        """Stream the manifest of a version (NDJSON), one entry at a time."""
        path = f"{self._ds(owner, name)}/versions/{self._v(version)}/manifest"
        try:
            with self._http.stream("GET", path, headers={"Accept": "application/x-ndjson"}) as resp:
                if not resp.is_success:
                    resp.read()
                    raise_for_hub_status(resp, self.base_url)
                # Whole lines of each network chunk are validated in one call (as a JSON
                # array): a model_validate_json per line cost 2-3x more for 10,000 lines.
                rest = b""
                for chunk in resp.iter_bytes():
                    rest += chunk
                    cut = rest.rfind(b"\n")
                    if cut >= 0:
                        yield from self._manifest_lines(rest[:cut], owner, name, version)
                        rest = rest[cut + 1 :]
                yield from self._manifest_lines(rest, owner, name, version)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None

    def _manifest_lines(self, block: bytes, owner: str, name: str, version: int) -> list[ManifestEntry]:
        lines = [line for line in block.split(b"\n") if line.strip()]
        if not lines:
            return []
        try:
            return _manifest_adapter().validate_json(b"[" + b",".join(lines) + b"]")
        except ValidationError:
            raise HubResponseError(
                f"hub returned an unexpected manifest line for {owner}/{name}@v{version} "
                f"from {display_url(self.base_url)}"
            ) from None

    def read_credentials(self, owner: str, name: str, version: int) -> ReadGrant:
        """Read-only credentials scoped to one committed version."""
        resp = self._request("POST", f"{self._ds(owner, name)}/versions/{self._v(version)}/credentials")
        return self._parse(resp, ReadGrant)

    # --- upload sessions ----------------------------------------------------------------

    def list_sessions(self, owner: str, name: str) -> SessionList:
        """Open upload sessions of a dataset (without credentials)."""
        return self._get(f"{self._ds(owner, name)}/sessions", SessionList)

    def list_my_sessions(self) -> SessionList:
        """Open upload sessions of every dataset the caller owns (without credentials)."""
        return self._get("/sessions", SessionList)

    def open_session(self, owner: str, name: str, body: SessionOpen | None = None) -> UploadSession:
        """Open an upload session, or resume the open one (``resume=True``, the default)."""
        body = body or SessionOpen()
        # Open-or-resume is idempotent; a concurrent or non-resuming open is not.
        idempotent = body.resume and not body.concurrent
        resp = self._request(
            "POST", f"{self._ds(owner, name)}/sessions", json=body.model_dump(mode="json"), idempotent=idempotent
        )
        return self._parse(resp, UploadSession)

    def get_session(self, session_id: str) -> UploadSession:
        """State of a session (no credentials)."""
        return self._get(f"/sessions/{_seg(session_id)}", UploadSession)

    def refresh_session(self, session_id: str) -> UploadSession:
        """New credentials for an open session, same scope."""
        resp = self._request("POST", f"/sessions/{_seg(session_id)}/refresh")
        return self._parse(resp, UploadSession)

    def carry_session(self, session_id: str, files: list[ManifestEntry]) -> CarryPlan:
        """Tell the hub the manifest about to be committed; it answers which entries it
        fills itself from the dataset's committed versions (those need not be sent)."""
        resp = self._post_manifest(f"/sessions/{_seg(session_id)}/carry", CommitRequest(files=files))
        return self._parse(resp, CarryPlan)

    def staged(self, session_id: str) -> StagedList:
        """What an open session's staging area holds now."""
        return self._get(f"/sessions/{_seg(session_id)}/staged", StagedList)

    def commit_session(self, session_id: str, files: list[ManifestEntry], *, from_staging: bool = False) -> Version:
        """Publish the session's files as the next version; CommitRefusedError on a mismatch.
        ``from_staging``: publish what staging holds (no ``files``; the hub hashes it)."""
        body = CommitRequest(files=files, from_staging=from_staging)
        resp = self._post_manifest(f"/sessions/{_seg(session_id)}/commit", body, idempotent=False)
        return self._parse(resp, Version)

    def _post_manifest(self, path: str, body: CommitRequest, *, idempotent: bool = True) -> httpx.Response:
        """POST a manifest to ``path``: as NDJSON to ``path/ndjson`` above NDJSON_ABOVE
        entries (the hub streams it), else as one JSON document."""
        if len(body.files) > NDJSON_ABOVE and not body.from_staging:
            return self._request("POST", path + "/ndjson", content=_ndjson(body.files), headers=_NDJSON_HEADERS,
                                 idempotent=idempotent)
        return self._request("POST", path, json=body.model_dump(mode="json"), idempotent=idempotent)

    def abort_session(self, session_id: str) -> None:
        """Abort a session: revoke its credentials and delete its objects."""
        self._request("DELETE", f"/sessions/{_seg(session_id)}")

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
