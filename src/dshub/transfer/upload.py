"""``upload``: send a local file or folder to a dataset as a new version, resumably.

The flow (DESIGN.md, issue 5):

1. scan the local tree (errors before anything is written to the hub; totals for the
   progress bar). Meanwhile a thread reads what step 2 needs — the dataset, its open
   sessions, the latest manifest (``lookahead``) — so a re-run with nothing to send
   costs the longer of the two, not their sum;
2. resolve the ref (default ``<me>/<normalised folder name>``), create the dataset if
   missing; if nothing changed since the latest version, say so and stop;
3. open the dataset's upload session, or resume the open one;
4. a resumed session only: list its prefix once (``lsjson --fast-list``: one request per
   1,000 keys, with MD5s) and plan: only files missing or of another size are handed to
   rclone (``--files-from-raw``, ``--no-check-dest``) — a resumed upload never re-sends
   finished files and a no-op re-run costs listing requests only, not a HEAD per file.
   A new session's prefix is empty: no listing at all;
5. rclone copies, credentials refreshed by ``credential_process`` while it runs. rclone
   checks what it sends (Content-MD5 on every PUT and part, the returned ETag against the
   local MD5). The manifest's MD5s: for large files (mean ≥ 64 KiB) the ones rclone
   checked, read from its debug log; otherwise dshub hashes the files. dshub also
   computes each file's BLAKE3 (what downloads verify, ~5x cheaper than MD5), in a
   background thread overlapping the transfer — one read of each file by dshub;
6. verify: files unchanged since the scan (size, mtime, inode); objects kept from an
   earlier attempt whose MD5 differs from the file's (changed, same size) are re-sent;
   stray objects deleted;
7. commit the manifest (path, size, md5, blake3); the hub checks storage against it. Only if it
   finds a difference does dshub list the prefix, repair exactly that and commit again.

Interrupted anywhere (Ctrl-C, kill -9, network loss): the session stays open, the next
run resumes it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dshub.errors import (
    CommitRefusedError,
    DshubError,
    InterruptedTransfer,
    NotFoundError,
    TransferError,
    UsageError,
)
from dshub.models import (
    Credentials,
    Dataset,
    DatasetCreate,
    DatasetUpdate,
    Location,
    ManifestEntry,
    SessionOpen,
    UploadSession,
    Version,
    Visibility,
)
from dshub.refs import DatasetRef, RefError, normalise_name, validate_name
from dshub.transfer import rclone as rc
from dshub.transfer.common import (
    HashCache,
    hash_in_background,
    list_remote,
    private_dir,
    refreshing_env,
    static_env,
    write_list,
)
from dshub.transfer.lookahead import Head, LookAhead
from dshub.transfer.runner import run_quiet, run_rclone
from dshub.transfer.scan import LocalFile, ScanResult, restat, scan
from dshub.transfer.stats import NOOP, EventCallback, Phase, ScanDone, StatsParser, Warning_

if TYPE_CHECKING:
    from dshub.api.client import HubClient

MAX_ATTEMPTS = 3
# From this mean file size up, rclone reports the MD5 it checked for each file (debug
# log) instead of dshub reading every file a second time to hash it. Measured with 1.75
# on 2 cores: debug logging costs rclone ~80 us of CPU per file (four more lines);
# hashing costs dshub ~30 us per file plus ~1.5 ms per MiB — break-even near 34 KiB.
REPORT_MD5_MIN_MEAN = 64 * 1024


@dataclass
class UploadOptions:
    """What ``dshub upload`` lets the user choose."""

    description: str | None = None
    tags: Sequence[str] = ()
    visibility: Visibility | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    dry_run: bool = False
    transfers: int = rc.DEFAULT_TRANSFERS
    new_session: bool = False
    bwlimit: str | None = None
    rclone_args: Sequence[str] = ()


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
    skipped_files: int = 0
    seconds: float = 0.0
    resumed: bool = False
    created_dataset: bool = False
    session_id: str | None = None
    name_normalised_from: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        base = f"{self.owner}/{self.name}"
        return f"{base}@v{self.version}" if self.version else base

    @property
    def throughput(self) -> float:
        """Bytes per second actually sent."""
        return self.sent_bytes / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        d["throughput"] = round(self.throughput, 1)
        d["seconds"] = round(self.seconds, 3)
        return d


def default_name(path: str) -> str:
    """The dataset name for a folder/file path (``./My Taxi Data/`` → ``my-taxi-data``)."""
    base = os.path.basename(os.path.abspath(path.rstrip(os.sep) or path))
    return normalise_name(base)


def _hub_login(client: HubClient) -> tuple[str, str | None]:
    # The credential_process child needs the hub URL and token (given through rclone's
    # environment only, never argv).
    token = client.token or os.environ.get("DSHUB_TOKEN")
    return client.base_url, token


def _ensure_dataset(
    client: HubClient, owner: str, name: str, opts: UploadOptions, me: Callable[[], str], head: Head | None
) -> Dataset | None:
    """Create the dataset if missing (returns None), else apply the metadata options
    given and return the dataset (as updated). ``head``: the dataset as read ahead."""
    try:
        if head is None:
            ds = client.get_dataset(owner, name)
        elif head.dataset is None:
            raise NotFoundError(f"dataset {owner}/{name} not found")
        else:
            ds = head.dataset
    except NotFoundError:
        if owner != me():
            raise NotFoundError(
                f"dataset {owner}/{name} not found (you can only create datasets as {me()})"
            ) from None
        client.create_dataset(
            DatasetCreate(
                name=name,
                description=opts.description or "",
                tags=list(opts.tags),
                visibility=opts.visibility or Visibility.private,
            )
        )
        return None
    if opts.description is not None or opts.tags or opts.visibility is not None:
        return client.update_dataset(
            owner,
            name,
            DatasetUpdate(
                description=opts.description,
                tags=list(opts.tags) if opts.tags else None,
                visibility=opts.visibility,
            ),
        )
    return ds


def _up_to_date(manifest: Iterator[ManifestEntry], sc: ScanResult) -> bool:
    """True when the latest version (its ``manifest``) holds exactly the scanned files
    (paths, sizes, content). Hashes locally only when paths and sizes already agree."""
    local = sc.by_path()
    seen = 0
    entries: list[ManifestEntry] = []
    for e in manifest:
        f = local.get(e.path)
        if f is None or f.size != e.size or not (e.md5 or e.blake3):
            return False
        entries.append(e)
        seen += 1
    if seen != len(local):
        return False
    cache = HashCache(sc.root)
    # Look the cache up with the scan's stat (taken moments ago) instead of a second stat
    # per file; hash only what the cache lacks.
    try:
        return all(_same_content(cache, sc.root, e, local[e.path]) for e in entries)
    finally:
        cache.flush()


def _same_content(cache: HashCache, root: str, e: ManifestEntry, f: LocalFile) -> bool:
    """Does the local file hold the entry's content? A cached digest decides (MD5 first:
    what an upload caches), else the file is hashed, with BLAKE3 where the entry has one
    (a fifth of MD5's CPU)."""
    known = cache.known_digests(e.path, f.size, f.mtime_ns, f.ino)
    if e.md5 and known.md5:
        return known.md5 == e.md5
    if e.blake3 and known.blake3:
        return known.blake3 == e.blake3
    if e.blake3:
        return cache.digests(root, e.path, md5=False).blake3 == e.blake3
    return cache.md5(root, e.path) == e.md5


def _open_session(client: HubClient, owner: str, name: str, new_session: bool) -> UploadSession:
    if new_session:
        # The CLI has asked the user; the old session's objects are deleted by the hub.
        for s in client.list_sessions(owner, name).items:
            client.abort_session(s.id)
        return client.open_session(owner, name, SessionOpen(resume=False))
    return client.open_session(owner, name, SessionOpen(resume=True))


def upload(
    client: HubClient,
    path: str | os.PathLike[str],
    ref: DatasetRef | None = None,
    *,
    options: UploadOptions | None = None,
    on_event: EventCallback = NOOP,
) -> UploadResult:
    """Upload ``path`` (file or folder) as the next version of ``ref``; see module doc.

    Raises UsageError (bad input, nothing sent), TransferError (rclone failed or files
    changed; session kept), CommitRefusedError (storage differs from the manifest;
    session kept), InterruptedTransfer (Ctrl-C; session kept).
    """
    opts = options or UploadOptions()
    started = time.monotonic()
    src = os.fspath(path)
    # rclone's version probe (~0.1 s uncached) runs while the folder is scanned.
    rclone_lookup = None if opts.dry_run else rc.find_rclone_soon()
    # Asked only when needed: `OWNER/NAME` of an existing dataset needs no /whoami round trip
    # (a bad token fails on the first call either way).
    me = functools.cache(lambda: client.whoami().name)
    look = _look_ahead(client, src, ref, opts, me)
    try:
        on_event(Phase("scan", f"Scanning {src}"))
        sc = scan(src, include=opts.include, exclude=opts.exclude)
        return _upload_scanned(client, src, sc, ref, opts, on_event, started, rclone_lookup, me, look)
    finally:
        if look is not None:
            look.close()


def _look_ahead(
    client: HubClient, src: str, ref: DatasetRef | None, opts: UploadOptions, me: Callable[[], str]
) -> LookAhead | None:
    """Start asking the hub what a no-op check needs while the folder is scanned (reads
    only); None where no such check follows or the name is bad (reported after the scan,
    as without look-ahead)."""
    if opts.dry_run or opts.new_session or not os.path.isdir(src):
        return None  # a single file scans in no time; a missing path is an error first
    if ref is None:
        name, owner = default_name(src), None
    else:
        name, owner = ref.name, ref.owner
    try:
        validate_name(name)
    except RefError:
        return None
    if ref is not None and (ref.version is not None or ref.path):
        return None
    return LookAhead(client, (lambda: owner) if owner else me, name)


def _upload_scanned(
    client: HubClient,
    src: str,
    sc: ScanResult,
    ref: DatasetRef | None,
    opts: UploadOptions,
    on_event: EventCallback,
    started: float,
    rclone_lookup: Future[rc.RcloneInfo] | None,
    me: Callable[[], str],
    look: LookAhead | None,
) -> UploadResult:
    warnings: list[str] = []
    if sc.symlinks:
        msg = f"skipping {len(sc.symlinks)} symbolic link(s) (not followed; copy with `cp -rL` to include targets)"
        warnings.append(msg)
        on_event(Warning_(msg, tuple(sc.symlinks)))
    if sc.empty_dirs:
        msg = f"{len(sc.empty_dirs)} empty folder(s) will not exist in the dataset (object storage has no folders)"
        warnings.append(msg)
        on_event(Warning_(msg, tuple(sc.empty_dirs)))
    on_event(ScanDone(files=len(sc.files), bytes=sc.total_bytes))

    normalised_from = None
    if ref is None:
        name = default_name(src)
        raw = os.path.basename(os.path.abspath(src))
        if name != raw:
            normalised_from = raw
        ref = DatasetRef(name=name, owner=me())
    else:
        try:
            validate_name(ref.name)
        except RefError as e:
            raise UsageError(str(e)) from None
        if ref.owner is None:
            ref = ref.with_owner(me())
    if ref.version is not None or ref.path:
        raise UsageError(
            f"{ref}: upload creates the next version itself; give OWNER/NAME without @vN or :PATH"
        )
    owner, name = ref.owner or me(), ref.name

    result = UploadResult(
        status="dry_run",
        owner=owner,
        name=name,
        version=None,
        files=len(sc.files),
        bytes=sc.total_bytes,
        name_normalised_from=normalised_from,
        warnings=warnings,
    )
    if opts.dry_run:
        result.seconds = time.monotonic() - started
        return result

    assert rclone_lookup is not None
    info = rclone_lookup.result()  # before opening a session: none opened for nothing
    on_event(Phase("session", f"Preparing {owner}/{name}"))
    head = look.head() if look is not None else None
    ds = _ensure_dataset(client, owner, name, opts, me, head)
    result.created_dataset = ds is None
    if ds is not None and not opts.new_session:
        open_sessions = head.open_sessions if head is not None else client.list_sessions(owner, name).items
        if ds.latest_version and not open_sessions:
            ahead = look.manifest(ds.latest_version) if look is not None else None
            entries = ahead if ahead is not None else client.iter_manifest(owner, name, ds.latest_version)
            if _up_to_date(entries, sc):
                result.status = "up_to_date"
                result.version = ds.latest_version
                result.skipped_files = len(sc.files)
                result.seconds = time.monotonic() - started
                return result

    session = _open_session(client, owner, name, opts.new_session)
    resumed = session.resumed
    result.session_id = session.id
    result.version = session.version
    result.resumed = resumed
    on_event(
        Phase(
            "session",
            f"{'Resuming' if resumed else 'Opened'} upload session for {owner}/{name}@v{session.version}",
        )
    )
    try:
        if session.credentials is None:
            session = client.refresh_session(session.id)
        assert session.credentials is not None
        hub_url, token = _hub_login(client)
        with private_dir() as work:
            env = refreshing_env(session.location, session.id, hub_url, token, work, session.credentials)
            envs = _Envs(client, session, env, os.path.join(work, "credentials.json"))
            manifest = _transfer(info.path, envs, resumed, sc, opts, work, result, on_event)
            # Commit: the hub checks storage against the manifest before publishing.
            on_event(Phase("commit", f"Committing {owner}/{name}@v{session.version} ({len(manifest)} files)"))
            version = _commit(client, info.path, envs, sc, manifest, opts, work, result, on_event)
    except KeyboardInterrupt:
        raise InterruptedTransfer(
            f"interrupted; the upload session of {owner}/{name}@v{session.version} is kept: "
            "run the same command to resume"
        ) from None
    except CommitRefusedError as e:
        raise CommitRefusedError(
            f"the hub refused the commit of {owner}/{name}@v{session.version}: storage differs from the "
            f"manifest for {len(e.details)} file(s); the session is kept, run the same command to resume",
            details=e.details,
        ) from None
    result.status = "committed"
    result.version = version.version
    result.seconds = time.monotonic() - started
    return result


class _Envs:
    """rclone environments of one upload: ``long`` for the copy (credentials refreshed by
    credential_process inside rclone), ``short()`` for quick listings and deletes (static
    current credentials: spares each short rclone the credential_process start-up)."""

    def __init__(self, client: HubClient, session: UploadSession, long: dict[str, str], cache: str) -> None:
        self.client = client
        self.session = session
        self.long = long
        self.cache = cache

    def short(self) -> dict[str, str]:
        from dshub.transfer.credential_process import MIN_MARGIN, margin_for, read_cache, write_cache

        cached = read_cache(self.cache)
        now = datetime.now(timezone.utc)
        if cached is not None:
            creds, issued = cached
            if creds.expiry - margin_for(issued, creds.expiry) - now > MIN_MARGIN * 6:
                return static_env(
                    self.session.location,
                    Credentials(
                        access_key_id=creds.access_key_id,
                        secret_access_key=creds.secret_access_key,
                        session_token=creds.session_token,
                        expiry=creds.expiry,
                    ),
                )
        fresh = self.client.refresh_session(self.session.id)
        assert fresh.credentials is not None
        write_cache(self.cache, fresh.credentials)
        if fresh.location != self.session.location:
            # The hub moved the session (e.g. a new local endpoint after expiry).
            self.session = fresh
            self.long.update(rc.remote_env(fresh.location, None, env_auth=True))
        return static_env(self.session.location, fresh.credentials)

    @property
    def location(self) -> Location:
        return self.session.location


def _transfer(
    rclone: str,
    envs: _Envs,
    resumed: bool,
    sc: ScanResult,
    opts: UploadOptions,
    work: str,
    result: UploadResult,
    on_event: EventCallback,
) -> list[ManifestEntry]:
    """Plan, copy, verify; returns the manifest to commit."""
    local = sc.by_path()
    if resumed:
        # A killed rclone leaves pending multipart uploads behind; abort them (the bytes
        # already committed as whole objects are kept). Not every store lets scoped
        # credentials do this; then the hub's expiry/commit cleanup takes care of them.
        short = envs.short()
        code, _, err = run_quiet(rc.cleanup_args(rclone, envs.location), short, timeout=60)
        # rclone serve s3 answers ListMultipartUploads with 404 NoSuchUpload when none
        # are pending: nothing to clean.
        if code != 0 and "NoSuchUpload" not in err:
            on_event(
                Warning_(
                    "could not clean up partial multipart uploads; the hub removes them when the session ends"
                )
            )

    on_event(Phase("plan", "Checking what is already uploaded"))
    # A new session's prefix is empty by construction: only a resumed one needs a look.
    # With MD5s (the ETag of the listing) so objects kept from an earlier attempt can be
    # checked against the local files below, not only by size.
    remote = list_remote(rclone, envs.location, envs.short(), hashes=True) if resumed else {}
    todo = [f.rel for f in sc.files if (o := remote.get(f.rel)) is None or o.size != f.size]
    kept = [f.rel for f in sc.files if f.rel in remote and remote[f.rel].size == f.size]
    stray = sorted(set(remote) - set(local))
    result.skipped_files = len(kept)
    todo_bytes = sum(local[r].size for r in todo)
    on_event(
        ScanDone(
            files=len(todo),
            bytes=todo_bytes,
            skipped_files=len(kept),
            skipped_bytes=sc.total_bytes - todo_bytes,
        )
    )

    cache = HashCache(sc.root)
    # Big files: take each sent file's MD5 from rclone (it hashes what it reads anyway and
    # checked that hash against the stored object); dshub computes their BLAKE3 only.
    # Small files: both digests here. Either way overlapping the transfer (see the constant).
    report = bool(todo) and todo_bytes >= REPORT_MD5_MIN_MEAN * len(todo)
    hasher = hash_in_background(
        sc.root, [f.rel for f in sc.files], cache, md5_known=set(todo) if report else frozenset()
    )
    verified: dict[str, str] = {}  # rel -> MD5 rclone checked, filled while it runs
    try:
        _copy(rclone, envs, sc, todo, opts, work, result, on_event, report_md5=report, verified=verified)
        on_event(Phase("verify", "Verifying uploaded files"))
        try:
            digests = hasher.result()
            hashes = {rel: d.md5 for rel, d in digests.items()}
            if report:
                hashes.update(_sent_hashes(sc, todo, verified, cache))
        except OSError:
            _check_unchanged(sc)  # a file removed or replaced under us: name it
            raise
        # One look at every file (a stat each), after the hashes: nothing changed since the
        # scan, so what rclone sent and what was hashed are the scanned bytes.
        _check_unchanged(sc)
    finally:
        hasher.close()
        if report:
            _remember_verified(sc, verified, cache)
        cache.flush()  # an interrupted run keeps what it hashed
    cache.compact()
    # What rclone sent it checked itself (Content-MD5 on every PUT and part, the ETag
    # against the local MD5). Left to check: objects kept from an earlier attempt whose
    # file has changed since without changing size. Re-send exactly those.
    stale = [r for r in kept if remote[r].md5 and remote[r].md5 != hashes[r]]
    if stale:
        msg = f"re-sending {len(stale)} file(s) whose stored copy differs (changed since the earlier attempt)"
        result.warnings.append(msg)
        result.skipped_files -= len(stale)
        on_event(Warning_(msg, tuple(stale)))
        _copy(rclone, envs, sc, stale, opts, work, result, on_event)
        _check_unchanged(sc)
    if stray:
        _delete(rclone, envs, work, stray)
    return [
        ManifestEntry(path=f.rel, size=f.size, md5=hashes[f.rel], blake3=digests[f.rel].blake3) for f in sc.files
    ]


def _sent_hashes(sc: ScanResult, todo: list[str], verified: dict[str, str], cache: HashCache) -> dict[str, str]:
    """MD5s of the files rclone sent: the ones it reported, any it did not report hashed here."""
    return {rel: verified.get(rel) or cache.md5(sc.root, rel) for rel in todo}


def _remember_verified(sc: ScanResult, verified: dict[str, str], cache: HashCache) -> None:
    """Put the MD5s rclone reported in the cache, for files unchanged since the scan — also
    when the run is interrupted: resuming, dshub compares the objects it keeps with the
    files by MD5 and would otherwise read every file already sent again."""
    local = sc.by_path()
    for rel, md5 in verified.items():
        f = local.get(rel)
        try:
            unchanged = f is not None and not f.changed(os.stat(os.path.join(sc.root, rel)))
        except OSError:
            continue
        if f is not None and unchanged:
            cache.remember(rel, f.size, f.mtime_ns, f.ino, md5)


def _delete(rclone: str, envs: _Envs, work: str, stray: list[str]) -> None:
    """Delete objects of the session that are not in the manifest (the commit refuses them)."""
    code, _, _ = run_quiet(
        rc.delete_args(rclone, envs.location, write_list(os.path.join(work, "stray.txt"), stray)),
        envs.short(),
        timeout=600,
    )
    if code != 0:
        raise TransferError(f"could not delete {len(stray)} stray object(s) from the session; run again")


def _commit(
    client: HubClient,
    rclone: str,
    envs: _Envs,
    sc: ScanResult,
    manifest: list[ManifestEntry],
    opts: UploadOptions,
    work: str,
    result: UploadResult,
    on_event: EventCallback,
) -> Version:
    """Commit; the hub checks storage against the manifest. No listing is made first:
    when the hub finds a difference (an object changed or added behind dshub's back, a
    stale object the listing could not see), dshub lists once, repairs exactly that and
    commits again. A second refusal is reported."""
    session_id = envs.session.id
    try:
        return client.commit_session(session_id, manifest)
    except CommitRefusedError:
        pass
    msg = "the hub found storage different from the upload (another writer?); repairing"
    result.warnings.append(msg)
    on_event(Warning_(msg))
    local = sc.by_path()
    hashes = {e.path: e.md5 for e in manifest}
    remote = list_remote(rclone, envs.location, envs.short(), hashes=True)
    stray = sorted(set(remote) - set(local))
    if stray:
        _delete(rclone, envs, work, stray)
    resend = [
        f.rel
        for f in sc.files
        if (o := remote.get(f.rel)) is None or o.size != f.size or (o.md5 and o.md5 != hashes[f.rel])
    ]
    if resend:
        msg = f"re-sending {len(resend)} file(s) missing or different in storage"
        result.warnings.append(msg)
        on_event(Warning_(msg, tuple(resend)))
        _copy(rclone, envs, sc, resend, opts, work, result, on_event)
        _check_unchanged(sc)
    return client.commit_session(session_id, manifest)


def _check_unchanged(sc: ScanResult) -> None:
    changed = restat(sc.root, sc.files)
    if changed:
        raise TransferError(
            f"{len(changed)} file(s) changed while uploading; nothing was published. "
            "Run the same command again once they stop changing (finished files are not re-sent)",
            details=changed,
        )


def _copy(
    rclone: str,
    envs: _Envs,
    sc: ScanResult,
    todo: list[str],
    opts: UploadOptions,
    work: str,
    result: UploadResult,
    on_event: EventCallback,
    *,
    report_md5: bool = False,
    verified: dict[str, str] | None = None,
) -> None:
    """Run rclone copy over ``todo`` until it succeeds (up to MAX_ATTEMPTS, re-planning
    from a fresh listing between attempts so finished files are never sent twice).
    With ``report_md5``, the MD5 rclone checked for each file lands in ``verified``."""
    local = sc.by_path()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if not todo:
            return
        on_event(
            Phase(
                "upload", f"Uploading {len(todo)} file(s)" + (f" (attempt {attempt})" if attempt > 1 else "")
            )
        )
        listfile = write_list(os.path.join(work, f"todo-{attempt}.txt"), todo)
        parser = StatsParser(total_bytes=sum(local[r].size for r in todo), total_files=len(todo))
        if verified is not None:
            parser.md5s = verified
        argv = rc.copy_up_args(
            rclone,
            sc.root,
            envs.location,
            listfile,
            transfers=opts.transfers,
            checkers=max(opts.transfers * 2, 8),
            bwlimit=opts.bwlimit,
            extra=opts.rclone_args,
            report_md5=report_md5,
        )
        try:
            code = run_rclone(argv, envs.long, parser, on_event)
        finally:
            result.sent_files += len(parser.files_done)
            result.sent_bytes += sum(local[p].size for p in parser.files_done if p in local)
        err = rc.error_for_exit(code, "upload", parser.errors[-3:])
        if err is None:
            return
        if code not in rc.RETRYABLE_EXIT_CODES and code != 6 or attempt == MAX_ATTEMPTS:
            raise err
        on_event(Warning_(f"rclone failed ({err.message}); retrying what is missing"))
        short = envs.short()
        remote = list_remote(rclone, envs.location, short, hashes=False)
        todo = [r for r in todo if (o := remote.get(r)) is None or o.size != local[r].size]


__all__ = ["UploadOptions", "UploadResult", "upload", "default_name", "DshubError", "InterruptedTransfer"]
