"""``upload``: send a local file or folder to a dataset as its next version, resumably.

One :class:`Upload` is one run, in phases:

1. **scan** the local tree (every bad input is reported before the hub is asked to
   change anything); meanwhile a thread reads what a no-op check needs
   (:mod:`dshub.transfer.lookahead`);
2. **check** the options rclone will get and resolve the ref (default
   ``<me>/<normalised folder name>``);
3. **prepare** the dataset (created if missing, metadata options applied); stop here
   when the latest version already holds exactly these files;
4. **open** the dataset's upload session, or resume the open one;
5. **plan**: a resumed session's prefix is listed once (with MD5s); only files missing
   or of another size are handed to rclone. A new session's prefix is empty: no listing;
6. **transfer**: rclone copies (credentials renewed inside it by ``credential_process``;
   Content-MD5 on every PUT and part). Meanwhile a thread hashes the files (BLAKE3 for
   downloads to verify, MD5 where rclone does not report the one it checked);
7. **verify**: every file unchanged since the scan; objects kept from an earlier attempt
   whose MD5 differs from the file's are re-sent; objects not in the manifest deleted;
8. **commit** the manifest; the hub checks storage against it, and only when it finds a
   difference is the prefix listed, exactly that repaired, and the commit sent again.

Phases 5-8 run inside the session (:mod:`dshub.transfer.session_run`).

Interrupted anywhere (Ctrl-C, kill -9, network loss): the session stays open on the hub
and the next run resumes it. Counters and warnings go to one :class:`Tally`; progress
goes to ``on_event``; nothing is printed.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dshub.errors import CommitRefusedError, InterruptedTransfer, NotFoundError, UsageError
from dshub.models import (
    Dataset,
    DatasetCreate,
    SessionOpen,
    UploadSession,
    Version,
    Visibility,
)
from dshub.refs import DatasetRef, RefError, normalise_name, validate_name
from dshub.transfer import rclone as rc
from dshub.transfer.common import private_dir
from dshub.transfer.lookahead import Head, LookAhead
from dshub.transfer.scan import ScanResult, scan
from dshub.transfer.session_keys import key_for
from dshub.transfer.session_run import SessionRun
from dshub.transfer.stats import NOOP, EventCallback, Phase, ScanDone
from dshub.transfer.upload_options import Tally, UploadOptions
from dshub.transfer.upload_remote import SessionRemote
from dshub.transfer.uptodate import up_to_date

if TYPE_CHECKING:
    from concurrent.futures import Future

    from dshub.api.client import HubClient
    from dshub.util.rclone_bin import RcloneInfo



@dataclass
class UploadResult:
    """What happened; ``status`` is ``committed``, ``up_to_date`` or ``dry_run``."""

    status: str
    owner: str
    name: str
    version: int | None
    files: int
    bytes: int
    sent_files: int = 0
    sent_bytes: int = 0
    #: Files the hub filled from earlier versions of the dataset (same content, any path).
    carried_files: int = 0
    carried_bytes: int = 0
    #: The versions the carried files came from.
    carried_from: list[int] = field(default_factory=list)
    skipped_files: int = 0
    #: Parts of big files this run sent, and found already stored by an earlier run.
    sent_parts: int = 0
    kept_parts: int = 0
    seconds: float = 0.0
    resumed: bool = False
    created_dataset: bool = False
    session_id: str | None = None
    name_normalised_from: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``OWNER/NAME@vN`` (without ``@vN`` before a version exists)."""
        base = f"{self.owner}/{self.name}"
        return f"{base}@v{self.version}" if self.version else base

    @property
    def throughput(self) -> float:
        """Bytes per second actually sent."""
        return self.sent_bytes / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``dshub upload --json``."""
        d = asdict(self)
        d["ref"] = self.ref
        d["throughput"] = round(self.throughput, 1)
        d["seconds"] = round(self.seconds, 3)
        return d


def default_name(path: str) -> str:
    """The dataset name for a folder/file path (``./My Taxi Data/`` → ``my-taxi-data``)."""
    base = os.path.basename(os.path.abspath(path.rstrip(os.sep) or path))
    return normalise_name(base)


class Upload:
    """One upload run of ``path`` to ``ref`` (see the module doc for its phases)."""

    def __init__(
        self,
        client: HubClient,
        path: str | os.PathLike[str],
        ref: DatasetRef | None,
        options: UploadOptions,
        on_event: EventCallback = NOOP,
    ) -> None:
        self.client = client
        self.src = os.fspath(path)
        self.ref = ref
        self.opts = options
        self.on_event = on_event
        self.tally = Tally(on_event)
        self.started = time.monotonic()
        # Asked only when needed: `OWNER/NAME` of an existing dataset needs no /whoami.
        self.me: Callable[[], str] = functools.cache(lambda: client.whoami().name)
        self.owner = self.name = ""
        self.normalised_from: str | None = None
        self.sc: ScanResult | None = None
        self.session: UploadSession | None = None
        self.created_dataset = False
        self.has_versions = False  # the dataset has a committed version to carry from
        self.key: str | None = None  # this job's session key (transfer.session_keys)

    # --- the run ------------------------------------------------------------------------

    def run(self) -> UploadResult:
        """Run every phase; raise UsageError, TransferError, CommitRefusedError or
        InterruptedTransfer (the session is kept for all but the first)."""
        self.opts.check()
        needs_rclone = not self.opts.dry_run or self.opts.bwlimit is not None or bool(self.opts.rclone_args)
        # rclone's version probe runs while the folder is scanned.
        finding = rc.find_rclone_soon() if needs_rclone else None
        look = self._look_ahead()
        try:
            self._scan()
            self._resolve()
            rclone = self._rclone(finding)
            if self.opts.dry_run:
                return self._result("dry_run")
            assert rclone is not None
            latest = self._prepare(look.head() if look else None)
            if latest is not None and self._unchanged(latest, look):
                self.tally.skipped_files = len(self.scanned.files)
                return self._result("up_to_date", version=latest)
            self._open()
            return self._result("committed", version=self._send_and_commit(rclone.path).version)
        finally:
            if look is not None:
                look.close()

    @property
    def scanned(self) -> ScanResult:
        """The scan of the local tree (after phase 1)."""
        assert self.sc is not None
        return self.sc

    def _result(self, status: str, version: int | None = None) -> UploadResult:
        sc, t, s = self.scanned, self.tally, self.session
        return UploadResult(
            status=status,
            owner=self.owner,
            name=self.name,
            version=version if version is not None else (s.version if s else None),
            files=len(sc.files),
            bytes=sc.total_bytes,
            sent_files=t.sent_files,
            sent_bytes=t.sent_bytes,
            carried_files=t.carried_files,
            carried_bytes=t.carried_bytes,
            carried_from=sorted(t.carried_from),
            skipped_files=t.skipped_files,
            sent_parts=t.sent_parts,
            kept_parts=t.kept_parts,
            seconds=time.monotonic() - self.started,
            resumed=bool(s and s.resumed),
            created_dataset=self.created_dataset,
            session_id=s.id if s else None,
            name_normalised_from=self.normalised_from,
            warnings=t.warnings,
        )

    # --- 1-2: scan, check, resolve --------------------------------------------------------

    def _look_ahead(self) -> LookAhead | None:
        """Start the read-only hub calls a no-op check needs; None where no such check
        follows or the name is bad (that is reported after the scan, in order)."""
        if self.opts.dry_run or self.opts.new_session or self.opts.session or not os.path.isdir(self.src):
            return None  # a single file scans in no time; a missing path is an error first
        ref = self.ref
        name, owner = (default_name(self.src), None) if ref is None else (ref.name, ref.owner)
        try:
            validate_name(name)
        except RefError:
            return None
        if ref is not None and (ref.version is not None or ref.path):
            return None
        return LookAhead(self.client, (lambda: owner) if owner else self.me, name)

    def _scan(self) -> None:
        self.on_event(Phase("scan", f"Scanning {self.src}"))
        sc = scan(self.src, include=self.opts.include, exclude=self.opts.exclude)
        if sc.symlinks:
            self.tally.warn(
                f"skipping {len(sc.symlinks)} symbolic link(s) (not followed; copy with `cp -rL` to include targets)",
                sc.symlinks,
            )
        if sc.empty_dirs:
            self.tally.warn(
                f"{len(sc.empty_dirs)} empty folder(s) will not exist in the dataset (object storage has no folders)",
                sc.empty_dirs,
            )
        self.on_event(ScanDone(files=len(sc.files), bytes=sc.total_bytes))
        self.sc = sc

    def _resolve(self) -> None:
        ref = self.ref
        if ref is None:
            self.name = default_name(self.src)
            raw = os.path.basename(os.path.abspath(self.src))
            self.normalised_from = raw if raw != self.name else None
            self.owner = self.me()
            return
        try:
            validate_name(ref.name)
        except RefError as e:
            raise UsageError(str(e)) from None
        if ref.version is not None or ref.path:
            raise UsageError(f"{ref}: upload creates the next version itself; give OWNER/NAME without @vN or :PATH")
        self.owner, self.name = ref.owner or self.me(), ref.name

    def _rclone(self, finding: Future[RcloneInfo] | None) -> RcloneInfo | None:
        """The rclone to run, with the options it will get checked (before a session opens)."""
        if finding is None:
            return None
        info = finding.result()
        self.opts.check_with(info.path)
        return info

    # --- 3-4: prepare, open -----------------------------------------------------------------

    def _prepare(self, head: Head | None) -> int | None:
        """Create the dataset or apply the metadata options; return the latest version to
        compare the folder with (None: nothing to compare, an upload follows)."""
        self.on_event(Phase("session", f"Preparing {self.owner}/{self.name}"))
        ds = self._dataset(head)
        if ds is None:
            self._create()
            return None
        update = self.opts.metadata_update()
        if update is not None:
            ds = self.client.update_dataset(self.owner, self.name, update)
        self.has_versions = bool(ds.latest_version)
        if self.opts.new_session or self.opts.session or not ds.latest_version:
            return None
        # Other jobs' open sessions are theirs: they do not make this folder different.
        return ds.latest_version

    def _dataset(self, head: Head | None) -> Dataset | None:
        if head is not None:
            return head.dataset
        try:
            return self.client.get_dataset(self.owner, self.name)
        except NotFoundError:
            return None

    def _create(self) -> None:
        if self.owner != self.me():
            raise NotFoundError(f"dataset {self.owner}/{self.name} not found (you can only create datasets as {self.me()})")
        o = self.opts
        self.client.create_dataset(
            DatasetCreate(
                name=self.name,
                description=o.description or "",
                tags=list(o.tags),
                visibility=o.visibility or Visibility.private,
            )
        )
        self.created_dataset = True

    def _unchanged(self, latest: int, look: LookAhead | None) -> bool:
        ahead = look.manifest(latest) if look is not None else None
        entries = ahead if ahead is not None else self.client.iter_manifest(self.owner, self.name, latest)
        return up_to_date(entries, self.scanned)

    def _open(self) -> None:
        """Resume this job's own open session (or the one ``--session`` names), else open
        one: two jobs on one dataset never share a staging area."""
        c, owner, name, o = self.client, self.owner, self.name, self.opts
        key = key_for(c.base_url, owner, name, self.src)
        if o.new_session:
            # The CLI has asked the user; the hub deletes the old session's objects.
            for s in c.list_sessions(owner, name).items:
                if s.client_key == key:
                    c.abort_session(s.id)
            key = key_for(c.base_url, owner, name, self.src, fresh=True)
        self.key = key
        session = c.open_session(owner, name, SessionOpen(resume=not o.new_session, client_key=key, session_id=o.session))
        verb = "Resuming" if session.resumed else "Opened"
        self.on_event(Phase("session", f"{verb} upload session {session.id} for {owner}/{name}"))
        if session.credentials is None:
            session = c.refresh_session(session.id).model_copy(update={"resumed": session.resumed})
        self.session = session

    # --- 5-8: plan, transfer, verify, commit ----------------------------------------------

    def _send_and_commit(self, rclone: str) -> Version:
        assert self.session is not None
        label = f"{self.owner}/{self.name} (session {self.session.id})"
        try:
            with private_dir() as work:
                remote = SessionRemote(self.client, self.session, work)
                own = self.session.client_key is not None and self.session.client_key == self.key
                run = SessionRun(self.client, self.opts, self.scanned, self.tally, rclone, remote, work, own_session=own)
                return run.run(label, carry=self.has_versions)
        except KeyboardInterrupt:
            raise InterruptedTransfer(
                f"interrupted; the upload session of {label} is kept: run the same command to resume"
            ) from None
        except CommitRefusedError as e:
            raise CommitRefusedError(
                f"the hub refused the commit of {label}: storage differs from the manifest for "
                f"{len(e.details)} file(s); the session is kept, run the same command to resume",
                details=e.details,
            ) from None


def upload(
    client: HubClient,
    path: str | os.PathLike[str],
    ref: DatasetRef | None = None,
    *,
    options: UploadOptions | None = None,
    on_event: EventCallback = NOOP,
) -> UploadResult:
    """Upload ``path`` (file or folder) as the next version of ``ref``; see the module doc.

    Raises UsageError (bad input, nothing sent or created), TransferError (rclone failed
    or files changed; session kept), CommitRefusedError (storage differs from the
    manifest; session kept), InterruptedTransfer (Ctrl-C; session kept).
    """
    return Upload(client, path, ref, options or UploadOptions(), on_event).run()


__all__ = ["Upload", "UploadOptions", "UploadResult", "Tally", "upload", "default_name"]
