"""rclone JSON log lines → typed progress events."""

from __future__ import annotations

import json

from dshub.transfer.stats import FileDone, Progress, RcloneLog, StatsParser

STATS = {
    "time": "2026-11-26T06:09:38Z",
    "level": "notice",
    "msg": "\nTransferred: ...",
    "stats": {
        "bytes": 5_000_000,
        "totalBytes": 6_000_000,  # rclone's guess while listing; the scan says 12 MB
        "transfers": 3,
        "totalTransfers": 5,
        "checks": 0,
        "errors": 0,
        "eta": 2,
        "speed": 2_500_000.5,
        "elapsedTime": 2.1,
        "transferring": [
            {"name": "big.bin", "size": 10_000_000, "bytes": 4_000_000, "percentage": 40, "speedAvg": 1e6},
        ],
    },
    "source": "accounting/stats.go:549",
}


def test_stats_line_uses_scan_totals() -> None:
    p = StatsParser(total_bytes=12_000_000, total_files=7)
    ev = p.feed(json.dumps(STATS) + "\n")
    assert isinstance(ev, Progress)
    assert ev.bytes == 5_000_000 and ev.total_bytes == 12_000_000
    assert ev.transfers == 3 and ev.total_transfers == 7
    assert ev.eta == (12_000_000 - 5_000_000) / 2_500_000.5 and ev.speed == 2_500_000.5
    assert ev.transferring[0].name == "big.bin" and ev.transferring[0].percentage == 40


def test_eta_computed_when_missing() -> None:
    s = dict(STATS, stats=dict(STATS["stats"], eta=None, speed=1_000_000.0))
    ev = StatsParser(total_bytes=12_000_000, total_files=7).feed(json.dumps(s))
    assert isinstance(ev, Progress) and ev.eta == 7.0


def test_copied_line() -> None:
    p = StatsParser(0, 0)
    line = {"level": "info", "msg": "Copied (new)", "size": 1000, "object": "a/f 1#%.txt"}
    ev = p.feed(json.dumps(line))
    assert ev == FileDone(path="a/f 1#%.txt", size=1000)
    assert p.files_done == ["a/f 1#%.txt"]
    assert isinstance(p.feed(json.dumps(dict(line, msg="Copied (replaced existing)"))), FileDone)


def test_error_lines_kept() -> None:
    p = StatsParser(0, 0)
    ev = p.feed(json.dumps({"level": "error", "msg": "Failed to copy: 403 Forbidden", "object": "x.csv"}))
    assert isinstance(ev, RcloneLog) and ev.path == "x.csv"
    assert p.errors == ["x.csv: Failed to copy: 403 Forbidden"]
    for i in range(30):
        p.feed(json.dumps({"level": "error", "msg": f"e{i}"}))
    assert len(p.errors) == 20 and p.errors[-1] == "e29"


def test_other_lines() -> None:
    p = StatsParser(0, 0)
    assert p.feed("") is None
    assert p.feed(json.dumps({"level": "info", "msg": "Making map for --files-from"})) is None
    assert p.feed(json.dumps({"level": "notice", "msg": "whatever"})) is None
    ev = p.feed("panic: not json")
    assert isinstance(ev, RcloneLog) and ev.message == "panic: not json"
    assert isinstance(p.feed("{broken json"), RcloneLog)


def _debug(msg: str, obj: str | None = "d/a.bin") -> str:
    # The field order rclone 1.75 writes (time, level, msg, object, ...).
    rec = {"time": "2026-11-26T11:51:42.431Z", "level": "debug", "msg": msg}
    if obj is not None:
        rec.update(object=obj, objectType="*local.Object", source="operations/operations.go:120")
    return json.dumps(rec, separators=(",", ":"))


def test_md5_reported_by_rclone_is_collected() -> None:
    p = StatsParser(0, 0)
    assert p.feed(_debug("md5 = ef18c8fbb233291bb5e1c1da752f2307 OK")) is None
    assert p.feed(_debug("md5 = 19a4380ce16b4ace78a6d0ec1a5fa103 OK", "日本語/データ.bin")) is None
    assert p.md5s == {"d/a.bin": "ef18c8fbb233291bb5e1c1da752f2307", "日本語/データ.bin": "19a4380ce16b4ace78a6d0ec1a5fa103"}


def test_md5_mismatch_and_other_debug_lines_are_not_collected() -> None:
    p = StatsParser(0, 0)
    # A mismatch is rclone's to report as an error; its debug line is not a verified hash.
    assert p.feed(_debug("md5 = ef18c8fbb233291bb5e1c1da752f2307 (Local) != 00000000000000000000000000000000 (S3)")) is None
    assert p.feed(_debug("md5 = ef18c8fbb233291bb5e1c1da752f2307 OK", obj=None)) is None  # whose?
    assert p.feed(_debug("Need to transfer - File not found at Destination")) is None
    assert p.feed(_debug("size = 512 OK")) is None
    # rclone's first lines come before JSON logging is set up: chatter, not errors.
    assert p.feed('2026/11/26 12:01:21 DEBUG : Setting --config "/dev/null" from environment variable') is None
    assert p.md5s == {} and p.errors == []


def test_multi_thread_copied_lines_count() -> None:
    # rclone 1.75 above --multi-thread-cutoff (256 MiB by default), captured on this
    # machine: downloads (*s3.Object) and uploads to S3 (*local.Object, multipart).
    p = StatsParser(0, 0)
    down = {"time": "2026-12-01T23:12:23.250831107Z", "level": "info", "msg": "Multi-thread Copied (new)",
            "size": 3000000, "object": "big.bin", "objectType": "*s3.Object", "source": "operations/copy.go:382"}
    up = dict(down, msg="Multi-thread Copied (new)", object="d/big2.bin", size=12000000, objectType="*local.Object")
    replaced = dict(down, msg="Multi-thread Copied (replaced existing)", object="c.bin")
    assert p.feed(json.dumps(down)) == FileDone(path="big.bin", size=3000000)
    assert p.feed(json.dumps(up)) == FileDone(path="d/big2.bin", size=12000000)
    assert isinstance(p.feed(json.dumps(replaced)), FileDone)
    assert p.files_done == ["big.bin", "d/big2.bin", "c.bin"]
    # Other multi-thread chatter is not a finished file.
    chatter = dict(down, level="debug", msg="Finished multi-thread copy with 3 parts of size 5Mi")
    assert p.feed(json.dumps(chatter)) is None and len(p.files_done) == 3
