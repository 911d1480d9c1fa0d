"""Generate the benchmark data once and keep it under ``.bench/data``.

Content is random (``os.urandom``) so no tool or layer can win by compression or dedupe.
A data set is reused only if its stamp file (written last, beside the folder, so no tool
ever uploads it) matches the requested shape; otherwise it is rebuilt from scratch.

Every file gets the same whole-second modification time (``MTIME``), as files unpacked
from an archive have. S3 reports LastModified in whole seconds: with sub-second local
mtimes, ``aws s3 sync`` and ``s5cmd sync`` would see a file as newer than an object
stored with that very mtime and send it again, so the no-op workload would measure a
rounding artefact rather than the tools' skip checks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from benchmarks.config import DATA_DIR, MiB, Shape

MTIME = 1_767_225_600  # 2026-01-01T00:00:00Z, whole seconds on purpose (module doc)


def file_paths(shape: Shape, root: Path) -> list[Path]:
    """The files of ``shape`` below ``root``, in a stable order (``d000/f000000.bin`` …)."""
    return [root / f"d{i // shape.per_dir:03d}" / f"f{i:06d}.bin" for i in range(shape.count)]


def ensure(shape: Shape, base: Path = DATA_DIR) -> Path:
    """Return the folder holding ``shape``'s files, generating it if missing or stale."""
    root = base / shape.name
    stamp = base / f"{shape.name}.json"
    want = {"count": shape.count, "size": shape.size, "per_dir": shape.per_dir, "mtime": MTIME}
    try:
        have = json.loads(stamp.read_text())
        if have == want and root.is_dir():
            return root
        if {**have, "mtime": MTIME} == want and root.is_dir():  # data of an older harness
            _set_mtimes(shape, root)
            stamp.write_text(json.dumps(want))
            return root
    except (OSError, ValueError):
        pass
    if root.exists():
        shutil.rmtree(root)
    stamp.unlink(missing_ok=True)
    for path in file_paths(shape, root):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            left = shape.size
            while left > 0:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n
    _set_mtimes(shape, root)
    stamp.write_text(json.dumps(want))
    return root


def _set_mtimes(shape: Shape, root: Path) -> None:
    for path in file_paths(shape, root):
        os.utime(path, (MTIME, MTIME))


# rclone serve s3 streams a multipart upload into a hidden file with one of these
# prefixes (1.75 / later) and leaves it out of S3 listings; an upload killed mid-way
# (workload F) leaves one behind.
MULTIPART_TEMP = (".rclone_temp_multipart_", ".rclone_multipart_upload_")


def tree_sizes(root: Path) -> dict[str, int]:
    """Relative path -> size of every object-file below ``root`` (what S3 would list)."""
    out: dict[str, int] = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            if n.startswith(MULTIPART_TEMP):
                continue
            p = os.path.join(dirpath, n)
            try:
                out[os.path.relpath(p, root)] = os.stat(p).st_size
            except FileNotFoundError:  # renamed into place while we walked
                continue
    return out


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) below ``root``: used to check that a transfer is complete."""
    sizes = tree_sizes(root)
    return len(sizes), sum(sizes.values())


def warm(root: Path) -> None:
    """Read every file under ``root`` once, so the first tool of a round does not pay for
    bringing the data into the page cache (data generated in an earlier session may have
    been evicted) while the others read it from memory."""
    for d, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                while f.read(8 * MiB):
                    pass
