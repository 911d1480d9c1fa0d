"""rclone's error lines grouped by what the user should do about them.

rclone logs one error line per file it could not copy, so a download into a read-only
folder prints hundreds of lines saying the same thing. The engine sorts each line into a
:class:`Kind`, counts them, keeps a few samples per kind, and turns the worst kind into
one typed error (``rclone.error_for_exit``). Only the first few lines of each kind are
passed on as events, so the CLI shows a handful of lines, not one per file.

Matching is on the operating system's and the S3 SDK's own wording (rclone passes it on
verbatim), measured with rclone 1.75 on Linux.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class Kind(str, Enum):
    """What went wrong, in the order of precedence when several kinds occur."""

    NO_SPACE = "no_space"
    READ_ONLY = "read_only"
    PERMISSION = "permission"
    UNREACHABLE = "unreachable"
    DENIED = "denied"
    USAGE = "usage"
    OTHER = "other"


_PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    # ENOSPC, EDQUOT, and rclone's own check before preallocating a file.
    (
        Kind.NO_SPACE,
        re.compile(r"no space left on device|disk quota exceeded|too big for remaining disk space", re.I),
    ),
    # EROFS on the local side (mkdir, open of the .partial file, rename).
    (Kind.READ_ONLY, re.compile(r"read-only file system", re.I)),
    # EACCES, EPERM on the local side (a folder of another user, an immutable file).
    (Kind.PERMISSION, re.compile(r"permission denied|operation not permitted", re.I)),
    # The S3 endpoint went away (the hub stopped, the network dropped).
    (
        Kind.UNREACHABLE,
        re.compile(
            r"connection refused|connection reset|no such host|network is unreachable|i/o timeout"
            r"|broken pipe|unexpected EOF|server closed idle connection|context deadline exceeded"
            r"|use of closed network connection",
            re.I,
        ),
    ),
    # The store refused the credentials: expired, revoked, or the grant was closed.
    (
        Kind.DENIED,
        re.compile(
            r"StatusCode: 403|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken", re.I
        ),
    ),
    # rclone refused its command line: dshub built a bad one (or passed a bad option on).
    (
        Kind.USAGE,
        re.compile(r"^(Error|Usage): |unknown (flag|shorthand flag|command)|invalid argument ", re.I),
    ),
)

# rclone's per-attempt and final summaries repeat the last file's error: not a failure of
# their own, and not worth showing next to the per-file lines.
_SUMMARY = re.compile(r"^(Attempt \d+/\d+ failed with \d+ errors|Failed to \w+ with \d+ errors)")

# The useful end of the S3 SDK's long messages ("operation error S3: PutObject, exceeded
# maximum number of attempts, 1, https response error StatusCode: 0, … dial tcp …").
_SDK_TAIL = re.compile(r"((?:dial|read|write) tcp .*|api error .*)$")
_PREFIX = re.compile(
    r"^(?:[^:]*: )?Failed to \w+(?: with \d+ errors)?: |^Attempt \d+/\d+ failed with \d+ errors and: "
)

#: Lines of each kind passed on as events; the rest are only counted.
SHOWN_PER_KIND = 3
#: Kinds after which every remaining file would fail the same way: the engine stops
#: rclone instead of letting it try (and, against a dead endpoint, back off for minutes
#: on) each of them; the re-run resumes.
STOP_KINDS = frozenset({Kind.NO_SPACE, Kind.READ_ONLY, Kind.UNREACHABLE})


def classify(message: str) -> Kind:
    """The kind of one rclone error message."""
    for kind, pattern in _PATTERNS:
        if pattern.search(message):
            return kind
    return Kind.OTHER


def short_reason(text: str) -> str:
    """The part of an error line that says why: without the "path: Failed to copy: " lead
    and, for S3 SDK errors, only the network or API error at the end."""
    text = _PREFIX.sub("", text, count=1)
    m = _SDK_TAIL.search(text)
    return m.group(1) if m else text


def is_summary(message: str) -> bool:
    """True for rclone's "Attempt 1/1 failed with N errors and: …" style summary lines."""
    return bool(_SUMMARY.match(message))


@dataclass
class Failures:
    """Counts and a few sample lines of each kind of error rclone logged in one run."""

    counts: dict[Kind, int] = field(default_factory=dict)
    samples: dict[Kind, list[str]] = field(default_factory=dict)

    def add(self, text: str, kind: Kind | None = None) -> bool:
        """Record one error line; True when it is among the first few of its kind
        (worth showing to the user)."""
        kind = kind or classify(text)
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= SHOWN_PER_KIND:
            self.samples.setdefault(kind, []).append(text)
            return True
        return False

    def add_summary(self, text: str) -> None:
        """Record the kind of a summary line without counting it as a failed file (it may be
        the only line there is, e.g. when the listing itself failed)."""
        kind = classify(text)
        if kind not in self.counts:
            self.counts[kind] = 0
            self.samples.setdefault(kind, []).append(text)

    @property
    def worst(self) -> Kind | None:
        """The kind that decides the error: the first in :class:`Kind` order that occurred."""
        return next((k for k in Kind if k in self.counts), None)

    @property
    def should_stop(self) -> bool:
        """True once a failure occurred that every remaining file would repeat."""
        return any(k in STOP_KINDS for k in self.counts)

    def sample(self, kind: Kind) -> str | None:
        """Why the first failure of ``kind`` happened (shortened), if there was one."""
        got = self.samples.get(kind)
        return short_reason(got[0]) if got else None

    def total(self) -> int:
        return sum(self.counts.values())
