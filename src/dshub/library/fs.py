"""``dshub://`` — an fsspec filesystem over the datasets of a dshub hub.

URLs are ``dshub://OWNER/NAME[@vN]/PATH``. Without ``@vN`` the filesystem asks the hub
for the latest version **once per filesystem instance** and pins it, and every path it
returns (``ls``, ``find``, ``glob``) carries the pinned version, so a Dask job that expands
``dshub://alice/taxi-data/*/*.csv`` on the client reads exactly that version on every
worker, even if ``v3`` is published half-way through.

fsspec keeps one instance per set of options for the whole process, so the pin lasts as
long as the process unless refreshed: ``fs.invalidate_cache()`` (or
``invalidate_cache("alice/taxi-data")`` for one dataset) drops the pins and the cached
listings, and the next unpinned path resolves the latest version again. A path with
``@vN`` is never affected: versions do not change after commit.

What goes where:

* listings (``ls``/``info``/``find``/``glob``) use the hub's paged file API, never an S3
  listing: the hub knows the committed manifest, one page at a time;
* bytes are read with ranged S3 ``GetObject`` requests (botocore, SigV4) against the
  endpoint of a **read grant** for that version; nothing is downloaded whole.

Read grants are cached per ``(owner, name, version)`` in a process-wide cache shared by
every instance with the same hub and token (fsspec makes one instance per thread, Dask
runs many threads), and renewed shortly before expiry: 60 s or 20 % of the grant's
lifetime, whichever is shorter. With the local broker every grant has its own endpoint
(``http://127.0.0.1:PORT``) that dies at expiry, so a refresh may bring a new endpoint;
open files always ask the cache for the current grant, and a read that fails with an
auth or connection error (clock skew, revoked endpoint) refreshes once and retries.

Authentication: ``hub_url``/``token``/``profile`` storage options, else
``$DSHUB_HUB_URL``/``$DSHUB_TOKEN``, else the stored ``dshub login``. A pickled filesystem
(what Dask ships to workers) carries **only** the explicitly given ``hub_url``, ``token``
and ``profile`` plus the version pins — the token must travel for workers on other
machines to authenticate; that is expected, so give workers a token you can revoke. A
token found in the local keyring is never put into a pickle: workers elsewhere then need
``storage_options={"token": …}`` or ``$DSHUB_TOKEN``.

Read-only: opening for writing raises ``PermissionError`` (upload with ``dshub upload``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fsspec import AbstractFileSystem, register_implementation
from fsspec.spec import AbstractBufferedFile

from dshub.errors import DshubError, NotFoundError, PathNotFoundError, TransferError
from dshub.refs import RefError, validate_name, validate_user

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dshub.api.client import HubClient
    from dshub.models import FileEntry, ReadGrant, Version

log = logging.getLogger(__name__)

PROTOCOL = "dshub"
# Refresh a grant this long before it expires: the shorter of 60 s and 20 % of its
# lifetime (so short test credentials are renewed well before they lapse).
REFRESH_MARGIN_MAX = 60.0
REFRESH_MARGIN_FRACTION = 0.2
LIST_PAGE = 1000
# S3 error codes that mean "these credentials (or this endpoint) are no longer good".
_AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "AccessDenied", "TokenRefreshRequired",
     "InvalidToken", "403", "401"}
)
_INFO_CACHE_SIZE = 20_000
_DS_RE = re.compile(r"^(?P<owner>[^/@]+)/(?P<name>[^/@]+)(?:@(?P<version>[^/]+))?(?:/(?P<rest>.*))?$")


@dataclass(frozen=True)
class DsPath:
    """A parsed ``OWNER/NAME[@vN][/PATH]`` (``version`` None = latest, ``path`` '' = root)."""

    owner: str
    name: str
    version: int | None
    path: str

    @property
    def root(self) -> str:
        v = f"@v{self.version}" if self.version is not None else ""
        return f"{self.owner}/{self.name}{v}"

    def join(self, rel: str) -> str:
        """The fsspec name of ``rel`` inside this version."""
        return f"{self.root}/{rel}" if rel else self.root


def parse_path(path: str) -> DsPath:
    """Parse a protocol-less dshub path; raise ``ValueError`` with a one-line reason."""
    m = _DS_RE.fullmatch(path.strip("/"))
    if not m:
        raise ValueError(f"invalid dshub path {path!r}: expected dshub://OWNER/NAME[@vN]/PATH")
    try:
        owner = validate_user(m.group("owner"))
        name = validate_name(m.group("name"))
        v = m.group("version")
        version: int | None = None
        if v is not None and v != "latest":
            from dshub.refs import parse_version

            version = parse_version(v)
    except RefError as e:
        raise ValueError(f"invalid dshub path {path!r}: {e}") from None
    return DsPath(owner, name, version, (m.group("rest") or "").strip("/"))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# --- read grants ------------------------------------------------------------------------


@dataclass
class _Grant:
    """A read grant with its S3 client; ``renew_at`` is in ``time.monotonic()`` seconds."""

    grant: ReadGrant
    client: Any  # botocore S3 client
    renew_at: float
    generation: int

    def key(self, rel: str) -> str:
        return self.grant.location.prefix + rel


_BOTO_LOCK = threading.Lock()
_BOTO_SESSION: Any = None


def _s3_client(grant: ReadGrant) -> Any:
    """A botocore S3 client for one grant's endpoint and keys (path-style, SigV4)."""
    global _BOTO_SESSION
    import botocore.session
    from botocore.config import Config

    loc, cred = grant.location, grant.credentials
    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        # Fail fast on a dead endpoint: the cache then fetches a new grant (see module doc).
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    # botocore sessions are not thread-safe for create_client; one per process is enough.
    with _BOTO_LOCK:
        if _BOTO_SESSION is None:
            _BOTO_SESSION = botocore.session.get_session()
        return _BOTO_SESSION.create_client(
            "s3",
            endpoint_url=loc.endpoint,
            region_name=loc.region,
            aws_access_key_id=cred.access_key_id,
            aws_secret_access_key=cred.secret_access_key,
            aws_session_token=cred.session_token,
            config=cfg,
        )


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which a grant of ``lifetime`` seconds is renewed."""
    return min(REFRESH_MARGIN_MAX, max(0.0, lifetime) * REFRESH_MARGIN_FRACTION)


class GrantCache:
    """Read grants per ``(owner, name, version)`` for one hub + token, renewed before expiry.

    Thread-safe; one per process per (hub, token) via :func:`_grant_cache`, so the threads
    of a Dask worker share grants instead of each asking the hub for its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: dict[tuple[str, str, int], _Grant] = {}
        self._key_locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._generation = 0

    def get(self, hub: HubClient, owner: str, name: str, version: int) -> _Grant:
        """The current grant, fetching a new one when there is none or it is near expiry."""
        k = (owner, name, version)
        g = self._grants.get(k)
        if g is not None and time.monotonic() < g.renew_at:
            return g
        with self._lock:
            klock = self._key_locks.setdefault(k, threading.Lock())
        with klock:  # one hub request per key even when many threads notice at once
            g = self._grants.get(k)
            if g is not None and time.monotonic() < g.renew_at:
                return g
            return self._fetch(hub, k)

    def invalidate(self, owner: str, name: str, version: int, generation: int) -> None:
        """Drop the grant of that generation (a newer one fetched meanwhile is kept)."""
        with self._lock:
            g = self._grants.get((owner, name, version))
            if g is not None and g.generation == generation:
                del self._grants[(owner, name, version)]

    def _fetch(self, hub: HubClient, k: tuple[str, str, int]) -> _Grant:
        grant = hub.read_credentials(*k)
        lifetime = (_aware(grant.credentials.expiry) - datetime.now(timezone.utc)).total_seconds()
        renew_at = time.monotonic() + lifetime - refresh_margin(lifetime)
        with self._lock:
            self._generation += 1
            g = _Grant(grant, _s3_client(grant), renew_at, self._generation)
            self._grants[k] = g
        log.debug("read grant for %s/%s@v%s, renewing in %.0f s", *k, renew_at - time.monotonic())
        return g


