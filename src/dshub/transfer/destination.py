"""Can this folder take these files? Checked before a download fetches anything.

A read-only folder, a folder of another user or a disk without room would otherwise show
up as one rclone error per file after the download started; here they are one line each,
before the hub is asked for credentials and before anything is written.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable

from dshub.errors import DestinationNotWritableError, DshubError, NoSpaceError
from dshub.util.units import human_size

_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _existing_ancestor(path: str) -> str:
    """``path`` or the nearest folder above it that exists (what ``makedirs`` starts from)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def os_error(err: OSError, doing: str) -> DshubError:
    """A one-line typed error for a local file-system failure."""
    where = err.filename if err.filename is not None else ""
    text = f"cannot {doing} {where}: {err.strerror or err}".replace("  ", " ")
    if err.errno in _NOT_WRITABLE:
        return DestinationNotWritableError(
            f"{text} (the destination is not writable); download elsewhere or fix its permissions"
        )
    if err.errno in _NO_SPACE:
        return NoSpaceError(f"{text}; free some space or download elsewhere")
    return DshubError(text)


def space_needed(sizes: Iterable[int], block: int) -> int:
    """Bytes the files take on disk: each rounded up to whole blocks of the file system."""
    block = max(block, 1)
    return sum(-(-size // block) * block for size in sizes)


def check_room(dest: str, sizes: list[int]) -> None:
    """Raise NoSpaceError unless the file system holding ``dest`` has room for ``sizes``."""
    base = _existing_ancestor(dest)
    try:
        block = os.statvfs(base).f_frsize
        free = shutil.disk_usage(base).free
    except OSError as err:
        raise os_error(err, "check the free space of") from None
    need = space_needed(sizes, block)
    if need > free:
        raise NoSpaceError(
            f"not enough space in {dest}: {human_size(need)} to fetch, {human_size(free)} free; "
            "free some space or download elsewhere (nothing was fetched)"
        )


def make_writable_dir(dest: str) -> None:
    """Create ``dest`` (and folders above it) and prove a file can be created in it."""
    try:
        os.makedirs(dest, exist_ok=True)
    except FileExistsError:
        raise DshubError(f"cannot create {dest}: a file of that name is in the way") from None
    except OSError as err:
        raise os_error(err, "create") from None
    try:
        # A real file rather than access(2): that answers from mode bits and mount flags
        # only, while network file systems (root squash) and quotas decide on the server.
        fd, probe = tempfile.mkstemp(prefix=".dshub-probe-", dir=dest)
    except OSError as err:
        err.filename = dest
        raise os_error(err, "write to") from None
    os.close(fd)
    os.unlink(probe)
