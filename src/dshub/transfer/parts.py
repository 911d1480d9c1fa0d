"""Sending big files in parts that survive interruptions (layout: :mod:`dshub.util.parts`).

Each part is one ``rclone rcat --size N`` fed from its slice of the file by ``os.splice``
(file → pipe in the kernel: no byte goes through Python), several parts at a time, so one
huge file fills the link as many small files do. A re-run lists the parts already stored
and sends only those whose slice they do not hold (offset, length and MD5 in the part's
name, the MD5 from the file's bytes now); parts of another layout or content are deleted.
The hub assembles the parts at commit.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from dshub.errors import InterruptedTransfer, TransferError
from dshub.models import Location
from dshub.transfer import rclone as rc
from dshub.transfer.common import RemoteObject
from dshub.transfer.runner import append_rclone_log, popen_rclone, stop
from dshub.transfer.spans import PartCounter, run_all, splice_span
from dshub.transfer.stats import EventCallback
from dshub.util.parts import Part, parse_name, parts_prefix, slices
from dshub.util.pipes import splice_pipe

_READ = 8 * 2**20
MAX_ATTEMPTS = 3


@dataclass
class PartsPlan:
    """One file's parts: those to send, those already stored, and stored objects to delete."""

    rel: str
    size: int
    parts: list[Part]
    #: part offset → name of the stored object that may hold it (kept if its MD5 still matches)
    stored: dict[int, str] = field(default_factory=dict)
    #: names of stored objects in the parts folder that fit no part of this layout
    stale: list[str] = field(default_factory=list)
    #: names of the parts this run stored (a damaged one is overwritten under its name)
    sent: set[str] = field(default_factory=set)


def plan_file(rel: str, size: int, part_size: int, listing: Mapping[str, RemoteObject]) -> PartsPlan:
    """The parts of ``rel`` and what the staging listing holds of them already."""
    parts = slices(size, part_size)
    by_offset = {p.offset: p for p in parts}
    prefix = parts_prefix(rel)
    plan = PartsPlan(rel=rel, size=size, parts=parts)
    for key, obj in listing.items():
        if not key.startswith(prefix) or "/" in key[len(prefix):]:
            continue
        name = key[len(prefix):]
        parsed = parse_name(name)
        want = by_offset.get(parsed[0]) if parsed else None
        # A stored part whose content MD5 differs from its name was damaged in storage; one
        # without a content MD5 was not written by dshub (its parts are single PUTs).
        damaged = parsed is not None and obj.md5 != parsed[1]
        if want is None or obj.size != want.length or damaged or want.offset in plan.stored:
            plan.stale.append(name)
        else:
            plan.stored[want.offset] = name
    return plan


def slice_md5(fd: int, offset: int, length: int) -> str:
    """The MD5 of ``length`` bytes of ``fd`` from ``offset``."""
    h = hashlib.md5(usedforsecurity=False)
    pos, end = offset, offset + length
    while pos < end:
        chunk = os.pread(fd, min(_READ, end - pos), pos)
        if not chunk:
            raise TransferError(f"file shrank while reading it (at byte {pos}); run again once it stops changing")
        h.update(chunk)
        pos += len(chunk)
    return h.hexdigest()


class PartSender:
    """Sends the parts of big files to one session's staging area."""

    def __init__(
        self,
        rclone: str,
        location: Location,
        root: str,
        env_for_part: Callable[[], Mapping[str, str]],
        *,
        transfers: int,
        bwlimit: str | None,
        extra: Sequence[str],
        on_event: EventCallback,
    ) -> None:
        self.rclone = rclone
        self.location = location
        self.root = root
        self.env_for_part = env_for_part
        self.transfers = transfers
        self.bwlimit = bwlimit
        self.extra = extra
        self.on_event = on_event
        self.sent_bytes = 0
        self.sent_parts = 0
        self.kept_parts = 0
        self._stop = threading.Event()

    def send(self, plans: list[PartsPlan]) -> list[str]:
        """Make every part of every plan stored (sent unless kept); return the keys of stale
        part objects for the caller to delete (with credentials fresh at that moment).
        Raises TransferError when a part still fails after MAX_ATTEMPTS."""
        counter = PartCounter(total_bytes=sum(p.size for p in plans), total_parts=sum(len(p.parts) for p in plans))
        try:
            jobs = [partial(self._one, plan, part, counter) for plan in plans for part in plan.parts]
            run_all(jobs, self.transfers, "dshub-part", self._stop)
        except KeyboardInterrupt:
            raise InterruptedTransfer("interrupted; the parts sent so far are kept: run the same command to resume") from None
        return [parts_prefix(plan.rel) + n for plan in plans for n in plan.stale if n not in plan.sent]

    def _one(self, plan: PartsPlan, part: Part, counter: PartCounter) -> None:
        if self._stop.is_set():
            return
        # One descriptor per part in flight, not per file: a folder of thousands of big
        # files must not run out of them.
        fd = os.open(os.path.join(self.root, plan.rel), os.O_RDONLY)
        try:
            self._send_part(fd, plan, part, counter)
        finally:
            os.close(fd)

    def _send_part(self, fd: int, plan: PartsPlan, part: Part, counter: PartCounter) -> None:
        md5 = slice_md5(fd, part.offset, part.length)
        named = Part(part.offset, part.length, md5)
        stored = plan.stored.get(part.offset)
        if stored == named.name():
            with counter.lock:
                self.kept_parts += 1
            self.on_event(counter.done(part.length, moved=False))
            return
        if stored is not None:
            plan.stale.append(stored)  # another content at this offset: the file changed
        key = parts_prefix(plan.rel) + named.name()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self._stop.is_set():
                return
            code, err = self._rcat(fd, named, key)
            if code == 0:
                break
            if attempt == MAX_ATTEMPTS:
                exc = rc.error_for_exit(code, "upload", err[-3:])
                raise exc or TransferError(f"sending a part of {plan.rel} failed")
        with counter.lock:
            plan.sent.add(named.name())
            self.sent_bytes += part.length
            self.sent_parts += 1
        self.on_event(counter.done(part.length, moved=True))

    def _rcat(self, fd: int, part: Part, key: str) -> tuple[int, list[str]]:
        """One ``rclone rcat`` of ``part``, its stdin fed by splice from ``fd``."""
        argv = rc.rcat_args(self.rclone, self.location, key, part.length, bwlimit=self.bwlimit, extra=self.extra)
        r, w = splice_pipe()
        try:
            proc = popen_rclone(argv, self.env_for_part(), stdin=r)
        finally:
            os.close(r)
        try:
            try:
                splice_span(fd, w, part.offset, part.length, stop=self._stop)
            except BrokenPipeError:
                pass  # rclone stopped reading: its exit status and log say why
            finally:
                os.close(w)
            if self._stop.is_set():
                stop(proc, grace=2)
            _, err = proc.communicate()
        finally:
            if proc.poll() is None:
                stop(proc)
        append_rclone_log(err)
        text = err.decode("utf-8", "replace")
        return proc.returncode, [ln for ln in text.splitlines() if '"level":"error"' in ln or "ERROR" in ln]


__all__ = ["PartSender", "PartsPlan", "plan_file", "slice_md5"]
