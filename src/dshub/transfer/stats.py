"""Typed progress events, and the parser that turns rclone's JSON log lines into them.

rclone runs with ``-v --use-json-log --stats 1s --stats-log-level NOTICE``: every line it
writes on stderr is one JSON object; the periodic ones carry a ``stats`` object, per-file
ones (``Copied (new)``; ``Multi-thread Copied (new)`` for files above rclone's
``--multi-thread-cutoff``, 256 MiB by default, in both directions) carry ``object`` and
``size``, failures have level ``error``: they are grouped by kind (``failures``) and only
the first few of each kind become events.
The engine hands events to a callback; only the CLI renders them (rclone's
``fs/accounting``: counters are data, rendering is separate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from dshub.transfer.failures import Failures, is_summary


@dataclass(frozen=True)
class InFlight:
    """One file rclone is transferring right now."""

    name: str
    size: int
    bytes: int
    percentage: int
    speed: float


@dataclass(frozen=True)
class ScanDone:
    """The local scan (upload) or manifest selection (download) is complete."""

    files: int
    bytes: int
    skipped_files: int = 0
    skipped_bytes: int = 0


@dataclass(frozen=True)
class Progress:
    """A periodic stats sample, totals already fixed by the engine (not rclone's guess)."""

    bytes: int
    total_bytes: int
    transfers: int
    total_transfers: int
    errors: int
    speed: float
    eta: float | None
    elapsed: float
    transferring: tuple[InFlight, ...] = ()
    #: Parts of big files done (sent or found stored) and their number, when sent in parts.
    parts: int = 0
    total_parts: int = 0


@dataclass(frozen=True)
class FileDone:
    """rclone finished one file (``Copied (new)`` / ``Copied (replaced existing)``)."""

    path: str
    size: int | None


@dataclass(frozen=True)
class Phase:
    """The engine moved to another step: "scan", "open", "upload", "verify", "commit" …"""

    name: str
    message: str


@dataclass(frozen=True)
class Warning_:
    """Something the user should know that does not stop the transfer."""

    message: str
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class RcloneLog:
    """A log line of rclone at level error (or notice) that is not a stats line."""

    level: str
    message: str
    path: str | None = None


# rclone's check after each transfer, at debug level: "md5 = <hex> OK" means the MD5 of
# the bytes it read matched the destination's (the ETag of the PUT, or its md5 metadata).
_MD5_OK = re.compile(r"md5 = ([0-9a-f]{32}) OK")
_DEBUG = '"level":"debug"'
# rclone's few lines before JSON logging is set up use its text format.
_TEXT_DEBUG = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d DEBUG : ")
# A file rclone finished: "Copied (new)", "Copied (replaced existing)", and the same with
# "Multi-thread " in front above the multi-thread cutoff (downloads, and uploads to S3,
# which rclone then sends as a multipart upload of parallel chunks).
_COPIED = re.compile(r"(?:Multi-thread )?Copied \(")

ProgressEvent = Union[ScanDone, Progress, FileDone, Phase, Warning_, RcloneLog]
EventCallback = Callable[[ProgressEvent], None]


def _noop(_: ProgressEvent) -> None:
    pass


NOOP: EventCallback = _noop


@dataclass
class StatsParser:
    """Turns rclone JSON log lines into events.

    ``total_bytes`` / ``total_files`` come from the local scan: rclone's own totals grow
    while it lists, so a bar driven by them would jump backwards. ``errors`` keeps the last
    error messages for the exception text; ``failures`` counts every error line by kind.
    ``md5s`` collects the MD5 rclone verified for
    each file it sent (only when rclone runs at debug level: see ``upload``).
    """

    total_bytes: int
    total_files: int
    errors: list[str] = field(default_factory=list)
    files_done: list[str] = field(default_factory=list)
    md5s: dict[str, str] = field(default_factory=dict)
    failures: Failures = field(default_factory=Failures)

    def feed(self, line: str) -> ProgressEvent | None:
        """Parse one stderr line; None for lines that carry nothing to show."""
        line = line.strip()
        if not line.startswith("{"):
            if not line or _TEXT_DEBUG.match(line):
                return None
            return self._error("error", line, None)
        if _DEBUG in line and "md5 = " not in line:
            return None  # debug chatter (several lines per file): not worth a JSON parse
        try:
            obj: dict[str, Any] = json.loads(line)
        except ValueError:
            return self._error("error", line, None)
        stats = obj.get("stats")
        if isinstance(stats, dict):
            return self._progress(stats)
        level = str(obj.get("level", "info"))
        msg = str(obj.get("msg", "")).strip()
        path = obj.get("object")
        if level == "debug":
            if path is not None and (m := _MD5_OK.fullmatch(msg)):
                self.md5s[str(path)] = m.group(1)
            return None
        if level == "info" and path is not None and _COPIED.match(msg):
            size = obj.get("size")
            self.files_done.append(str(path))
            return FileDone(path=str(path), size=int(size) if isinstance(size, int) else None)
        if level in ("error", "critical", "fatal"):
            return self._error(level, msg, str(path) if path else None)
        return None

    def _error(self, level: str, msg: str, path: str | None) -> RcloneLog | None:
        """Keep and classify one error line; an event only for the first few of its kind."""
        text = f"{path}: {msg}" if path else msg
        self.errors.append(text)
        del self.errors[:-20]
        if is_summary(msg):
            self.failures.add_summary(msg)
            return None
        if not self.failures.add(text):
            return None
        return RcloneLog(level=level, message=msg, path=path)

    def _progress(self, s: dict[str, Any]) -> Progress:
        flights = []
        for t in s.get("transferring") or []:
            flights.append(
                InFlight(
                    name=str(t.get("name", "")),
                    size=int(t.get("size") or 0),
                    bytes=int(t.get("bytes") or 0),
                    percentage=int(t.get("percentage") or 0),
                    speed=float(t.get("speedAvg") or t.get("speed") or 0.0),
                )
            )
        done = int(s.get("bytes") or 0)
        total = max(self.total_bytes, done)
        speed = float(s.get("speed") or 0.0)
        # Our own ETA from the scan's totals: rclone's is based on its growing totals
        # (and reads 0 under --bwlimit, measured with 1.75).
        eta = (total - done) / speed if speed > 0 else s.get("eta")
        return Progress(
            bytes=done,
            total_bytes=total,
            transfers=int(s.get("transfers") or 0),
            total_transfers=max(self.total_files, int(s.get("totalTransfers") or 0)),
            errors=int(s.get("errors") or 0),
            speed=speed,
            eta=float(eta) if eta is not None else None,
            elapsed=float(s.get("elapsedTime") or 0.0),
            transferring=tuple(flights),
        )
