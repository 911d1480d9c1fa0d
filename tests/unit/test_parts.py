"""The layout of big files' parts, the resume plan, the part-size option and its progress line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dshub.cli.progress import PlainRenderer
from dshub.errors import UsageError
from dshub.models import ErrorDetail, Location, ManifestEntry
from dshub.transfer.common import RemoteObject
from dshub.transfer.parts import plan_file, slice_md5
from dshub.transfer.ranges import RangeFetcher, _File
from dshub.transfer.stats import Progress
from dshub.transfer.upload_options import UploadOptions
from dshub.util import digest
from dshub.util.digest import blake3_parallel
from dshub.util.parts import (
    DEFAULT_PART,
    MAX_PARTS,
    MIN_PART,
    Part,
    in_parts,
    is_parts_path,
    parse_name,
    part_size_for,
    slices,
)
from dshub.util.units import parse_size

MIB = 2**20


def test_part_size_grows_so_no_file_needs_more_than_10000_parts() -> None:
    assert part_size_for(45 * 10**9) == DEFAULT_PART  # 671 parts of 64 MiB
    huge = 5 * 2**40  # S3's largest object
    size = part_size_for(huge)
    assert size % MIB == 0 and -(-huge // size) <= MAX_PARTS
    assert part_size_for(huge, MIN_PART) == size


def test_slices_cover_the_file_once() -> None:
    parts = slices(16 * MIB + 3, 5 * MIB)
    assert [(p.offset, p.length) for p in parts] == [(0, 5 * MIB), (5 * MIB, 5 * MIB), (10 * MIB, 5 * MIB), (15 * MIB, MIB + 3)]
    assert not in_parts(10 * MIB - 1, 5 * MIB) and in_parts(10 * MIB, 5 * MIB)


def test_part_names_round_trip_and_nothing_else_parses() -> None:
    p = Part(5 * MIB, MIB, "0" * 32)
    assert parse_name(p.name()) == (5 * MIB, "0" * 32)
    for bad in ("p5-abc", "p000000005242880", ".rclone_temp_put_x", "p000000005242880-" + "g" * 32, ".joining"):
        assert parse_name(bad) is None
    assert is_parts_path(".dshub-parts/a/b") and not is_parts_path(".dshub-partsx/a")


def _listing(rel: str, parts: list[Part], **override: RemoteObject) -> dict[str, RemoteObject]:
    out = {f".dshub-parts/{rel}/{p.name()}": RemoteObject(size=p.length, md5=p.md5) for p in parts}
    out.update({f".dshub-parts/{rel}/{k}": v for k, v in override.items()})
    return out


def test_plan_keeps_stored_parts_of_the_layout_and_marks_the_rest_stale() -> None:
    a = Part(0, 5 * MIB, "a" * 32)
    b = Part(5 * MIB, 5 * MIB, "b" * 32)
    listing = _listing("x/big.bin", [a, b])
    listing[".dshub-parts/x/big.bin/" + Part(3, 5 * MIB, "c" * 32).name()] = RemoteObject(5 * MIB, "c" * 32)  # odd offset
    listing[".dshub-parts/x/big.bin/" + Part(10 * MIB, 7, "d" * 32).name()] = RemoteObject(7, "d" * 32)  # wrong length
    damaged = Part(15 * MIB, 1, "e" * 32)
    listing[".dshub-parts/x/big.bin/" + damaged.name()] = RemoteObject(1, "f" * 32)  # content ≠ name
    listing[".dshub-parts/x/big.bin/sub/" + a.name()] = RemoteObject(5 * MIB, "a" * 32)  # another file's
    listing[".dshub-parts/other/" + a.name()] = RemoteObject(5 * MIB, "a" * 32)
    no_md5 = Part(15 * MIB, 1, "9" * 32)  # a multipart ETag: not a part dshub wrote
    listing[".dshub-parts/x/big.bin/" + no_md5.name()] = RemoteObject(1, None)
    plan = plan_file("x/big.bin", 15 * MIB + 1, 5 * MIB, listing)
    assert plan.stored == {0: a.name(), 5 * MIB: b.name()}
    assert sorted(plan.stale) == sorted(
        [Part(3, 0, "c" * 32).name(), Part(10 * MIB, 0, "d" * 32).name(), damaged.name(), no_md5.name()]
    )
    assert len(plan.parts) == 4


def test_slice_md5_reads_exactly_the_slice(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * MIB)
    f = tmp_path / "f"
    f.write_bytes(data)
    fd = os.open(f, os.O_RDONLY)
    try:
        assert slice_md5(fd, MIB + 5, MIB) == hashlib.md5(data[MIB + 5 : 2 * MIB + 5]).hexdigest()
    finally:
        os.close(fd)


@pytest.mark.parametrize("text,expected", [("5M", 5 * MIB), ("64MiB", 64 * MIB), ("1G", 2**30), ("5242880", 5 * MIB)])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "abc", "1X", "-1M", "nan", "inf"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("size", [MIN_PART - 1, 5 * 2**30 + 1, 0])
def test_part_size_out_of_range_is_a_usage_error(size: int) -> None:
    with pytest.raises(UsageError, match="--part-size"):
        UploadOptions(part_size=size).check()


def test_progress_line_counts_parts() -> None:
    ev = Progress(bytes=3_100_000_000, total_bytes=45_000_000_000, transfers=0, total_transfers=0, errors=0,
                  speed=1e8, eta=419.0, elapsed=31.0, parts=49, total_parts=704)
    line = PlainRenderer().describe(ev)
    assert "3.1 GB / 45.0 GB" in line and "part 49 of 704" in line


# --- downloads in runs of ranges, and the whole-file check on every core -------------------


def _fetcher(transfers: int) -> RangeFetcher:
    loc = Location(endpoint="http://127.0.0.1:1", bucket="b", prefix="p/", region="us-east-1")
    return RangeFetcher("rclone", loc, {}, "/nowhere", part_size=MIB * 5, transfers=transfers, on_event=lambda e: None)


def _file(size: int, done: set[int]) -> _File:
    f = _File(ManifestEntry(path="big.bin", size=size, blake3="0" * 64), "/nowhere", 5 * MIB)
    f.done = done
    return f


def test_missing_ranges_go_in_about_one_run_per_transfer() -> None:
    f = _file(64 * 5 * MIB, set())
    stripes = _fetcher(8)._stripes([f])
    assert [len(s) for _f, s in stripes] == [8] * 8
    assert [p for _f, s in stripes for p in s] == f.parts  # each range once, in order


def test_runs_are_consecutive_ranges_around_those_done() -> None:
    f = _file(10 * 5 * MIB, {2 * 5 * MIB, 3 * 5 * MIB, 7 * 5 * MIB})  # ranges 2, 3, 7 kept
    stripes = _fetcher(2)._stripes([f])
    got = [[p.offset // (5 * MIB) for p in s] for _f, s in stripes]
    assert got == [[0, 1], [4, 5, 6], [8, 9]]  # 7 missing ranges, 2 transfers: runs of ≤ 4


def test_runs_never_span_two_files() -> None:
    a, b = _file(3 * 5 * MIB, set()), _file(3 * 5 * MIB, set())
    b.entry = ManifestEntry(path="other.bin", size=b.entry.size, blake3="0" * 64)
    stripes = _fetcher(1)._stripes([a, b])
    assert [(f.entry.path, len(s)) for f, s in stripes] == [("big.bin", 3), ("other.bin", 3)]


WINDOW = 64 * 1024  # the tests map 64 KiB at a time: many windows without writing GiBs


@pytest.mark.parametrize("size", [0, 1, WINDOW - 1, WINDOW, 5 * WINDOW + 12345])
def test_blake3_on_every_core_is_blake3(tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import blake3

    monkeypatch.setattr(digest, "_WINDOW", WINDOW)
    path = tmp_path / "f.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    assert blake3_parallel(path) == blake3.blake3(data).hexdigest()


def test_hub_check_of_a_big_file_finds_a_changed_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import blake3

    from dshub.hub import publish

    monkeypatch.setattr(digest, "_WINDOW", WINDOW)
    monkeypatch.setattr(publish, "BIG", 4 * WINDOW)
    path = tmp_path / "big.bin"
    data = bytearray(os.urandom(9 * WINDOW + 7))
    path.write_bytes(data)
    e = ManifestEntry(path="big.bin", size=len(data), blake3=blake3.blake3(data).hexdigest(), md5="a" * 32)
    assert publish._check_file(path, e) == ("a" * 32, e.blake3, None)  # the big-file path: MD5 as given
    data[5 * WINDOW + 5] ^= 1
    path.write_bytes(data)
    problem = publish._check_file(path, e)[2]
    assert problem is not None and problem.problem == "blake3 differs"
    path.unlink()
    assert publish._check_file(path, e)[2] == ErrorDetail(path="big.bin", problem="missing in storage")
