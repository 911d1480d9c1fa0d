"""rclone command construction, environment-only secrets, exit codes, finding rclone."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dshub.errors import DshubError, NotFoundError, RcloneNotFoundError, TransferError
from dshub.models import Credentials, Location
from dshub.transfer import rclone as rc
from dshub.transfer.common import refreshing_env, static_env
from dshub.util import rclone_bin

SECRET = "s3cr3t-SECRET-value-0123456789"
TOKEN = "session-TOKEN-value-abcdef"
LOC = Location(endpoint="http://127.0.0.1:9000", bucket="dshub", prefix="datasets/abc/v1/")
CREDS = Credentials(
    access_key_id="AKIDEXAMPLE123",
    secret_access_key=SECRET,
    session_token=TOKEN,
    expiry=datetime.now(timezone.utc) + timedelta(hours=1),
)


def _all_argv() -> list[list[str]]:
    return [
        rc.copy_up_args("rclone", "/src", LOC, "/tmp/list", bwlimit="1M"),
        rc.copy_down_args("rclone", LOC, "/dest", "/tmp/list"),
        rc.list_args("rclone", LOC),
        rc.cat_args("rclone", LOC, "a/b.csv"),
        rc.stat_args("rclone", LOC, "a/b.csv"),
        rc.delete_args("rclone", LOC, "/tmp/list"),
        rc.cleanup_args("rclone", LOC),
    ]


def test_secrets_never_in_argv() -> None:
    for argv in _all_argv():
        joined = "\0".join(argv)
        assert SECRET not in joined and TOKEN not in joined and CREDS.access_key_id not in joined
        assert "--s3-no-check-bucket" in argv  # scoped credentials cannot CreateBucket


def test_remote_path_has_trailing_slash() -> None:
    assert rc.remote_path(LOC) == "dshub:dshub/datasets/abc/v1/"
    assert rc.remote_path(Location(bucket="b", prefix="p/q")) == "dshub:b/p/q/"
    assert rc.remote_path(LOC, "x y/#%.csv") == "dshub:dshub/datasets/abc/v1/x y/#%.csv"


def test_copy_up_skip_check_is_listing_only() -> None:
    argv = rc.copy_up_args("rclone", "/src", LOC, "/tmp/list", transfers=4)
    # The engine plans from one listing; rclone neither lists nor HEADs again.
    for flag in ("--files-from-raw", "--no-check-dest", "--s3-no-head", "--use-json-log", "--skip-links"):
        assert flag in argv
    assert argv[argv.index("--transfers") + 1] == "4"
    assert "--s3-disable-checksum" not in argv  # keeps the store able to confirm MD5s
    lst = rc.list_args("rclone", LOC)
    for flag in ("--fast-list", "--no-modtime", "--hash", "-R"):
        assert flag in lst


def test_copy_down_does_not_head_every_object() -> None:
    argv = rc.copy_down_args("rclone", LOC, "/dest", "/tmp/list")
    assert "--no-traverse" not in argv  # would turn the listing into one HEAD per file
    assert argv[2] == "dshub:dshub/datasets/abc/v1/" and argv[3] == "/dest"
    # dshub checks each downloaded file against the manifest itself; rclone hashing it
    # too (even with no store MD5 to compare) would only spend CPU.
    assert "--ignore-checksum" in argv and "--ignore-checksum" not in rc.copy_up_args("rclone", "/src", LOC, "/l")


def test_remote_env_static() -> None:
    env = rc.remote_env(LOC, CREDS)
    assert env["RCLONE_CONFIG_DSHUB_TYPE"] == "s3"
    assert env["RCLONE_CONFIG_DSHUB_SECRET_ACCESS_KEY"] == SECRET
    assert env["RCLONE_CONFIG_DSHUB_SESSION_TOKEN"] == TOKEN
    assert env["RCLONE_CONFIG_DSHUB_ENDPOINT"] == LOC.endpoint
    assert env["RCLONE_CONFIG_DSHUB_ENV_AUTH"] == "false"


def test_base_env_drops_shadowing_variables() -> None:
    parent = {
        "PATH": "/bin",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_PROFILE": "prod",
        "RCLONE_CONFIG_DSHUB_ACCESS_KEY_ID": "z",
        "RCLONE_S3_UPLOAD_CUTOFF": "1M",
        "DSHUB_TOKEN": "t",
    }
    env = rc.base_env(parent)
    assert env["PATH"] == "/bin" and env["RCLONE_S3_UPLOAD_CUTOFF"] == "1M"
    for k in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "RCLONE_CONFIG_DSHUB_ACCESS_KEY_ID",
        "DSHUB_TOKEN",
    ):
        assert k not in env
    assert env["RCLONE_CONFIG"] == os.devnull


def test_static_env_has_secret_only_in_remote_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "other")
    env = static_env(LOC, CREDS)
    holders = [k for k, v in env.items() if SECRET in v]
    assert holders == ["RCLONE_CONFIG_DSHUB_SECRET_ACCESS_KEY"]
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_refreshing_env_uses_credential_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "shadow")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "shadow")
    env = refreshing_env(LOC, "sess-1", "http://hub", "dshub_tok", str(tmp_path), CREDS)
    # No static keys anywhere in the environment: only the profile can supply them.
    assert not any(SECRET in v or TOKEN in v for v in env.values())
    for k in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "RCLONE_CONFIG_DSHUB_ACCESS_KEY_ID",
    ):
        assert k not in env
    assert env["RCLONE_CONFIG_DSHUB_ENV_AUTH"] == "true"
    assert env["AWS_PROFILE"] == "dshub"
    cfg = Path(env["AWS_CONFIG_FILE"]).read_text()
    assert "credential_process" in cfg and "dshub.transfer.credential_process sess-1" in cfg
    for p in (env["AWS_CONFIG_FILE"], env["DSHUB_CRED_CACHE"], env["AWS_SHARED_CREDENTIALS_FILE"]):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert SECRET in Path(env["DSHUB_CRED_CACHE"]).read_text()


@pytest.mark.parametrize(
    ("code", "exc"),
    [
        (0, None),
        (9, None),
        # rclone exits 1 for any failure it has no category for: a runtime line is one.
        (1, TransferError),
        (2, TransferError),
        (3, NotFoundError),
        (4, NotFoundError),
        (5, TransferError),
        (6, TransferError),
        (7, TransferError),
        (8, TransferError),
    ],
)
def test_exit_code_mapping(code: int, exc: type[Exception] | None) -> None:
    err = rc.error_for_exit(code, "upload", ["a.csv: Failed to copy: boom"])
    if exc is None:
        assert err is None
    else:
        assert type(err) is exc
        assert "boom" in err.message
    if code == 5:
        assert err is not None and int(err.exit_code) == 5 and "run the same command" in err.message


def test_exit_1_with_rclone_usage_lines_is_a_dshub_bug() -> None:
    err = rc.error_for_exit(1, "upload", ['Error: invalid argument "fast" for "--bwlimit" flag: bad'])
    assert type(err) is DshubError and "dshub bug" in err.message
    err = rc.error_for_exit(1, "upload", [])
    assert type(err) is DshubError and "dshub bug" in err.message


def test_scrub() -> None:
    assert rc.scrub(f"x {SECRET} y", [SECRET, None]) == "x <hidden> y"


def _fake_rclone(path: Path, version: str) -> str:
    path.write_text(f"#!/bin/sh\necho 'rclone {version}'\necho '- os/version: test'\n")
    path.chmod(0o755)
    return str(path)


def test_find_rclone_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rclone_bin._probe.cache_clear()
    fake = _fake_rclone(tmp_path / "rclone", "v1.70.1")
    monkeypatch.setenv("DSHUB_RCLONE", fake)
    info = rclone_bin.find_rclone()
    assert info.path == fake and info.version == (1, 70, 1) and info.version_text == "v1.70.1"


def test_find_rclone_too_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rclone_bin._probe.cache_clear()
    monkeypatch.setenv("DSHUB_RCLONE", _fake_rclone(tmp_path / "rclone", "v1.60.1"))
    monkeypatch.setattr(rclone_bin, "_candidates", lambda: [os.environ["DSHUB_RCLONE"]])
    with pytest.raises(RcloneNotFoundError, match="install_rclone.sh"):
        rclone_bin.find_rclone()


def test_find_rclone_bad_env_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHUB_RCLONE", "/nonexistent/rclone")
    with pytest.raises(RcloneNotFoundError, match="DSHUB_RCLONE"):
        rclone_bin.find_rclone()


def test_find_rclone_soon_answers_or_raises_like_find_rclone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe on a thread gives the same answer, and its error reaches the caller."""
    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))
    rclone_bin._probe.cache_clear()
    fake = _fake_rclone(tmp_path / "rclone", "v1.70.1")
    monkeypatch.setenv("DSHUB_RCLONE", fake)
    assert rc.find_rclone_soon().result(timeout=20) == rclone_bin.find_rclone()
    monkeypatch.setenv("DSHUB_RCLONE", "/nonexistent/rclone")
    with pytest.raises(RcloneNotFoundError, match="DSHUB_RCLONE"):
        rc.find_rclone_soon().result(timeout=20)
    rclone_bin._probe.cache_clear()


