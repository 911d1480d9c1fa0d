"""How a big file is laid out in an upload session's staging area while it is sent in parts.

rclone restarts every in-flight file from byte 0 (rclone #87), so a file killed at 90 %
would be sent again whole. dshub sends a big file as separate objects, one per slice of
the file, under ``.dshub-parts/<path>/`` of the session's staging area; each finished part
is an ordinary object, which outlives a killed client, a dropped connection and a hub
restart (``rclone serve s3`` keeps multipart uploads in memory only). At commit the hub
assembles the parts into ``<path>`` and checks the whole file against the manifest.

A part's name carries its offset in the file and the MD5 of the bytes it holds:
``p<offset, 15 digits>-<md5>``. A re-run keeps a part only when the file's slice at that
offset still has that length and that MD5 (a file rewritten with the same size does not
reuse old parts), and the hub refuses parts whose stored bytes differ from their name.

Shared by the client (which writes parts) and the hub (which assembles them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The folder of a staging area that holds parts; no manifest path may start with it.
PARTS_DIR = ".dshub-parts"
#: S3's smallest part (all but the last) and largest one.
MIN_PART = 5 * 2**20
MAX_PART = 5 * 2**30
DEFAULT_PART = 64 * 2**20
#: S3's limit of parts per multipart upload, which the hub's assembly on S3 uses.
MAX_PARTS = 10_000

_NAME = re.compile(r"p(\d{15})-([0-9a-f]{32})")


@dataclass(frozen=True)
class Part:
    """One slice of a file: its offset, length and (once known) the MD5 of its bytes."""

    offset: int
    length: int
    md5: str | None = None

    def name(self) -> str:
        """The part's object name inside the file's parts folder."""
        assert self.md5 is not None
        return f"p{self.offset:015d}-{self.md5}"


def parts_prefix(rel: str) -> str:
    """The key prefix (below the staging prefix) that holds the parts of file ``rel``."""
    return f"{PARTS_DIR}/{rel}/"


def parse_name(name: str) -> tuple[int, str] | None:
    """``(offset, md5)`` of a part's object name, or None when it is no part name."""
    m = _NAME.fullmatch(name)
    return (int(m.group(1)), m.group(2)) if m else None


def part_size_for(size: int, chosen: int = DEFAULT_PART) -> int:
    """The part size for a file of ``size`` bytes: ``chosen``, grown (in whole MiB) so that
    the file needs no more than MAX_PARTS parts."""
    need = -(-size // MAX_PARTS)
    if need <= chosen:
        return chosen
    mib = 2**20
    return -(-need // mib) * mib


def in_parts(size: int, part_size: int) -> bool:
    """Whether a file of ``size`` goes in parts: from two parts up (one part is the file
    itself, sent as one object by rclone)."""
    return size >= 2 * part_size


def slices(size: int, part_size: int) -> list[Part]:
    """The parts of a file of ``size`` bytes, in order (the last may be shorter)."""
    step = part_size_for(size, part_size)
    return [Part(offset=o, length=min(step, size - o)) for o in range(0, size, step)]


def is_parts_path(rel: str) -> bool:
    """Whether a relative path lies inside the parts folder."""
    return rel == PARTS_DIR or rel.startswith(PARTS_DIR + "/")
