"""rclone's error lines grouped by kind, and the one typed error each kind becomes.

The lines are rclone 1.75's own, captured from real runs on this machine (a download into
a read-only tmpfs, into a new folder under it, into a 1 MiB tmpfs, from an S3 endpoint
that was stopped, with a revoked key), so a change of wording upstream shows up here.
"""

from __future__ import annotations

import json

import pytest

from dshub.errors import (
    DestinationNotWritableError,
    DshubError,
    ExitCode,
    NoSpaceError,
    TransferError,
)
from dshub.transfer import rclone as rc
from dshub.transfer.failures import SHOWN_PER_KIND, Failures, Kind, classify
from dshub.transfer.stats import RcloneLog, StatsParser


def _line(msg: str, obj: str | None = None, level: str = "error") -> str:
    rec: dict[str, str] = {"time": "2026-12-01T23:20:34.899904713Z", "level": level, "msg": msg}
    if obj is not None:
        rec.update(object=obj, objectType="*s3.Object")
    rec["source"] = "operations/copy.go:349"
    return json.dumps(rec)


READ_ONLY = "Failed to copy: open ro/small.bin.16e8f8cb.partial: read-only file system"
READ_ONLY_MKDIR = "Failed to copy: mkdir ro/new: read-only file system"
FULL = "Failed to copy: preallocate: file too big for remaining disk space"
ENOSPC = "Failed to copy: write full/a.bin.3211c88d.partial: no space left on device"
REFUSED = (
    "Failed to copy: operation error S3: PutObject, exceeded maximum number of attempts, 1, https response "
    'error StatusCode: 0, RequestID: , HostID: , request send failed, Put "http://127.0.0.1:40883/dshub/'
    'datasets/b8ae/v1/f02.bin?x-id=PutObject": dial tcp 127.0.0.1:40883: connect: connection refused'
)
DENIED = (
    "Failed to copy: operation error S3: PutObject, https response error StatusCode: 403, RequestID: , "
    "HostID: , api error InvalidAccessKeyId: The Access Key Id you provided does not exist in our records."
)
SUMMARY = "Attempt 1/1 failed with 2 errors and: open ro/big.bin.3211c88d.partial: read-only file system"


@pytest.mark.parametrize(
    ("msg", "kind"),
    [
        (READ_ONLY, Kind.READ_ONLY),
        (READ_ONLY_MKDIR, Kind.READ_ONLY),
        (FULL, Kind.NO_SPACE),
        (ENOSPC, Kind.NO_SPACE),
        (REFUSED, Kind.UNREACHABLE),
        (DENIED, Kind.DENIED),
        ("Failed to copy: open /srv/x/a.bin.partial: permission denied", Kind.PERMISSION),
        ('Error: invalid argument "fast" for "--bwlimit" flag: strconv.ParseFloat', Kind.USAGE),
        ("Failed to copy: something new", Kind.OTHER),
    ],
)
def test_classify_real_lines(msg: str, kind: Kind) -> None:
    assert classify(msg) is kind


def test_many_errors_of_one_kind_give_a_few_events() -> None:
    p = StatsParser(0, 0)
    events = [p.feed(_line(READ_ONLY.replace("small", f"f{i:03d}"), f"f{i:03d}.bin")) for i in range(300)]
    shown = [e for e in events if e is not None]
    assert len(shown) == SHOWN_PER_KIND and all(isinstance(e, RcloneLog) for e in shown)
    assert p.failures.counts == {Kind.READ_ONLY: 300}
    # rclone's own summary repeats the last file's error: counted as a kind, not shown.
    assert p.feed(_line(SUMMARY)) is None and p.failures.counts[Kind.READ_ONLY] == 300
    assert p.failures.should_stop
    err = rc.error_for_exit(1, "download", p.errors[-3:], p.failures)
    assert isinstance(err, DestinationNotWritableError) and err.exit_code == ExitCode.FAILURE
    assert "300 file(s)" in err.message and "read-only file system" in err.message
    assert "dshub bug" not in err.message


def test_kinds_map_to_typed_errors_and_exit_codes() -> None:
    cases = [
        ([FULL], 1, NoSpaceError, ExitCode.FAILURE, "no space left"),
        ([REFUSED], 5, TransferError, ExitCode.TRANSFER, "run the same command again"),
        ([REFUSED], 1, TransferError, ExitCode.TRANSFER, "stopped answering"),
        ([DENIED], 1, TransferError, ExitCode.TRANSFER, "refused the credentials"),
        (["Failed to copy: something new"], 1, TransferError, ExitCode.TRANSFER, "run the same command"),
    ]
    for lines, code, exc, exit_code, words in cases:
        err = rc.error_for_exit(code, "download", lines)
        assert type(err) is exc and err.exit_code == exit_code and words in err.message, (lines, err)


def test_worst_kind_decides() -> None:
    f = Failures()
    f.add(REFUSED)
    f.add(ENOSPC)
    f.add("Failed to copy: something new")
    assert f.worst is Kind.NO_SPACE
    assert isinstance(rc.error_for_exit(1, "download", [], f), NoSpaceError)


def test_read_only_on_upload_is_not_called_a_destination() -> None:
    err = rc.error_for_exit(1, "upload", ["Failed to copy: open /data/a.bin: permission denied"])
    assert type(err) is DshubError and "local file system" in err.message


def test_summary_only_still_classified() -> None:
    # The listing failed before any file: the summary line is all there is.
    p = StatsParser(0, 0)
    p.feed(_line("Attempt 1/1 failed with 1 errors and: " + REFUSED.removeprefix("Failed to copy: ")))
    assert p.failures.worst is Kind.UNREACHABLE and p.failures.total() == 0
    assert isinstance(rc.error_for_exit(1, "download", p.errors, p.failures), TransferError)


def test_a_full_store_on_upload_is_a_retryable_transfer_error() -> None:
    err = rc.error_for_exit(1, "upload", ["a.bin: Failed to copy: write /objects/a.bin: no space left on device"])
    assert type(err) is TransferError and "storage has no space" in err.message
