"""Joining the parts of big files into one file each, on the hub's own disk, at commit.

A big file arrives as part objects under ``.dshub-parts/<path>/`` of the staging area
(:mod:`dshub.util.parts`). In the frozen staging folder the hub checks that the parts of
each manifest entry cover it exactly (contiguous from byte 0, summing to its size), joins
them with ``copy_file_range`` (the kernel copies; on reflink file systems no data block
is copied at all) into a temporary file inside the parts folder and renames it to
``<path>``. The whole file is then hashed by the commit's check like any other; the parts
are removed only after that check passed, so a refused commit loses nothing of them.

A full disk while joining is :class:`NoRoom`: the temporary file is removed, the session
stays open with its parts, nothing is published.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from dshub.hub.storage import RCLONE_TEMP_PREFIXES
from dshub.models import ErrorDetail, ManifestEntry
from dshub.util.parts import PARTS_DIR, parse_name

_JOINING = ".joining"
# copy_file_range in steps of one part at most: on tmpfs a 1 GiB step took ~10 s per GiB
# (against ~0.7 s in 64 MiB steps), the kernel's generic copy path.
_STEP = 64 << 20


class NoRoom(Exception):
    """The disk filled while joining ``path``; ``needed`` bytes were to be written."""

    def __init__(self, path: str, needed: int) -> None:
        super().__init__(path)
        self.path = path
        self.needed = needed


def _parts_of(folder: Path) -> list[tuple[int, Path, int]]:
    """(offset, file, size) of the part objects directly inside ``folder``, by offset."""
    found = []
    for child in folder.iterdir():
        if child.name.startswith(RCLONE_TEMP_PREFIXES) or not child.is_file():
            continue
        parsed = parse_name(child.name)
        if parsed is not None:
            found.append((parsed[0], child, child.stat().st_size))
    return sorted(found)


def part_folders(sealed: Path) -> dict[str, Path]:
    """Manifest path → folder holding its parts, for every folder with a part in it."""
    root = sealed / PARTS_DIR
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for dirpath, _dirs, files in os.walk(root):
        if any(parse_name(f) for f in files):
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            out[rel] = Path(dirpath)
    return out


def check(sealed: Path, manifest: Iterable[ManifestEntry]) -> tuple[dict[str, Path], list[ErrorDetail]]:
    """The entries to join (path → parts folder) and what is wrong with the parts."""
    folders = part_folders(sealed)
    by_path = {e.path: e for e in manifest}
    problems: list[ErrorDetail] = []
    todo: dict[str, Path] = {}
    for rel, folder in sorted(folders.items()):
        e = by_path.get(rel)
        if e is None:
            problems.append(ErrorDetail(path=rel, problem="has parts in storage but is not in the manifest"))
            continue
        pos = 0
        parts = _parts_of(folder)
        for offset, _f, size in parts:
            if offset != pos:
                break
            pos += size
        if pos != e.size or (parts and parts[-1][0] >= pos):
            problems.append(
                ErrorDetail(path=rel, problem="its parts in storage do not cover the file", expected=e.size, actual=pos)
            )
            continue
        todo[rel] = folder
    return todo, problems


def join(sealed: Path, rel: str, folder: Path) -> None:
    """Join the parts in ``folder`` into ``sealed/rel`` (replacing an object there)."""
    tmp = folder / _JOINING
    parts = _parts_of(folder)
    needed = sum(size for _o, _f, size in parts)
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        pos = 0
        for _offset, path, size in parts:
            fd = os.open(path, os.O_RDONLY)
            try:
                done = 0
                while done < size:
                    n = os.copy_file_range(fd, out, min(_STEP, size - done), done, pos + done)
                    if n == 0:
                        raise OSError(errno.EIO, f"part {path.name} of {rel} shrank while joining")
                    done += n
            finally:
                os.close(fd)
            pos += size
    except OSError as err:
        os.close(out)
        tmp.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise NoRoom(rel, needed) from None
        raise
    os.close(out)
    target = sealed / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)


def discard_parts(sealed: Path) -> None:
    """Remove the parts folder of a checked staging folder (its files are joined)."""
    import shutil

    shutil.rmtree(sealed / PARTS_DIR, ignore_errors=True)
