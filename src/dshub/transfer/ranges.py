"""Downloading big files in ranges that survive interruptions.

rclone restarts an interrupted file from byte 0 (rclone #87). A big file is fetched
instead in ranges (the upload's part size) at their offsets in ``<name>.dshub.partial``.
The missing ranges are grouped into about one run of consecutive ranges per transfer,
each run one ``rclone cat --offset X --count N`` whose stdout is the partial file itself,
positioned at the run's first byte (no pipe, no copy through dshub), several at once. A
small sidecar,
``<name>.dshub.partial.json``, records which ranges are complete and for which content
(the manifest's size and digest), each as soon as its last byte is written: a re-run
fetches only the others. When all are there the whole file is hashed (BLAKE3, or MD5
where the manifest has no BLAKE3) against the manifest, then renamed to its name; a
mismatch removes both files.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from dshub.errors import InterruptedTransfer, TransferError
from dshub.models import ErrorDetail, Location, ManifestEntry
from dshub.transfer import rclone as rc
from dshub.transfer.common import hash_file
from dshub.transfer.runner import append_rclone_log, popen_rclone, stop
from dshub.transfer.spans import PartCounter, run_all
from dshub.transfer.stats import EventCallback
from dshub.util.digest import BIG, blake3_parallel
from dshub.util.parts import Part, slices

PARTIAL = ".dshub.partial"
SIDECAR = PARTIAL + ".json"
MAX_ATTEMPTS = 3
#: How often the written length of a range fetch is looked at (each look may record ranges).
_POLL = 0.1


def partial_path(dest: str, rel: str) -> str:
    """Where the ranges of ``rel`` are written until the file is whole."""
    return os.path.join(dest, rel + PARTIAL)


def _identity(e: ManifestEntry, part_size: int) -> dict[str, object]:
    return {"size": e.size, "blake3": e.blake3, "md5": e.md5, "part_size": part_size}


@dataclass
class _File:
    """One big file being fetched: its ranges, those done, and its sidecar."""

    entry: ManifestEntry
    dest: str
    part_size: int
    parts: list[Part] = field(init=False)
    done: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.parts = slices(self.entry.size, self.part_size)

    @property
    def partial(self) -> str:
        return partial_path(self.dest, self.entry.path)

    @property
    def sidecar(self) -> str:
        return os.path.join(self.dest, self.entry.path + SIDECAR)

    def load(self) -> None:
        """The ranges an earlier run completed, if it fetched the same content."""
        try:
            with open(self.sidecar, encoding="utf-8") as f:
                data = json.load(f)
            size = os.stat(self.partial).st_size
        except (OSError, ValueError):
            return
        if data.get("file") != _identity(self.entry, self.part_size) or size != self.entry.size:
            return
        offsets = {p.offset for p in self.parts}
        self.done = {o for o in data.get("done", []) if isinstance(o, int) and o in offsets}

    def record(self, offset: int) -> None:
        """Mark a range complete (the sidecar is replaced atomically)."""
        with self.lock:
            self.done.add(offset)
            tmp = self.sidecar + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"file": _identity(self.entry, self.part_size), "done": sorted(self.done)}, f)
            os.replace(tmp, self.sidecar)

    def discard(self) -> None:
        for p in (self.partial, self.sidecar):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


@dataclass
class RangeResult:
    """What the ranged fetch did: bytes and ranges fetched, ranges kept from before."""

    fetched_bytes: int = 0
    fetched_parts: int = 0
    kept_parts: int = 0
    kept_bytes: int = 0
    finished: list[str] = field(default_factory=list)


class RangeFetcher:
    """Fetches big files of one version in ranges (see the module doc)."""

    def __init__(
        self, rclone: str, location: Location, env: Mapping[str, str], dest: str, *,
        part_size: int, transfers: int, on_event: EventCallback, bwlimit: str | None = None,
    ) -> None:
        self.bwlimit = bwlimit
        self.rclone = rclone
        self.location = location
        self.env = env
        self.dest = dest
        self.part_size = part_size
        self.transfers = transfers
        self.on_event = on_event
        self.result = RangeResult()
        self._stop = threading.Event()
        self._counter = PartCounter(0, 0)

    def fetch(self, entries: list[ManifestEntry]) -> RangeResult:
        """Fetch every range not already done, check each whole file, rename it into
        place. Raises TransferError (a range kept failing, or a file does not match the
        manifest: its partial file is removed)."""
        files = [_File(e, self.dest, self.part_size) for e in entries]
        for f in files:
            f.load()
            os.makedirs(os.path.dirname(f.partial), exist_ok=True)
            if not f.done:
                f.discard()
            fd = os.open(f.partial, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.ftruncate(fd, f.entry.size)
            finally:
                os.close(fd)
            kept = [p for p in f.parts if p.offset in f.done]
            self.result.kept_parts += len(kept)
            self.result.kept_bytes += sum(p.length for p in kept)
        self._counter = PartCounter(
            total_bytes=sum(f.entry.size for f in files), total_parts=sum(len(f.parts) for f in files),
            bytes=self.result.kept_bytes, parts=self.result.kept_parts,
        )
        try:
            self._run(files)
        except KeyboardInterrupt:
            raise InterruptedTransfer("interrupted; the ranges fetched so far are kept: run the same command to resume") from None
        bad = [b for f in files if (b := self._finish(f)) is not None]
        if bad:
            raise TransferError(
                f"{len(bad)} downloaded file(s) do not match the manifest and were removed; run the same command again",
                details=bad,
            )
        return self.result

    def _run(self, files: list[_File]) -> None:
        jobs = [partial(self._one, f, stripe) for f, stripe in self._stripes(files)]
        run_all(jobs, self.transfers, "dshub-range", self._stop)

    def _stripes(self, files: list[_File]) -> list[tuple[_File, list[Part]]]:
        """The missing ranges, grouped into runs of consecutive ones, about one run per
        transfer: each run is one ``rclone cat`` (a process and a request per 64 MiB cost
        ~40 % more time on a 4 GiB file), and each of its ranges is still recorded the
        moment its last byte is written, so an interruption loses at most the range each
        transfer was in."""
        missing = sum(1 for f in files for p in f.parts if p.offset not in f.done)
        per = max(1, -(-missing // max(1, self.transfers)))
        out: list[tuple[_File, list[Part]]] = []
        for f in files:
            run: list[Part] = []
            for p in f.parts:
                if p.offset in f.done:
                    if run:
                        out.append((f, run))
                    run = []
                    continue
                run.append(p)
                if len(run) == per:
                    out.append((f, run))
                    run = []
            if run:
                out.append((f, run))
        return out

    def _one(self, f: _File, stripe: list[Part]) -> None:
        left = list(stripe)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self._stop.is_set():
                return
            code, err = self._cat(f, left)  # takes the ranges it completed off ``left``
            if not left or self._stop.is_set():
                return
            if attempt == MAX_ATTEMPTS:
                exc = rc.error_for_exit(code or 5, "download", err[-3:])
                raise exc or TransferError(f"fetching a range of {f.entry.path} failed")

    def _range_done(self, f: _File, part: Part) -> None:
        # Not synced: a killed process leaves its writes in the page cache, and what a
        # crash of the machine loses the whole-file check at the end finds.
        f.record(part.offset)
        ev = self._counter.done(part.length, moved=True)
        with self._counter.lock:
            self.result.fetched_bytes += part.length
            self.result.fetched_parts += 1
        self.on_event(ev)

    def _cat(self, f: _File, left: list[Part]) -> tuple[int, list[str]]:
        """One ranged ``rclone cat`` of the consecutive ranges ``left``, writing straight
        into the partial file: its stdout is a descriptor of that file positioned at the
        first range, shared with this process, so the shared file offset says how far
        rclone has written. Each range written whole is recorded and removed from
        ``left``; an object that ends early leaves the rest in ``left``."""
        first, count = left[0].offset, sum(p.length for p in left)
        argv = [*rc.cat_args(self.rclone, self.location, f.entry.path), "--offset", str(first), "--count", str(count),
                *rc.JSON_LOG_FLAGS[:2], *(["--bwlimit", self.bwlimit] if self.bwlimit else [])]
        out = os.open(f.partial, os.O_WRONLY)
        try:
            os.lseek(out, first, os.SEEK_SET)
            proc = popen_rclone(argv, self.env, stdout=out)
            raw: list[bytes] = []
            stderr = proc.stderr
            assert stderr is not None
            drain = threading.Thread(target=lambda: raw.append(stderr.read()), daemon=True)
            drain.start()
            try:
                while True:
                    exited = proc.poll() is not None
                    written = os.lseek(out, 0, os.SEEK_CUR)
                    while left and written >= left[0].offset + left[0].length:
                        self._range_done(f, left.pop(0))
                    if exited:
                        break
                    if self._stop.is_set():
                        stop(proc, grace=2)
                        continue
                    try:
                        proc.wait(timeout=_POLL)
                    except subprocess.TimeoutExpired:
                        pass
            finally:
                if proc.poll() is None:
                    stop(proc)
                drain.join()
                stderr.close()
        finally:
            os.close(out)
        append_rclone_log(b"".join(raw))
        err = b"".join(raw).decode("utf-8", "replace")
        return proc.returncode, [ln for ln in err.splitlines() if '"level":"error"' in ln]

    def _finish(self, f: _File) -> ErrorDetail | None:
        """Hash the whole file against the manifest; rename it into place, or remove it."""
        e = f.entry
        kind, want = ("blake3", e.blake3) if e.blake3 else ("md5", e.md5)
        if want:
            got: str | None
            if kind == "blake3" and e.size >= BIG:
                got = blake3_parallel(f.partial)  # the last step, alone: every core
            else:
                d = hash_file(f.partial, md5=kind == "md5", blake3=kind == "blake3")
                got = d.blake3 if kind == "blake3" else d.md5
            if got != want:
                f.discard()
                return ErrorDetail(path=e.path, problem=f"{kind} differs", expected=want, actual=got)
        os.replace(f.partial, os.path.join(self.dest, e.path))
        try:
            os.unlink(f.sidecar)
        except FileNotFoundError:
            pass
        self.result.finished.append(e.path)
        return None
