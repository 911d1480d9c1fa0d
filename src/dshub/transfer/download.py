"""``download`` (a version, or part of it, into a folder) and ``cat`` (one file to a stream).

Download plan: the version's manifest is the truth. Selected entries (``--include`` /
``--exclude``, rclone glob rules) are compared with what is already in the destination:

* missing → fetched;
* present with the manifest's size and content (BLAKE3, or MD5 for versions uploaded
  before dshub recorded BLAKE3) → skipped (this is how a re-run resumes);
* present but different → a conflict: refused, listing them, unless ``force``.

rclone receives exactly the files to fetch (``--files-from-raw``); it writes each into a
``.partial`` file and renames it when complete, so a killed download never leaves a
truncated file under the real name. Every fetched file is checked against the manifest
(size, then BLAKE3 — or MD5 where the manifest has no BLAKE3) as soon as rclone reports
it done, on other threads while the rest downloads (the local broker's read endpoints
serve no MD5 ETags, so this check is the one that counts); a bad one is deleted so the
next run fetches it again. BLAKE3 because this check is the CPU a download adds to
rclone's: MD5 ran at ~570 MB/s per core here, BLAKE3 at ~2.7 GB/s.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any

from dshub.errors import (
    ConflictError,
    HubResponseError,
    InterruptedTransfer,
    NotFoundError,
    TransferError,
    UsageError,
)
from dshub.models import ErrorDetail, ManifestEntry
from dshub.refs import DatasetRef, RefError, validate_relpath
from dshub.transfer import rclone as rc
from dshub.transfer.background import soon
from dshub.transfer.common import HashCache, private_dir, static_env, write_list
from dshub.transfer.runner import popen_rclone, run_quiet, run_rclone, stop
from dshub.transfer.scan import make_filter
from dshub.transfer.stats import NOOP, EventCallback, FileDone, Phase, ProgressEvent, ScanDone, StatsParser

if TYPE_CHECKING:
    from dshub.api.client import HubClient


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

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        d["seconds"] = round(self.seconds, 3)
        return d


def _resolve(client: HubClient, ref: DatasetRef) -> tuple[str, str, int]:
    owner = ref.owner or client.whoami().name
    v = client.get_version(owner, ref.name, ref.version)
    return owner, ref.name, v.version


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
    on_event: EventCallback = NOOP,
) -> DownloadResult:
    """Download a version (or the files matching the filters) into ``dest``; see module doc."""
    started = time.monotonic()
    dest = os.path.abspath(os.fspath(dest))
    # rclone's version probe (~0.1 s uncached) runs while the hub is asked and dest checked.
    rclone_lookup = rc.find_rclone_soon()
    owner, name, version = _resolve(client, ref)
    # Into a new or empty folder every matching file is fetched, so the read grant (the
    # hub starts an endpoint: ~0.15 s) is asked for while the manifest streams. A folder
    # holding files may need nothing (a re-run): there it is asked for only when needed.
    grant_soon = None
    if _empty(dest):
        grant_soon = soon(lambda: client.read_credentials(owner, name, version), "dshub-read-grant")
    keep = make_filter(include, exclude)
    if ref.path:  # OWNER/NAME:DIR → only below that path
        pfx = ref.path.rstrip("/") + "/"
        base_keep = keep
        keep = lambda p: (p == ref.path or p.startswith(pfx)) and base_keep(p)  # noqa: E731
    entries: list[ManifestEntry] = []
    for e in client.iter_manifest(owner, name, version):
        try:
            validate_relpath(e.path)  # a hostile hub must not write outside dest
        except RefError as err:
            raise HubResponseError(f"the hub listed an unsafe path: {err}") from None
        if keep(e.path):
            entries.append(e)
    if not entries:
        raise UsageError(f"no files of {owner}/{name}@v{version} match the given filters")
    total = sum(e.size for e in entries)

    on_event(Phase("plan", f"Checking {dest} against {owner}/{name}@v{version}"))
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise UsageError(f"{dest} exists and is not a folder")
    todo: list[ManifestEntry] = []
    conflicts: list[ErrorDetail] = []
    cache = HashCache(dest)
    for e in entries:
        state = _local_state(dest, e, cache)
        if state == "missing":
            todo.append(e)
        elif state == "different":
            if force:
                todo.append(e)
            else:
                conflicts.append(ErrorDetail(path=e.path, problem="exists locally with different content"))
    cache.flush()
    if conflicts:
        raise ConflictError(
            f"{len(conflicts)} file(s) in {dest} differ from {owner}/{name}@v{version}; nothing was overwritten. "
            "Use --force to overwrite them, or download elsewhere",
            details=conflicts,
        )
    todo_bytes = sum(e.size for e in todo)
    on_event(
        ScanDone(
            files=len(todo),
            bytes=todo_bytes,
            skipped_files=len(entries) - len(todo),
            skipped_bytes=total - todo_bytes,
        )
    )
    fetched_files = 0
    bad: list[ErrorDetail] = []
    if todo:
        info = rclone_lookup.result()
        grant = grant_soon.result() if grant_soon is not None else client.read_credentials(owner, name, version)
        os.makedirs(dest, exist_ok=True)
        env = static_env(grant.location, grant.credentials)
        with private_dir() as work:
            listfile = write_list(os.path.join(work, "files.txt"), [e.path for e in todo])
            parser = StatsParser(total_bytes=todo_bytes, total_files=len(todo))
            argv = rc.copy_down_args(
                info.path,
                grant.location,
                dest,
                listfile,
                transfers=transfers,
                checkers=max(2 * transfers, 8),
                bwlimit=bwlimit,
            )
            on_event(Phase("download", f"Downloading {len(todo)} file(s)"))
            verifier = _Verifier(dest, cache, todo)
            try:

                def feed(ev: ProgressEvent) -> None:
                    if isinstance(ev, FileDone):
                        verifier.submit(ev.path)
                    on_event(ev)

                code = run_rclone(argv, env, parser, feed)
                fetched_files = len(parser.files_done)
                err = rc.error_for_exit(code, "download", parser.errors[-3:])
                if err is not None:
                    raise err
                on_event(Phase("verify", "Verifying downloaded files"))
                bad = verifier.finish()
            finally:
                verifier.close()
                cache.flush()
        if bad:
            raise TransferError(
                f"{len(bad)} downloaded file(s) do not match the manifest and were removed; run the same command again",
                details=bad,
            )
    return DownloadResult(
        owner=owner,
        name=name,
        version=version,
        dest=dest,
        files=len(entries),
        bytes=total,
        fetched_files=fetched_files,
        fetched_bytes=todo_bytes,
        skipped_files=len(entries) - len(todo),
        seconds=time.monotonic() - started,
    )


def cat(client: HubClient, ref: DatasetRef, out: IO[bytes] | None = None) -> int:
    """Stream one file of a version (``ref.path``) to ``out`` (default: stdout) without
    writing it to disk. With a real file descriptor rclone writes to it directly, so the
    bytes never pass through Python. Returns the bytes written when known (else -1).
    A reader that goes away early (``| head``) is not an error."""
    if not ref.path:
        raise UsageError(f"{ref}: give the file to print as OWNER/NAME[@vN]:PATH")
    owner, name, version = _resolve(client, ref)
    info = rc.find_rclone()
    grant = client.read_credentials(owner, name, version)
    env = static_env(grant.location, grant.credentials)
    out = out if out is not None else sys.stdout.buffer
    try:
        fd: int | None = out.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    code, so, se = run_quiet(rc.stat_args(info.path, grant.location, ref.path), env, timeout=120)
    if code in (3, 4):
        raise NotFoundError(f"no file {ref.path!r} in {owner}/{name}@v{version}")
    if code != 0:
        raise rc.error_for_exit(code, "cat", se.strip().splitlines()[-1:]) or TransferError("cat failed")
    if json.loads(so or b"{}").get("IsDir", True):
        # S3 has no folders: a missing key and a "folder" look alike here.
        raise NotFoundError(
            f"no file {ref.path!r} in {owner}/{name}@v{version} (cat prints one file; for a folder use download)"
        )
    argv = rc.cat_args(info.path, grant.location, ref.path)
    if fd is not None:
        out.flush()
        proc = popen_rclone(argv, env, stdout=fd)
        written = -1
    else:
        proc = popen_rclone(argv, env, stdout=subprocess.PIPE)
        written = 0
    try:
        if fd is None:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(1 << 20):
                try:
                    out.write(chunk)
                except BrokenPipeError:
                    stop(proc, grace=2)
                    return written
                written += len(chunk)
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait()
    except KeyboardInterrupt:
        stop(proc, grace=2)
        raise InterruptedTransfer("interrupted") from None
    finally:
        if proc.poll() is None:
            stop(proc, grace=2)
    if code != 0:
        # The reader went away (`dshub cat … | head`): rclone died of SIGPIPE or saw EPIPE.
        if code == -signal.SIGPIPE or "broken pipe" in err.lower():
            return written
        if code in (3, 4) or "not found" in err.lower():
            raise NotFoundError(f"no file {ref.path!r} in {owner}/{name}@v{version}")
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:]
        raise rc.error_for_exit(code, "cat", last) or TransferError("cat failed")
    return written
