"""Where a run writes: the server's stored objects, downloads, the `cp -r` floor's copies.

The source data stays under ``.bench/data`` (generated once, read from the page cache).
What the tools *write* goes to a run folder, by default on tmpfs: this VM's ext4 (mounted
with ``discard``) spends about a millisecond of kernel CPU per file created soon after a
large delete, and the bench deletes every destination after its run. Measured here:
`cp -r` of 5,000 × 20 KiB took 0.4 s into a fresh folder and 4-5 s right after the
previous copy was deleted; tuned rclone uploading the same files to `rclone serve s3`
slowed 4.7 → 6.5 → 9.3 s over three runs with deletes between (tmpfs: 5.0, 4.1, 4.2 s).
That is noise larger than the differences between the tools, so by default the writes go
where the file system costs (nearly) nothing and every tool is measured, not the disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import BENCH_DIR, GiB, Mode

TMPFS = Path("/dev/shm")
HEADROOM = 2 * GiB  # memory left to the tools themselves (rclone buffers, page cache of the data)


@dataclass(frozen=True)
class Scratch:
    """The folder a run's folders are made in, and what kind of file system holds it."""

    parent: Path
    fs_type: str
    reason: str

    def describe(self) -> str:
        """One line for the report: where the tools wrote and why there."""
        return f"{self.fs_type} ({self.parent}): {self.reason}"


def peak_bytes(mode: Mode) -> int:
    """Most a run keeps stored at once: D's published source + one download + F's leftovers;
    or G's working copy, v1 on both hubs and a peer's, and one peer's new version."""
    return max(3 * mode.big.total + 2 * mode.small.total + 2 * mode.noop.total, 5 * mode.versions.total)


def fs_type(path: Path, mounts: str) -> str:
    """The file-system type of ``path``, from /proc/mounts text (longest mount point wins)."""
    best, kind = "", "unknown"
    target = str(path.resolve()) if path.exists() else str(path)
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mounts() -> str:
    try:
        return Path("/proc/mounts").read_text()
    except OSError:
        return ""


def choose(mode: Mode, explicit: Path | None = None, *, tmpfs: Path = TMPFS, fallback: Path = BENCH_DIR,
           mounts: str | None = None, mem_available: int | None = None,
           free_bytes=_free_bytes) -> Scratch:
    """Pick the run folder's parent: ``explicit`` if given, else tmpfs when it fits, else the disk."""
    mounts = _mounts() if mounts is None else mounts
    if explicit is not None:
        return Scratch(explicit, fs_type(explicit, mounts), "chosen with --workdir")
    need = peak_bytes(mode) + HEADROOM
    if tmpfs.is_dir() and fs_type(tmpfs, mounts) == "tmpfs":
        mem = _mem_available() if mem_available is None else mem_available
        room = min(free_bytes(tmpfs), mem)
        if room >= need:
            return Scratch(tmpfs, "tmpfs", "what the tools write is measured, not this VM's disk (benchmarks/scratch.py)")
        why = f"tmpfs has {room / GiB:.1f} GiB free, the run needs {need / GiB:.1f} GiB"
    else:
        why = f"no tmpfs at {tmpfs}"
    return Scratch(fallback, fs_type(fallback, mounts), f"{why}; disk times include file-system noise")
