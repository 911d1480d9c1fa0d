"""``download``: a version, or part of it, into a folder (``cat``, one file to a stream,
is in ``transfer.cat`` and importable from here).

Download plan: the version's manifest is the truth. Selected entries (``--include`` /
``--exclude``, rclone glob rules) are compared with what is already in the destination:

* missing → fetched;
* present with the manifest's size and content (BLAKE3, or MD5 for versions uploaded
  before dshub recorded BLAKE3) → skipped (this is how a re-run resumes);
* present but different → a conflict: refused, listing them, unless ``force``.

Before fetching, the destination must have room for the files to fetch and take a new
file (``destination``): a read-only folder or a full disk is one line, not one rclone
error per file. rclone receives exactly the files to fetch (``--files-from-raw``); it
writes each into a ``.partial`` file and renames it when complete, so a killed download
never leaves a truncated file under the real name. Every fetched file is checked against the manifest
(size, then BLAKE3 — or MD5 where the manifest has no BLAKE3) as soon as rclone reports
it done, on other threads while the rest downloads (the local broker's read endpoints
serve no MD5 ETags, so this check is the one that counts); a bad one is deleted so the
next run fetches it again. BLAKE3 because this check is the CPU a download adds to
rclone's: MD5 ran at ~570 MB/s per core here, BLAKE3 at ~2.7 GB/s.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dshub.errors import ConflictError, HubResponseError, TransferError, UsageError
from dshub.models import ErrorDetail, ManifestEntry
from dshub.refs import DatasetRef, RefError, validate_relpath
from dshub.transfer import rclone as rc
from dshub.transfer.background import soon
from dshub.transfer.cat import cat
from dshub.transfer.common import HashCache, private_dir, static_env, write_list
from dshub.transfer.destination import check_room, make_writable_dir, os_error
from dshub.transfer.runner import run_rclone
from dshub.transfer.resolve import resolve
from dshub.transfer.scan import make_filter
from dshub.transfer.stats import NOOP, EventCallback, FileDone, Phase, ProgressEvent, ScanDone, StatsParser
from dshub.transfer.upload_options import check_part_size
from dshub.util.parts import DEFAULT_PART, in_parts, part_size_for

if TYPE_CHECKING:
    from dshub.api.client import HubClient
    from dshub.models import ReadGrant
    from dshub.util.rclone_bin import RcloneInfo


@dataclass
class DownloadResult:
    owner: str
    name: str
    version: int
    dest: str
    files: int
    bytes: int
    fetched_files: int
    fetched_bytes: int
    skipped_files: int
    seconds: float
    skipped_bytes: int = 0
    checked_files: int = 0
    #: Ranges of big files fetched by this run, and found complete from an earlier one.
    fetched_parts: int = 0
    kept_parts: int = 0

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class DownloadStats:
    """The one accumulator of a download: the engine fills it, the result reports it."""

    files: int = 0
    bytes: int = 0
    skipped_files: int = 0
    skipped_bytes: int = 0
    fetched_files: int = 0
    fetched_bytes: int = 0
    checked_files: int = 0
    fetched_parts: int = 0
    kept_parts: int = 0

    def planned(self, entries: list[ManifestEntry], todo: list[ManifestEntry]) -> None:
        self.files, self.bytes = len(entries), sum(e.size for e in entries)
        todo_bytes = sum(e.size for e in todo)
        self.skipped_files, self.skipped_bytes = len(entries) - len(todo), self.bytes - todo_bytes

    def fetched(self, size: int) -> None:
        self.fetched_files += 1
        self.fetched_bytes += size


def _empty(dest: str) -> bool:
    """True when ``dest`` does not exist or is an empty folder."""
    try:
        with os.scandir(dest) as it:
            return next(it, None) is None
    except FileNotFoundError:
        return True
    except OSError:  # not a folder, unreadable: the planning below reports it
        return False


def _local_state(dest: str, e: ManifestEntry, cache: HashCache) -> str:
    """``missing``, ``same`` or ``different`` for one manifest entry in ``dest``."""
    p = os.path.join(dest, e.path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "different"
    except OSError as err:  # a folder on the way we may not enter
        raise os_error(err, "read") from None
    if not os.path.isfile(p) or st.st_size != e.size:
        return "different"
    if e.blake3:
        same = cache.digests(dest, e.path, md5=False).blake3 == e.blake3
    else:
        same = not e.md5 or cache.md5(dest, e.path) == e.md5
    return "same" if same else "different"


# Files from this size up are hashed on several threads at once; smaller ones on one.
BIG_FILE = 1 << 20


class _Verifier:
    """Checks downloaded files against the manifest (size, then BLAKE3 or MD5) as soon as
    rclone reports each one done, so hashing overlaps the download instead of following
    it. A bad file is deleted so the next run fetches it again instead of calling it a
    conflict.

    Two lanes of plain threads fed by SimpleQueues (a Future per file cost the thread
    reading rclone's output ~90 us each). Small files go to one thread: their check is
    mostly Python and system calls under the GIL, and measured on 5,000 × 20 KiB it took
    0.40 CPU-s on one thread against 0.8-1.2 CPU-s (and longer) on two or four, which
    only fought over the GIL — CPU the transfer itself needs. Big files go to up to four
    threads: BLAKE3 and MD5 release the GIL on each 1 MiB chunk, so they hash in parallel
    and the files that finish together at the end are checked together."""

    def __init__(self, dest: str, cache: HashCache, todo: list[ManifestEntry]) -> None:
        self.dest, self.cache = dest, cache
        self.expected = {e.path: e for e in todo}
        self.stop = threading.Event()
        self._small: queue.SimpleQueue[ManifestEntry | None] = queue.SimpleQueue()
        self._big: queue.SimpleQueue[ManifestEntry | None] = queue.SimpleQueue()
        self._queued: set[str] = set()
        # Written by the workers (one key each); read after they are joined.
        self._results: dict[str, ErrorDetail | None] = {}
        self._failure: BaseException | None = None
        big_lane = min(4, os.cpu_count() or 1) if any(e.size >= BIG_FILE for e in todo) else 0
        self._lanes: list[tuple[queue.SimpleQueue[ManifestEntry | None], threading.Thread]] = [
            (self._small, threading.Thread(target=self._work, args=(self._small,), name="dshub-verify", daemon=True))
        ] + [
            (self._big, threading.Thread(target=self._work, args=(self._big,), name=f"dshub-verify-big-{i}", daemon=True))
            for i in range(big_lane)
        ]
        for _, w in self._lanes:
            w.start()

    def submit(self, rel: str) -> None:
        e = self.expected.get(rel)
        if e is not None and rel not in self._queued:
            self._queued.add(rel)
            (self._big if e.size >= BIG_FILE and len(self._lanes) > 1 else self._small).put(e)

    def _work(self, lane: queue.SimpleQueue[ManifestEntry | None]) -> None:
        while (e := lane.get()) is not None:
            if self.stop.is_set():
                continue  # drain to the sentinel
            try:
                self._results[e.path] = self._check(e)
            except BaseException as exc:  # a bug, or Cancelled: reported by finish()
                self._failure = self._failure or exc
                self.stop.set()

    def _check(self, e: ManifestEntry) -> ErrorDetail | None:
        p = os.path.join(self.dest, e.path)
        try:
            st = os.stat(p)
        except OSError:
            return ErrorDetail(path=e.path, problem="missing after download")
        bad: ErrorDetail | None = None
        if st.st_size != e.size:
            bad = ErrorDetail(path=e.path, problem="size differs", expected=e.size, actual=st.st_size)
        elif e.blake3 or e.md5:
            kind, want = ("blake3", e.blake3) if e.blake3 else ("md5", e.md5)
            try:
                d = self.cache.digests(
                    self.dest, e.path, self.stop, fresh=True, md5=kind == "md5", blake3=kind == "blake3", st=st
                )
            except OSError as err:  # removed or made unreadable under us
                return ErrorDetail(path=e.path, problem=f"cannot read after download: {err.strerror}")
            got = d.blake3 if kind == "blake3" else d.md5
            if got != want:
                bad = ErrorDetail(path=e.path, problem=f"{kind} differs", expected=want, actual=got)
        if bad is not None:
            try:
                os.unlink(p)
            except OSError:
                pass
        return bad

    def finish(self) -> list[ErrorDetail]:
        """Check what rclone did not report (there should be nothing) and collect."""
        for rel in self.expected:
            self.submit(rel)
        self._join()
        if self._failure is not None:
            raise self._failure
        return [b for rel in self.expected if (b := self._results.get(rel)) is not None]

    @property
    def checked(self) -> int:
        """Files checked so far (good or bad); final after ``finish``."""
        return len(self._results)

    def close(self) -> None:
        """Stop at once (an error or Ctrl-C): files not checked yet are left unchecked."""
        self.stop.set()
        self._join()

    def _join(self) -> None:
        if any(w.is_alive() for _, w in self._lanes):
            for lane, _ in self._lanes:
                lane.put(None)
            for _, w in self._lanes:
                w.join()


@dataclass(frozen=True)
class DownloadOptions:
    """What to fetch and how: rclone glob filters, overwrite, parallelism, bandwidth."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    force: bool = False
    transfers: int = rc.DEFAULT_TRANSFERS
    bwlimit: str | None = None
    #: Files of two ranges or more are fetched in ranges of this size, resumably.
    part_size: int = DEFAULT_PART


@dataclass
class Download:
    """One download, in explicit phases: resolve → fetch manifest → plan → fetch → check.

    ``run()`` goes through them in order; each phase reads what the previous one left on
    the object and fills ``stats``. Events go to ``on_event``; nothing here prints.
    """

    client: HubClient
    ref: DatasetRef
    dest: str
    options: DownloadOptions = field(default_factory=DownloadOptions)
    on_event: EventCallback = NOOP
    stats: DownloadStats = field(default_factory=DownloadStats)
    cache: HashCache = field(init=False)
    owner: str = ""
    name: str = ""
    version: int = 0
    _started: float = field(default_factory=time.monotonic)
    _rclone: Future[RcloneInfo] | None = None
    _grant: Future[ReadGrant] | None = None

    def run(self) -> DownloadResult:
        """Download the version (or the selected files) into ``dest``; see module doc."""
        self.resolve()
        todo = self.plan(self.fetch_manifest())
        if todo:
            self.fetch_and_check(todo)
        return self.result()

    @property
    def label(self) -> str:
        return f"{self.owner}/{self.name}@v{self.version}"

    def resolve(self) -> None:
        """Which version; the rclone probe and (into an empty folder) the read grant start
        on threads so they overlap the hub calls and the manifest."""
        self.dest = os.path.abspath(os.fspath(self.dest))
        # rclone's version probe (~0.1 s uncached) runs while the hub is asked.
        self._rclone = rc.find_rclone_soon()
        self.owner, self.name, self.version = resolve(self.client, self.ref)
        # Into a new or empty folder every matching file is fetched, so the read grant
        # (the hub starts an endpoint) is asked for while the manifest streams. A folder
        # holding files may need nothing (a re-run): there it is asked for only if needed.
        if _empty(self.dest):
            owner, name, version = self.owner, self.name, self.version
            self._grant = soon(lambda: self.client.read_credentials(owner, name, version), "dshub-read-grant")

    def fetch_manifest(self) -> list[ManifestEntry]:
        """The manifest's entries the ref's path and the filters select."""
        keep = _selector(self.ref, self.options)
        entries: list[ManifestEntry] = []
        for e in self.client.iter_manifest(self.owner, self.name, self.version):
            try:
                validate_relpath(e.path)  # a hostile hub must not write outside dest
            except RefError as err:
                raise HubResponseError(f"the hub listed an unsafe path: {err}") from None
            if keep(e.path):
                entries.append(e)
        if not entries:
            raise UsageError(f"no files of {self.label} match the given filters")
        return entries

    def plan(self, entries: list[ManifestEntry]) -> list[ManifestEntry]:
        """Compare with what ``dest`` holds: the files to fetch; conflicts are refused."""
        self.on_event(Phase("plan", f"Checking {self.dest} against {self.label}"))
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise UsageError(f"{self.dest} exists and is not a folder")
        self.cache = HashCache(self.dest)
        todo: list[ManifestEntry] = []
        conflicts: list[ErrorDetail] = []
        for e in entries:
            state = _local_state(self.dest, e, self.cache)
            if state == "missing" or (state == "different" and self.options.force):
                todo.append(e)
            elif state == "different":
                conflicts.append(ErrorDetail(path=e.path, problem="exists locally with different content"))
        self.cache.flush()
        if conflicts:
            raise ConflictError(
                f"{len(conflicts)} file(s) in {self.dest} differ from {self.label}; nothing was overwritten. "
                "Use --force to overwrite them, or download elsewhere",
                details=conflicts,
            )
        self.stats.planned(entries, todo)
        s = self.stats
        self.on_event(
            ScanDone(
                files=len(todo),
                bytes=s.bytes - s.skipped_bytes,
                skipped_files=s.skipped_files,
                skipped_bytes=s.skipped_bytes,
            )
        )
        return todo

    def fetch_and_check(self, todo: list[ManifestEntry]) -> None:
        """Check the destination can take the files, then fetch them with rclone while
        the verifier checks each one as it lands."""
        assert self._rclone is not None
        info = self._rclone.result()
        # Before anything is asked of the hub or written: room for the files, and a
        # folder we can create and write in.
        check_room(self.dest, [e.size for e in todo])
        make_writable_dir(self.dest)
        grant = self._grant.result() if self._grant is not None else self.client.read_credentials(
            self.owner, self.name, self.version
        )
        big = [e for e in todo if in_parts(e.size, self.options.part_size)]
        small = [e for e in todo if not in_parts(e.size, self.options.part_size)]
        verifier = _Verifier(self.dest, self.cache, small)
        try:
            if small:
                with private_dir() as work:
                    self.fetch(info, grant, small, work, verifier)
            if big:
                self.fetch_ranges(info, grant, big)
            self.check(verifier)
        finally:
            verifier.close()
            self.cache.flush()

    def fetch_ranges(self, info: RcloneInfo, grant: ReadGrant, big: list[ManifestEntry]) -> None:
        """Big files in ranges that a re-run does not fetch again (``transfer.ranges``)."""
        from dshub.transfer.ranges import RangeFetcher

        n = sum(-(-e.size // part_size_for(e.size, self.options.part_size)) for e in big)
        self.on_event(Phase("download", f"Downloading {len(big)} big file(s) in {n} ranges"))
        fetcher = RangeFetcher(
            info.path, grant.location, static_env(grant.location, grant.credentials), self.dest,
            part_size=self.options.part_size, transfers=self.options.transfers, on_event=self.on_event,
            bwlimit=self.options.bwlimit,
        )
        try:
            fetcher.fetch(big)
        finally:
            r = fetcher.result
            self.stats.fetched_parts += r.fetched_parts
            self.stats.kept_parts += r.kept_parts
            sizes = {e.path: e.size for e in big}
            for rel in r.finished:
                self.stats.fetched(sizes[rel])
            self.stats.checked_files += len(r.finished)

    def fetch(
        self, info: RcloneInfo, grant: ReadGrant, todo: list[ManifestEntry], work: str, verifier: _Verifier
    ) -> None:
        """rclone copy of exactly ``todo``; each finished file goes to the verifier."""
        listfile = write_list(os.path.join(work, "files.txt"), [e.path for e in todo])
        sizes = {e.path: e.size for e in todo}
        parser = StatsParser(total_bytes=sum(sizes.values()), total_files=len(todo))
        t = self.options.transfers
        argv = rc.copy_down_args(
            info.path, grant.location, self.dest, listfile,
            transfers=t, checkers=max(2 * t, 8), bwlimit=self.options.bwlimit,
        )
        self.on_event(Phase("download", f"Downloading {len(todo)} file(s)"))

        def feed(ev: ProgressEvent) -> None:
            if isinstance(ev, FileDone) and ev.path in sizes:
                self.stats.fetched(sizes[ev.path])
                verifier.submit(ev.path)
            self.on_event(ev)

        code = run_rclone(argv, static_env(grant.location, grant.credentials), parser, feed)
        err = rc.error_for_exit(code, "download", parser.errors[-3:], parser.failures)
        if err is not None:
            raise err

    def check(self, verifier: _Verifier) -> None:
        """Wait for the verifier; files that do not match the manifest were deleted."""
        self.on_event(Phase("verify", "Verifying downloaded files"))
        bad = verifier.finish()
        self.stats.checked_files += verifier.checked
        if bad:
            raise TransferError(
                f"{len(bad)} downloaded file(s) do not match the manifest and were removed; "
                "run the same command again",
                details=bad,
            )

    def result(self) -> DownloadResult:
        s = self.stats
        return DownloadResult(
            owner=self.owner,
            name=self.name,
            version=self.version,
            dest=self.dest,
            files=s.files,
            bytes=s.bytes,
            fetched_files=s.fetched_files,
            fetched_bytes=s.fetched_bytes,
            skipped_files=s.skipped_files,
            seconds=time.monotonic() - self._started,
            skipped_bytes=s.skipped_bytes,
            checked_files=s.checked_files,
            fetched_parts=s.fetched_parts,
            kept_parts=s.kept_parts,
        )


def _selector(ref: DatasetRef, options: DownloadOptions) -> Callable[[str], bool]:
    """The test a manifest path must pass: below ``ref.path`` (if any) and the filters."""
    keep = make_filter(options.include, options.exclude)
    if not ref.path:
        return keep
    only, pfx = ref.path, ref.path.rstrip("/") + "/"
    return lambda p: (p == only or p.startswith(pfx)) and keep(p)


def download(
    client: HubClient,
    ref: DatasetRef,
    dest: str | os.PathLike[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    force: bool = False,
    transfers: int = rc.DEFAULT_TRANSFERS,
    bwlimit: str | None = None,
    part_size: int = DEFAULT_PART,
    on_event: EventCallback = NOOP,
) -> DownloadResult:
    """Download a version (or the files matching the filters) into ``dest``; see module doc."""
    check_part_size(part_size)
    options = DownloadOptions(
        include=include, exclude=exclude, force=force, transfers=transfers, bwlimit=bwlimit, part_size=part_size
    )
    return Download(client, ref, os.fspath(dest), options, on_event).run()


__all__ = ["Download", "DownloadOptions", "DownloadResult", "DownloadStats", "cat", "download"]
