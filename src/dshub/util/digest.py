"""BLAKE3 of one big file on all cores, shared by the hub's commit check and the client's
check of a file fetched in ranges.

Both run while nothing else is hashed, so one file may use every core: blake3's own
threads over a memory map of the file hash 4 GiB in ~0.9 s here against ~1.8 s on one
core, with no copy of the bytes into Python.
"""

from __future__ import annotations

import mmap
import os

#: From this size a file is hashed on all cores (below it, one read loop is as fast).
BIG = 64 * 2**20
_WINDOW = 64 * 2**20


def blake3_parallel(path: str | os.PathLike[str]) -> str:
    """The BLAKE3 hex digest of the file at ``path``, hashed on every core through memory
    maps of 64 MiB at a time (mapping the whole file would count all of it in the
    process's resident size; the file must not shrink meanwhile: the caller owns it)."""
    import blake3

    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        for offset in range(0, size, _WINDOW):
            with mmap.mmap(fd, min(_WINDOW, size - offset), access=mmap.ACCESS_READ, offset=offset) as window:
                h.update(window)
    finally:
        os.close(fd)
    return h.hexdigest()
