"""``dshub.Client`` and ``dshub.open_dataset``: the Python face of everything the CLI does.

>>> import dshub                                                     # doctest: +SKIP
>>> c = dshub.Client()                     # same hub and token as the CLI
>>> ds = c.dataset("alice/taxi-data@v2")   # nothing fetched yet
>>> ds["2022/01.csv"].open().read(100)     # one listing request, one ranged GET
>>> c.upload("./taxi-data", "alice/taxi-data")

The hub URL and token come from the same places as the CLI's: arguments, then
``$DSHUB_HUB_URL`` / ``$DSHUB_TOKEN``, then the stored ``dshub login`` of the profile.
Library code never prints: transfers report progress through ``on_event`` callbacks
(:mod:`dshub.transfer.stats`), failures are :mod:`dshub.errors` exceptions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dshub.errors import HubResponseError, NotFoundError, NotLoggedInError, UsageError
from dshub.library.tree import DatasetTree
from dshub.models import (
    Dataset,
    DatasetCreate,
    DatasetUpdate,
    FileEntry,
    ReadGrant,
    SessionOpen,
    SessionState,
    StagedList,
    UploadSession,
    User,
    Version,
    VersionSummary,
    Visibility,
)
from dshub.refs import DatasetRef, RefError, parse_ref

if TYPE_CHECKING:
    import httpx

    from dshub.api.client import HubClient
    from dshub.library.fs import DshubFileSystem
    from dshub.transfer.download import DownloadResult
    from dshub.transfer.stats import EventCallback
    from dshub.transfer.upload import UploadOptions, UploadResult

RefLike = str | DatasetRef
# Upload session ids are UUIDs; a dataset name cannot hold one by accident in practice.
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Client:
    """A connection to one hub as one user, with the operations of the CLI.

    ``Client(hub_url=None, token=None, profile=None)``: arguments win over
    ``$DSHUB_HUB_URL``/``$DSHUB_TOKEN``, which win over the stored login of ``profile``.
    Nothing is sent to the hub until a method needs it.
    """

    def __init__(
        self,
        hub_url: str | None = None,
        token: str | None = None,
        profile: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Resolve the hub and token; raise NotLoggedInError when no hub URL is known.

        ``transport`` replaces the HTTP transport of the hub client (tests count requests
        with it). A missing token is allowed (anonymous reads of public datasets, where
        the hub permits them); the hub then answers 401 to anything else.
        """
        from dshub.api.auth import resolve_login
        from dshub.api.client import HubClient

        login = resolve_login(profile, hub_url=hub_url, token=token)
        if not login.hub_url:
            raise NotLoggedInError(
                f"no hub for profile {login.profile!r}: pass hub_url=, set DSHUB_HUB_URL or run `dshub login --hub URL`"
            )
        self.hub_url: str = login.hub_url
        self.profile: str = login.profile
        self._token = login.token
        # A token the caller handed over (argument or $DSHUB_TOKEN) may travel to Dask
        # workers inside a pickled filesystem; one read from the keyring stays on this machine.
        self._portable_token = login.token if login.token_source in ("argument", "DSHUB_TOKEN") else None
        self._hub = HubClient(login.hub_url, login.token, timeout=timeout, transport=transport)
        self._me: str | None = None
        self._fs: DshubFileSystem | None = None

    def __repr__(self) -> str:  # never the token
        return f"Client(hub_url={self.hub_url!r}, profile={self.profile!r})"

    # --- plumbing -----------------------------------------------------------------------

    @property
    def hub(self) -> HubClient:
        """The typed REST client underneath (every hub route, one call each)."""
        return self._hub

    @property
    def fs(self) -> DshubFileSystem:
        """An fsspec filesystem (``dshub://``) for this hub and user; made on first use."""
        if self._fs is None:
            from dshub.library.fs import DshubFileSystem

            self._fs = DshubFileSystem(hub_url=self.hub_url, token=self._portable_token, profile=self.profile)
        return self._fs

    @property
    def storage_options(self) -> dict[str, Any]:
        """``storage_options`` for pandas/Dask that reproduce this client's login on workers.

        Holds the token in clear text: it travels to the workers (expected; see
        :mod:`dshub.library.fs`). Never log it.
        """
        opts: dict[str, Any] = {"hub_url": self.hub_url}
        if self._token:
            opts["token"] = self._token
        return opts

    def whoami(self) -> User:
        """The user this client acts as."""
        user = self._hub.whoami()
        self._me = user.name
        return user

    def _owner(self) -> str:
        if self._me is None:
            self.whoami()
        assert self._me is not None
        return self._me

    def ref(self, ref: RefLike) -> DatasetRef:
        """Parse ``[OWNER/]NAME[@vN][:PATH]`` and fill in the owner (the current user)."""
        if isinstance(ref, DatasetRef):
            r = ref
        else:
            try:
                r = parse_ref(ref)
            except RefError as e:
                raise UsageError(str(e)) from None
        return r if r.owner else r.with_owner(self._owner())

    # --- datasets -----------------------------------------------------------------------

    def list_datasets(
        self, *, owner: str | None = None, q: str | None = None, tag: str | None = None, page_size: int = 50
    ) -> Iterator[Dataset]:
        """Datasets visible to this user (own and public), fetched a page at a time."""
        page = 1
        while True:
            res = self._hub.list_datasets(owner=owner, q=q, tag=tag, page=page, page_size=page_size)
            yield from res.items
            if not res.items or page * res.page_size >= res.total:
                return
            page += 1

    def get_dataset(self, ref: RefLike) -> Dataset:
        """One dataset's metadata; NotFoundError when missing or not visible."""
        r = self.ref(ref)
        assert r.owner
        return self._hub.get_dataset(r.owner, r.name)

    def create_dataset(
        self,
        name: str,
        *,
        description: str = "",
        tags: Sequence[str] = (),
        license: str | None = None,
        visibility: Visibility | str = Visibility.private,
    ) -> Dataset:
        """Create an empty dataset owned by this user (versions come from uploads)."""
        r = self.ref(name)
        if r.owner != self._owner():
            raise UsageError(f"{r}: datasets are created under your own name ({self._owner()})")
        body = DatasetCreate(
            name=r.name, description=description, tags=list(tags), license=license, visibility=Visibility(visibility)
        )
        return self._hub.create_dataset(body)

    def update_dataset(
        self,
        ref: RefLike,
        *,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        license: str | None = None,
        visibility: Visibility | str | None = None,
    ) -> Dataset:
        """Change the given fields (None = unchanged); owner only."""
        r = self.ref(ref)
        assert r.owner
        body = DatasetUpdate(
            description=description,
            tags=list(tags) if tags is not None else None,
            license=license,
            visibility=Visibility(visibility) if visibility is not None else None,
        )
        return self._hub.update_dataset(r.owner, r.name, body)

    def delete_dataset(self, ref: RefLike) -> None:
        """Delete a dataset with all its versions and stored objects; owner only."""
        r = self.ref(ref)
        assert r.owner
        self._hub.delete_dataset(r.owner, r.name)

    # --- versions and files -------------------------------------------------------------

    def list_versions(self, ref: RefLike) -> list[VersionSummary]:
        """Committed versions, newest first."""
        r = self.ref(ref)
        assert r.owner
        return self._hub.list_versions(r.owner, r.name).items

    def get_version(self, ref: RefLike) -> Version:
        """One version (the latest when the ref has no ``@vN``)."""
        r = self.ref(ref)
        assert r.owner
        return self._hub.get_version(r.owner, r.name, r.version)

    def list_files(self, ref: RefLike, *, recursive: bool = False, page_size: int = 1000) -> Iterator[FileEntry]:
        """Entries below ``ref``'s path (one level, or all files with ``recursive``), paged lazily."""
        r = self.ref(ref)
        assert r.owner
        version = r.version if r.version is not None else self._hub.get_version(r.owner, r.name, None).version
        yield from self._hub.iter_files(
            r.owner, r.name, version, prefix=r.path or "", recursive=recursive, page_size=page_size
        )

    def dataset(self, ref: RefLike, *, page_size: int = 1000) -> DatasetTree:
        """A lazy tree of one version (latest unless ``@vN``); nothing is fetched yet.

        A ``:PATH`` in the ref is ignored here; index the tree instead (``ds["2022"]``).
        """
        r = self.ref(ref)
        assert r.owner
        return DatasetTree(self._hub, r.owner, r.name, r.version, fs_factory=lambda: self.fs, page_size=page_size)

    # --- credentials and transfers ------------------------------------------------------

    def creds(self, ref: RefLike, write: bool = False) -> ReadGrant | UploadSession:
        """Scoped S3 credentials, as ``dshub creds`` hands them out.

        ``write=False``: a read-only :class:`ReadGrant` for one version (latest unless
        ``@vN``). ``write=True``: the open (or resumed) :class:`UploadSession` for the next
        version, with credentials; a missing dataset of your own is created (private).
        """
        r = self.ref(ref)
        assert r.owner
        if not write:
            return self._hub.read_credentials(r.owner, r.name, r.version)  # type: ignore[arg-type]  # None = latest
        if r.version is not None:
            raise UsageError("write credentials are for the next version: drop the @vN")
        try:
            s = self._hub.open_session(r.owner, r.name, SessionOpen(resume=True))
        except NotFoundError:
            if r.owner != self._owner():
                raise
            self._hub.create_dataset(DatasetCreate(name=r.name))
            s = self._hub.open_session(r.owner, r.name, SessionOpen(resume=True))
        if s.credentials is None:
            raise HubResponseError("hub opened an upload session but sent no credentials: check the hub's logs")
        return s

    def upload(
        self,
        path: str | os.PathLike[str],
        ref: RefLike | None = None,
        *,
        options: UploadOptions | None = None,
        on_event: EventCallback | None = None,
        **option_fields: Any,
    ) -> UploadResult:
        """Upload a file or folder as the next version of ``ref`` (default: the folder's name).

        Options are :class:`dshub.transfer.upload.UploadOptions` fields, given either as
        ``options=`` or as keywords (``description=``, ``tags=``, ``include=``, ``exclude=``,
        ``transfers=``, ``new_session=``, ``dry_run=``, …). An interrupted upload resumes
        when called again. Progress goes to ``on_event``; nothing is printed.
        """
        from dshub.transfer.stats import NOOP
        from dshub.transfer.upload import UploadOptions
        from dshub.transfer.upload import upload as _upload

        if options is not None and option_fields:
            raise UsageError("give upload options either as options= or as keywords, not both")
        opts = options or UploadOptions(**option_fields)
        parsed = None
        if ref is not None:
            parsed = ref if isinstance(ref, DatasetRef) else self._parse_only(ref)
        return _upload(self._hub, path, parsed, options=opts, on_event=on_event or NOOP)

    def download(
        self,
        ref: RefLike,
        dest: str | os.PathLike[str],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        force: bool = False,
        on_event: EventCallback | None = None,
        **kwargs: Any,
    ) -> DownloadResult:
        """Download a version (or ``ref``'s ``:PATH`` / the filtered files) into ``dest``.

        Files already present with the same content are skipped; ``force`` overwrites
        differing ones. Other keywords (``transfers=``, ``bwlimit=``) go to
        :func:`dshub.transfer.download.download`.
        """
        from dshub.transfer.download import download as _download
        from dshub.transfer.stats import NOOP

        r = self.ref(ref)
        return _download(
            self._hub, r, dest, include=include, exclude=exclude, force=force, on_event=on_event or NOOP, **kwargs
        )

    @staticmethod
    def _parse_only(ref: str) -> DatasetRef:
        try:
            return parse_ref(ref)
        except RefError as e:
            raise UsageError(str(e)) from None

    # --- what the command line needs beyond the above: parsing, sessions, one version ---

    @staticmethod
    def parse(ref: str) -> DatasetRef:
        """Parse ``[OWNER/]NAME[@vN|@latest][:PATH]`` without asking the hub; UsageError when invalid."""
        try:
            return parse_ref(ref)
        except RefError as e:
            raise UsageError(str(e)) from None

    def delete_version(self, ref: RefLike) -> Version:
        """Delete the version ``OWNER/NAME@vN`` and its stored objects; owner only.

        Its number is never given out again; readers of other versions are unaffected;
        when it was the latest, the newest remaining version becomes the latest.
        """
        r = self.ref(ref)
        assert r.owner
        if r.version is None:
            raise UsageError(f"{r}: say which version to delete (@vN); delete_dataset removes them all")
        v = self._hub.get_version(r.owner, r.name, r.version)
        self._hub.delete_version(r.owner, r.name, v.version)
        return v

    def sessions(self, ref: RefLike | None = None) -> list[UploadSession]:
        """Open upload sessions (with what each holds so far) of ``ref``, or of all your datasets."""
        if ref is None:
            return self._hub.list_my_sessions().items
        r = self.ref(ref)
        assert r.owner
        found = self._hub.list_sessions(r.owner, r.name).items
        return [s for s in found if r.version is None or s.version == r.version]

    def find_session(self, target: RefLike) -> UploadSession:
        """The one open session ``target`` names: a session id, or ``[OWNER/]NAME[@vN]``.

        UsageError when a dataset has several open sessions and no ``@vN`` picks one;
        NotFoundError when there is none.
        """
        if isinstance(target, str) and is_session_id(target):
            s = self._hub.get_session(target.strip())
            if s.state != SessionState.open:
                raise NotFoundError(f"upload session {s.id} is {s.state.value}, not open", code="no_session")
            return s
        r = self.ref(target)
        found = self.sessions(r)
        if not found:
            at = f"@v{r.version}" if r.version is not None else ""
            raise NotFoundError(f"{r.owner}/{r.name}{at} has no open upload session", code="no_session")
        if len(found) > 1:
            ids = ", ".join(s.id for s in found)
            raise UsageError(
                f"{r.owner}/{r.name} has {len(found)} open upload sessions ({ids}): name one by its id"
            )
        return found[0]

    def staged(self, session: UploadSession) -> StagedList:
        """What an open session's staging area holds now (objects any tool put there)."""
        return self._hub.staged(session.id)

    def commit_staged(self, session: UploadSession) -> Version:
        """Publish an open session as it stands: the hub builds the manifest from the files
        in its staging area, hashes them and publishes them as the next version."""
        return self._hub.commit_session(session.id, [], from_staging=True)

    def abort(self, session: UploadSession) -> None:
        """Abort an open upload session: its credentials are revoked and what it uploaded is deleted."""
        self._hub.abort_session(session.id)

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP connections."""
        self._hub.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def is_session_id(text: str) -> bool:
    """True when ``text`` is an upload session id (a UUID), not a dataset reference."""
    return bool(_SESSION_ID.fullmatch(text.strip()))


def open_dataset(ref: RefLike, client: Client | None = None, *, page_size: int = 1000) -> DatasetTree:
    """A lazy tree of ``[OWNER/]NAME[@vN]`` (``dshub.open_dataset("alice/taxi-data@v2")``).

    Uses ``client`` or a :class:`Client` from the environment / stored login. Nothing is
    fetched until the tree is used.
    """
    return (client or Client()).dataset(ref, page_size=page_size)


__all__ = ["Client", "open_dataset"]
