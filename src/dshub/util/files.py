"""Writing files that may hold secrets or must never be seen half-written."""

from __future__ import annotations

import os


def write_private(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte.

    The bytes go to a temporary file in the same folder (created 0600 by ``mkstemp``,
    whatever the umask) that is renamed over ``path``: a reader sees the old file or the
    new one, never a part, and no other user can read it in between. Missing parent
    folders are created 0700.
    """
    import tempfile  # here: most callers (credential_process) read far more than they write

    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