def test_find_rclone_real() -> None:
    rclone_bin._probe.cache_clear()
    info = rclone_bin.find_rclone()
    assert info.version[:2] >= rclone_bin.MIN_VERSION


def test_parse_version() -> None:
    assert rclone_bin.parse_version("rclone v1.75.2\n- os") == (1, 75, 2)
    assert rclone_bin.parse_version("rclone v1.65") == (1, 65, 0)
    assert rclone_bin.parse_version("garbage") is None


def test_probe_result_is_cached_per_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rclone version` runs once per binary (path, size, mtime), not once per command."""
    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "rclone"
    _fake_rclone(fake, "v1.70.1")
    rclone_bin._probe.cache_clear()
    assert rclone_bin._probe(str(fake)) == (1, 70, 1)
    st = fake.stat()
    # Same size and mtime, other output: the cache answers (the binary is not run).
    fake.write_text(fake.read_text().replace("v1.70.1", "v1.70.9"))
    os.utime(fake, ns=(st.st_atime_ns, st.st_mtime_ns))
    rclone_bin._probe.cache_clear()
    assert rclone_bin._probe(str(fake)) == (1, 70, 1)
    # A replaced binary (new mtime) is probed again.
    os.utime(fake, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rclone_bin._probe.cache_clear()
    assert rclone_bin._probe(str(fake)) == (1, 70, 9)
    # A broken cache file is ignored.
    (tmp_path / "cache" / "rclone-version.json").write_text("{not json")
    rclone_bin._probe.cache_clear()
    assert rclone_bin._probe(str(fake)) == (1, 70, 9)
    rclone_bin._probe.cache_clear()


def test_copy_up_reports_md5_at_debug_level_only_when_asked() -> None:
    plain = rc.copy_up_args("rclone", "/src", LOC, "/tmp/list")
    asked = rc.copy_up_args("rclone", "/src", LOC, "/tmp/list", report_md5=True)
    assert "-v" in plain and "-vv" not in plain
    assert "-vv" in asked and "-v" not in asked and "--use-json-log" in asked
    assert [a for a in asked if a != "-vv"] == [a for a in plain if a != "-v"]