_CACHES: dict[tuple[str, str], GrantCache] = {}
_CACHES_LOCK = threading.Lock()


def _grant_cache(hub_url: str, token: str | None) -> GrantCache:
    # Keyed by a hash of the token, never the token itself (it would then sit in one more place).
    fp = hashlib.sha256((token or "").encode()).hexdigest()
    with _CACHES_LOCK:
        return _CACHES.setdefault((hub_url, fp), GrantCache())


def _is_auth_or_connection_error(e: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(err.get("Code")) in _AUTH_CODES or status in (401, 403)
    # EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, …: the endpoint of
    # an expired local-broker grant is simply gone.
    return isinstance(e, BotoCoreError)


def _is_not_found(e: Exception) -> bool:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code"))
        return code in ("NoSuchKey", "404", "NotFound")
    return False


# --- the filesystem ---------------------------------------------------------------------


def _restore(options: dict[str, Any], pins: dict[tuple[str, str], int]) -> DshubFileSystem:
    fs = DshubFileSystem(**options)
    for k, v in pins.items():
        fs._pins.setdefault(k, v)
    return fs


class DshubFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem for ``dshub://OWNER/NAME[@vN]/PATH`` (see the module doc).

    >>> import pandas as pd                                            # doctest: +SKIP
    >>> pd.read_csv("dshub://alice/taxi-data@v2/2022/01.csv",
    ...             storage_options={"hub_url": "https://hub.example.org", "token": "…"})
    """

    protocol = PROTOCOL
    root_marker = ""
    cachable = True

    def __init__(
        self,
        hub_url: str | None = None,
        token: str | None = None,
        profile: str | None = None,
        *,
        page_size: int = LIST_PAGE,
        **kwargs: Any,
    ) -> None:
        """Nothing is fetched here: the hub is first asked when a path is used.

        ``hub_url``/``token``/``profile`` as for the CLI (argument → ``$DSHUB_HUB_URL`` /
        ``$DSHUB_TOKEN`` → stored login). The explicit values travel with pickles (Dask).
        """
        super().__init__(**kwargs)
        self._hub_url_arg = hub_url
        self._token_arg = token
        self._profile = profile
        self.page_size = page_size
        self._lock = threading.Lock()
        self._hub_client: HubClient | None = None
        self._grants: GrantCache | None = None
        self._pins: dict[tuple[str, str], int] = {}
        self._versions: dict[tuple[str, str, int], Version] = {}
        # name -> info dict from listings, so open() after ls/find/glob needs no hub request.
        self._infos: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._infos_lock = threading.Lock()

    def __repr__(self) -> str:  # never the token
        return f"DshubFileSystem(hub_url={self._hub_url_arg!r}, token={'<hidden>' if self._token_arg else None})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Only the explicit options and the version pins: no live clients, no grants.
        options = {"hub_url": self._hub_url_arg, "token": self._token_arg, "profile": self._profile}
        if self.page_size != LIST_PAGE:
            options["page_size"] = self.page_size
        return _restore, ({k: v for k, v in options.items() if v is not None}, dict(self._pins))

    # --- hub plumbing -------------------------------------------------------------------

    @property
    def hub(self) -> HubClient:
        """The hub client (created on first use from the options, environment or login)."""
        if self._hub_client is None:
            with self._lock:
                if self._hub_client is None:
                    from dshub.api.auth import resolve_login
                    from dshub.api.client import HubClient
                    from dshub.errors import NotLoggedInError

                    login = resolve_login(self._profile, hub_url=self._hub_url_arg, token=self._token_arg)
                    if not login.hub_url:
                        raise NotLoggedInError(
                            "dshub:// needs a hub: pass storage_options={'hub_url': …, 'token': …}, "
                            "set DSHUB_HUB_URL/DSHUB_TOKEN, or run `dshub login`"
                        )
                    self._grants = _grant_cache(login.hub_url, login.token)
                    self._hub_client = HubClient(login.hub_url, login.token)
        return self._hub_client

    def _grant_cache(self) -> GrantCache:
        self.hub  # noqa: B018 - resolves the login and picks the shared cache
        assert self._grants is not None
        return self._grants

    def _not_found(self, name: str, e: DshubError | None = None) -> PathNotFoundError:
        # One line: the URL asked for, then the hub's reason (which says what to check).
        why = e.message if e is not None else "not found"
        return PathNotFoundError(f"dshub://{name}: {why}", code=e.code if e is not None else None)

    def pin(self, owner: str, name: str) -> int:
        """The version ``OWNER/NAME`` (latest) resolves to in this filesystem; asked once."""
        k = (owner, name)
        v = self._pins.get(k)
        if v is None:
            ver = self._version(owner, name, None)
            v = self._pins.setdefault(k, ver.version)
        return v

    def _version(self, owner: str, name: str, version: int | None) -> Version:
        if version is not None and (owner, name, version) in self._versions:
            return self._versions[(owner, name, version)]
        try:
            ver = self.hub.get_version(owner, name, version)
        except NotFoundError as e:
            ref = f"{owner}/{name}" + (f"@v{version}" if version is not None else "")
            raise self._not_found(ref, e) from None
        self._versions[(owner, name, ver.version)] = ver
        return ver

    def _resolve(self, path: str) -> DsPath:
        """Parse ``path`` and pin its version (latest → the pinned number)."""
        p = parse_path(self._strip_protocol(path))
        if p.version is None:
            p = DsPath(p.owner, p.name, self.pin(p.owner, p.name), p.path)
        return p

    def canonical(self, path: str) -> str:
        """``OWNER/NAME@vN/PATH`` with the version pinned (fsspec names use this form)."""
        p = self._resolve(path)
        return p.join(p.path)

    def _entry_info(self, p: DsPath, e: FileEntry) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": p.join(e.path),
            "size": e.size,
            "type": "directory" if e.is_dir else "file",
        }
        if e.is_dir:
            info["file_count"] = e.file_count
        else:
            info["md5"] = e.md5
        return info

    def _remember(self, info: dict[str, Any]) -> None:
        if info["type"] != "file":
            return
        with self._infos_lock:  # a Client's filesystem is shared by the caller's threads
            self._infos[info["name"]] = info
            self._infos.move_to_end(info["name"])
            while len(self._infos) > _INFO_CACHE_SIZE:
                self._infos.popitem(last=False)

    def _pages(self, p: DsPath, *, recursive: bool) -> Iterator[FileEntry]:
        assert p.version is not None
        try:
            yield from self.hub.iter_files(
                p.owner, p.name, p.version, prefix=p.path, recursive=recursive, page_size=self.page_size
            )
        except NotFoundError as e:
            raise self._not_found(p.join(p.path), e) from None

    # --- listing ------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """One level below ``path`` (a file lists as itself), via the hub's paged listing."""
        stripped = self._strip_protocol(path)
        if "/" not in stripped.strip("/"):
            return self._ls_owner(stripped.strip("/"), detail)
        p = self._resolve(stripped)
        out = []
        for e in self._pages(p, recursive=False):
            info = self._entry_info(p, e)
            self._remember(info)
            out.append(info)
        # ls of a file: the hub answers with the file itself, as fsspec expects.
        return out if detail else [o["name"] for o in out]

    def _ls_owner(self, owner: str, detail: bool) -> list[Any]:
        if not owner:
            raise ValueError("dshub:// paths start with OWNER/NAME; listing all owners is not supported")
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            res = self.hub.list_datasets(owner=owner, page=page, page_size=100)
            out.extend(
                {"name": f"{d.owner}/{d.name}", "size": d.size, "type": "directory"}
                for d in res.items
                if d.owner == owner
            )
            if page * res.page_size >= res.total or not res.items:
                break
            page += 1
        return out if detail else [o["name"] for o in out]

    def _owner_info(self, owner: str) -> dict[str, Any]:
        """An owner is a folder of datasets: it exists when it has a dataset the caller sees."""
        datasets = self._ls_owner(owner, detail=True)
        if not datasets:
            raise PathNotFoundError(f"dshub://{owner}: no datasets of {owner!r} visible to you")
        return {"name": owner, "size": sum(d["size"] for d in datasets), "type": "directory",
                "dataset_count": len(datasets)}

    def _folder_size(self, p: DsPath) -> dict[str, Any] | None:
        """The folder's entry in its parent's listing (size, file count), or None.

        Listings give folders first, sorted by name, so the scan stops at the first name
        past it (one request unless the parent has more folders than a page holds).
        """
        parent, _, leaf = p.path.rpartition("/")
        for e in self._pages(DsPath(p.owner, p.name, p.version, parent), recursive=False):
            if not e.is_dir:
                return None
            name = e.path.rpartition("/")[2]
            if name == leaf:
                return self._entry_info(p, e)
            if name > leaf:
                return None
        return None

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Details of one file or folder (one hub request unless a listing already told us;
        a folder's size costs its parent's listing too)."""
        return self._info(path, folder_size=True)

    def _info(self, path: str, *, folder_size: bool) -> dict[str, Any]:
        """:meth:`info`; without ``folder_size`` a folder is only said to be one (size 0),
        for callers that need its type alone."""
        stripped = self._strip_protocol(path).strip("/")
        if stripped and "/" not in stripped:
            try:
                validate_user(stripped)
            except RefError as e:
                raise ValueError(f"invalid dshub path {path!r}: {e}") from None
            return self._owner_info(stripped)
        p = self._resolve(path)
        name = p.join(p.path)
        known = self._infos.get(name)
        if known is not None:
            return dict(known)
        if not p.path:
            ver = self._version(p.owner, p.name, p.version)
            return {"name": name, "size": ver.size, "type": "directory", "file_count": ver.file_count}
        assert p.version is not None
        try:
            page = self.hub.list_files(p.owner, p.name, p.version, prefix=p.path, limit=1)
        except NotFoundError as e:
            raise self._not_found(name, e) from None
        if len(page.items) == 1 and page.items[0].path == p.path and not page.items[0].is_dir:
            info = self._entry_info(p, page.items[0])
            self._remember(info)
            return dict(info)
        # A folder: the hub listed its first child. Its size is known to its parent's listing.
        return (self._folder_size(p) if folder_size else None) or {"name": name, "size": 0, "type": "directory"}

    def modified(self, path: str) -> datetime:
        """When the path's version was published: files never change after that."""
        p = self._resolve(path)
        if p.path:
            self.info(path)  # a missing path is FileNotFoundError, not a date
        return _aware(self._version(p.owner, p.name, p.version).created_at)

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget version pins and cached listings (all, or of one ``OWNER/NAME``).

        The next unpinned ``dshub://OWNER/NAME/…`` resolves the latest version again.
        """
        if path is None:
            self._pins.clear()
            with self._infos_lock:
                self._infos.clear()
        else:
            m = _DS_RE.fullmatch(self._strip_protocol(path).strip("/"))
            if m:
                self._pins.pop((m.group("owner"), m.group("name")), None)
                root = f"{m.group('owner')}/{m.group('name')}"
                with self._infos_lock:
                    for k in [k for k in self._infos if k == root or k.startswith((root + "/", root + "@"))]:
                        del self._infos[k]
        super().invalidate_cache(path)

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any
    ) -> Any:
        """All files below ``path``; without ``maxdepth`` one paged recursive listing."""
        stripped = self._strip_protocol(path).strip("/")
        if "/" not in stripped:  # an owner: walk its datasets
            return super().find(stripped, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        if maxdepth is not None:  # glob's "*/*.csv": a walk lists only the levels it needs
            return super().find(self.canonical(stripped), maxdepth=maxdepth, withdirs=withdirs,
                                detail=detail, **kwargs)
        p = self._resolve(path)
        out: dict[str, dict[str, Any]] = {}
        base = p.join(p.path)
        try:
            root_info = self._info(base, folder_size=withdirs)  # a folder's size is shown only then
        except FileNotFoundError:
            return {} if detail else []
        if root_info["type"] == "file":
            out[base] = root_info
        else:
            if withdirs:
                out[base] = root_info
            for e in self._pages(p, recursive=True):
                info = self._entry_info(p, e)
                self._remember(info)
                out[info["name"]] = info
                if withdirs:  # folders are implied by the file paths
                    parts = e.path.split("/")[:-1]
                    for i in range(len(p.path.split("/")) if p.path else 0, len(parts)):
                        d = p.join("/".join(parts[: i + 1]))
                        out.setdefault(d, {"name": d, "size": 0, "type": "directory"})
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """Glob below one dataset version; wildcards are allowed after ``OWNER/NAME[@vN]/``."""
        stripped = self._strip_protocol(path)
        m = _DS_RE.fullmatch(stripped.strip("/"))
        if not m or any(c in m.group("owner") + m.group("name") for c in "*?["):
            raise ValueError(f"{path!r}: wildcards are allowed only after dshub://OWNER/NAME[@vN]/")
        p = self._resolve(f"{m.group('owner')}/{m.group('name')}" + (f"@{m.group('version')}" if m.group("version") else ""))
        rest = m.group("rest") or ""
        pattern = p.join(rest) + ("/" if path.endswith("/") and rest else "")
        return super().glob(pattern, maxdepth=maxdepth, **kwargs)

    def checksum(self, path: str) -> int:
        """A checksum of the file's content (from the hub's md5, no data read)."""
        info = self.info(path)
        return int((info.get("md5") or hashlib.md5(repr(info).encode()).hexdigest())[:16], 16)

    def ukey(self, path: str) -> str:
        """Unique key of a file's content (its md5 where the hub knows it)."""
        info = self.info(path)
        return str(info.get("md5") or hashlib.md5(repr(sorted(info.items())).encode()).hexdigest())

    # --- reading ------------------------------------------------------------------------

    def read_range(self, path: str, start: int, end: int | None) -> bytes:
        """Bytes ``[start, end)`` of a file (``end`` None = to the end) with one ranged GET.

        On an auth or connection error the grant is refreshed and the read retried once.
        """
        p = self._resolve(path)
        if not p.path:
            raise IsADirectoryError(f"{p.root} is a dataset, not a file")
        if end is not None and end <= start:
            return b""
        assert p.version is not None
        cache = self._grant_cache()
        for attempt in (1, 2):
            try:
                g = cache.get(self.hub, p.owner, p.name, p.version)
            except NotFoundError as e:
                raise self._not_found(p.root, e) from None
            kwargs: dict[str, Any] = {"Bucket": g.grant.location.bucket, "Key": g.key(p.path)}
            if start or end is not None:
                kwargs["Range"] = f"bytes={start}-" + (str(end - 1) if end is not None else "")
            try:
                resp = g.client.get_object(**kwargs)
                return bytes(resp["Body"].read())
            except Exception as e:
                if _is_not_found(e):
                    raise self._missing(p) from None
                if _is_invalid_range(e):
                    return b""
                if attempt == 1 and _is_auth_or_connection_error(e):
                    log.info("read of %s failed (%s); refreshing the read grant", p.join(p.path), type(e).__name__)
                    cache.invalidate(p.owner, p.name, p.version, g.generation)
                    continue
                raise TransferError(
                    f"reading {p.join(p.path)!r} failed ({_describe(e)}): retry; "
                    "if it persists check the hub and `dshub creds`"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _missing(self, p: DsPath) -> OSError:
        """Why a GET found no object: a folder, a path the version does not have, or damage."""
        try:
            info = self._info(p.join(p.path), folder_size=False)
        except FileNotFoundError as e:
            return e
        if info["type"] == "directory":
            return IsADirectoryError(f"dshub://{p.join(p.path)} is a folder, not a file")
        return PathNotFoundError(
            f"dshub://{p.join(p.path)}: listed by the hub but missing in storage (tell the hub's admin)"
        )

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """A whole file or a byte range of it, without opening a file object."""
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(path)["size"]
            start = size + start if start is not None and start < 0 else start
            end = size + end if end is not None and end < 0 else end
        return self.read_range(path, start or 0, end)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DshubFile:
        if mode != "rb":
            raise PermissionError(f"dshub:// is read-only (mode {mode!r}); upload with `dshub upload`")
        name = self.canonical(path)
        info = self.info(name)
        if info["type"] != "file":
            raise IsADirectoryError(f"{name!r} is a folder")
        return DshubFile(
            self,
            name,
            mode="rb",
            block_size=block_size,
            cache_options=cache_options,
            size=info["size"],
            cache_type=kwargs.pop("cache_type", "readahead"),
            details=info,
        )

    def _rm(self, path: str) -> None:
        raise PermissionError("dshub:// is read-only; delete a dataset with `dshub rm`")

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Not supported: dshub datasets are written by uploads only."""
        raise PermissionError("dshub:// is read-only; create a dataset with `dshub upload`")

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Not supported (read-only), like :meth:`mkdir`."""
        raise PermissionError("dshub:// is read-only; create a dataset with `dshub upload`")

    def rmdir(self, path: str) -> None:
        """Not supported (read-only)."""
        raise PermissionError("dshub:// is read-only; delete a dataset with `dshub rm`")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Not supported: a copy inside dshub is a new version (``dshub upload``)."""
        raise PermissionError("dshub:// is read-only; copy out with `get`, publish with `dshub upload`")

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        """Not supported (read-only)."""
        raise PermissionError("dshub:// is read-only; versions never change after commit")


class DshubFile(AbstractBufferedFile):
    """A seekable read-only file whose blocks come from ranged GETs (see :meth:`DshubFileSystem.read_range`)."""

    DEFAULT_BLOCK_SIZE = 4 * 2**20

    def __init__(self, fs: DshubFileSystem, path: str, *, details: dict[str, Any], **kwargs: Any) -> None:
        self._details = dict(details)
        super().__init__(fs, path, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.read_range(self.path, start, min(end, self.size))


def _is_invalid_range(e: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(e, ClientError) and str(e.response.get("Error", {}).get("Code")) == "InvalidRange"


def _describe(e: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):  # code and status only: messages may echo request details
        err = e.response.get("Error", {})
        return f"S3 {err.get('Code', '?')}, HTTP {e.response.get('ResponseMetadata', {}).get('HTTPStatusCode', '?')}"
    return type(e).__name__


# Work without the package's entry point (editable installs made before it was added,
# processes that import dshub.library.fs directly); the entry point makes `import dshub` unnecessary.
register_implementation(PROTOCOL, DshubFileSystem, clobber=True)

__all__ = ["DshubFileSystem", "DshubFile", "GrantCache", "parse_path", "refresh_margin", "PROTOCOL"]

