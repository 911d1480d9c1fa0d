"""Where the benchmark's tools write (tmpfs when it fits, else the disk, or --workdir), and the
page-cache warm-up of the source data."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import scratch  # noqa: E402
from benchmarks.config import FULL, QUICK, GiB  # noqa: E402

MOUNTS = """\
/dev/vda / ext4 rw,relatime,discard 0 0
proc /proc proc rw 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
/dev/vdb /data\\040disk xfs rw 0 0
"""


def test_fs_type_takes_the_longest_mount_point() -> None:
    assert scratch.fs_type(Path("/dev/shm/x/y"), MOUNTS) == "tmpfs"
    assert scratch.fs_type(Path("/dev/shmx"), MOUNTS) == "ext4"  # a prefix of a name is not a parent
    assert scratch.fs_type(Path("/data disk/run"), MOUNTS) == "xfs"
    assert scratch.fs_type(Path("/work/main/.bench"), MOUNTS) == "ext4"
    assert scratch.fs_type(Path("/x"), "") == "unknown"


def test_tmpfs_is_chosen_when_it_has_room(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    mounts = MOUNTS + f"tmpfs {shm} tmpfs rw 0 0\n"
    got = scratch.choose(FULL, tmpfs=shm, fallback=tmp_path / "disk", mounts=mounts,
                         mem_available=64 * GiB, free_bytes=lambda p: 64 * GiB)
    assert got.parent == shm and got.fs_type == "tmpfs"
    assert "not this VM's disk" in got.describe()


def test_disk_is_used_when_tmpfs_is_too_small_or_missing(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    mounts = MOUNTS + f"tmpfs {shm} tmpfs rw 0 0\n"
    need = scratch.peak_bytes(FULL) + scratch.HEADROOM
    # Free space on the tmpfs is plenty, but memory is not: tmpfs pages are memory.
    got = scratch.choose(FULL, tmpfs=shm, fallback=tmp_path / "disk", mounts=mounts,
                         mem_available=need - 1, free_bytes=lambda p: 64 * GiB)
    assert got.parent == tmp_path / "disk"
    assert "the run needs" in got.reason and "noise" in got.reason
    # The quick sizes fit where the full ones do not.
    quick = scratch.choose(QUICK, tmpfs=shm, fallback=tmp_path / "disk", mounts=mounts,
                           mem_available=need - 1, free_bytes=lambda p: 64 * GiB)
    assert quick.parent == shm
    # A folder that is not a tmpfs is never taken for one.
    plain = tmp_path / "plain"
    plain.mkdir()
    got = scratch.choose(FULL, tmpfs=plain, fallback=tmp_path / "disk", mounts=MOUNTS,
                         mem_available=64 * GiB, free_bytes=lambda p: 64 * GiB)
    assert got.parent == tmp_path / "disk" and "no tmpfs" in got.reason


def test_workdir_given_by_the_user_wins(tmp_path: Path) -> None:
    got = scratch.choose(FULL, tmp_path, mounts=MOUNTS)
    assert got.parent == tmp_path and got.reason == "chosen with --workdir"


def test_warm_reads_every_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import datagen

    for rel in ("d000/a.bin", "d001/b.bin"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * 10)
    opened: list[str] = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    datagen.warm(tmp_path)
    assert sorted(Path(p).name for p in opened) == ["a.bin", "b.bin"]
