"""Credential formats and rclone.conf editing (pure functions)."""

from __future__ import annotations

import configparser
import json
import shlex
import stat
import subprocess
from datetime import datetime, timezone

import pytest

from dshub.errors import UsageError
from dshub.library import creds_format as cf
from dshub.models import Credentials, Location

LOC = Location(endpoint="http://127.0.0.1:9000", bucket="dshub", prefix="datasets/u1/v3", region="eu-west-1")
CREDS = Credentials(
    access_key_id="AKID",
    secret_access_key="s3cr3t/with'quote$",
    session_token="tok en",
    expiry=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
)


def test_paths_have_one_trailing_slash():
    assert cf.bucket_path(LOC) == "dshub/datasets/u1/v3/"
    assert cf.remote_path("r", LOC.model_copy(update={"prefix": "/p/"})) == "r:dshub/p/"
    assert cf.remote_path("r", LOC.model_copy(update={"prefix": ""})) == "r:dshub/"


def test_rclone_options():
    opts = cf.rclone_options(LOC, CREDS)
    assert opts["type"] == "s3" and opts["no_check_bucket"] == "true"
    assert opts["session_token"] == "tok en" and opts["endpoint"] == LOC.endpoint
    no_tok = cf.rclone_options(LOC.model_copy(update={"endpoint": None}), CREDS.model_copy(update={"session_token": None}))
    assert "session_token" not in no_tok and "endpoint" not in no_tok


def test_env_format_is_shell_safe():
    text = cf.format_env(LOC, CREDS, "mine")
    # Evaluate in a real shell and read the variables back.
    script = text + "\nenv | grep -E '^(RCLONE_CONFIG_MINE_|AWS_)' | sort"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={}).stdout
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["RCLONE_CONFIG_MINE_SECRET_ACCESS_KEY"] == CREDS.secret_access_key
    assert env["AWS_SECRET_ACCESS_KEY"] == CREDS.secret_access_key
    assert env["AWS_SESSION_TOKEN"] == "tok en"
    assert env["RCLONE_CONFIG_MINE_NO_CHECK_BUCKET"] == "true"
    assert env["AWS_ENDPOINT_URL"] == LOC.endpoint and env["AWS_REGION"] == "eu-west-1"
    # What pyarrow/boto3 uploads to a non-AWS endpoint need, and object_store's plain-HTTP switch.
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert env["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"
    assert env["AWS_ALLOW_HTTP"] == "true"
    assert "rclone ls mine:dshub/datasets/u1/v3/" in text
    with pytest.raises(UsageError):
        cf.format_env(LOC, CREDS, "my-remote")


def test_aws_profile_block_parses():
    cp = configparser.ConfigParser()
    cp.read_string(cf.format_aws_profile(LOC, CREDS, "dshub"))
    assert cp["dshub"]["aws_secret_access_key"] == CREDS.secret_access_key
    assert cp["dshub"]["aws_session_token"] == "tok en"
    assert cp["dshub"]["endpoint_url"] == LOC.endpoint
    assert cp["dshub"]["request_checksum_calculation"] == "when_required"
    assert cp["dshub"]["response_checksum_validation"] == "when_required"


def test_aws_endpoint_settings_only_where_an_endpoint_is_given():
    aws = LOC.model_copy(update={"endpoint": None})
    assert cf.sdk_settings(aws) == {}
    assert "CHECKSUM" not in cf.format_env(aws, CREDS) and "checksum" not in cf.format_aws_profile(aws, CREDS)
    https = cf.sdk_settings(LOC.model_copy(update={"endpoint": "https://minio.example.org"}))
    assert "AWS_ALLOW_HTTP" not in https and https["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"


def test_credential_process_json():
    doc = json.loads(cf.format_credential_process(CREDS))
    assert doc == {
        "Version": 1,
        "AccessKeyId": "AKID",
        "SecretAccessKey": CREDS.secret_access_key,
        "SessionToken": "tok en",
        "Expiration": "2030-01-02T03:04:05Z",
    }


def test_rclone_section_parses():
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(cf.format_rclone_section(LOC, CREDS, "dshub-x"))
    assert cp["dshub-x"]["secret_access_key"] == CREDS.secret_access_key


def test_table_rows_cover_everything():
    rows = dict(cf.table_rows(LOC, CREDS))
    assert set(rows) >= {"endpoint", "bucket", "prefix", "region", "access key id", "secret access key", "session token", "expires"}
    assert rows["prefix"] == "datasets/u1/v3/"


EXISTING = """# my rclone config
[gdrive]
type = drive
token = {"access_token":"x"}

; comment before s3
[dshub-x]
type = s3
access_key_id = OLD

[zz]
type = local
"""


def test_set_remote_updates_in_place_and_keeps_others():
    new, existed = cf.set_rclone_remote(EXISTING, "dshub-x", cf.rclone_options(LOC, CREDS))
    assert existed
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(new)
    assert cp["dshub-x"]["access_key_id"] == "AKID"
    assert cp["gdrive"]["token"] == '{"access_token":"x"}'
    assert cp["zz"]["type"] == "local"
    # Every line outside the section is byte-identical.
    assert new.startswith(EXISTING.split("[dshub-x]")[0])
    assert new.endswith("[zz]\ntype = local\n")
    assert "OLD" not in new


def test_set_remote_appends_new_section():
    new, existed = cf.set_rclone_remote(EXISTING, "other", {"type": "s3"})
    assert not existed
    assert new.startswith(EXISTING)
    assert new.endswith("\n[other]\ntype = s3\n")
    new2, _ = cf.set_rclone_remote("", "a", {"type": "s3"})
    assert new2 == "[a]\ntype = s3\n"


def test_set_remote_last_section_and_idempotent():
    once, _ = cf.set_rclone_remote(EXISTING, "zz", {"type": "s3"})
    twice, existed = cf.set_rclone_remote(once, "zz", {"type": "s3"})
    assert existed and once == twice
    assert once.endswith("[zz]\ntype = s3\n")


def test_write_rclone_remote_file_mode(tmp_path):
    path = tmp_path / "sub" / "rclone.conf"
    assert cf.write_rclone_remote(path, "r1", cf.rclone_options(LOC, CREDS)) is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text(EXISTING)
    path.chmod(0o644)
    assert cf.write_rclone_remote(path, "dshub-x", cf.rclone_options(LOC, CREDS)) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "[gdrive]" in path.read_text()


def test_encrypted_config_is_refused(tmp_path):
    path = tmp_path / "rclone.conf"
    path.write_text("RCLONE_ENCRYPT_V0:\nabcdef\n")
    with pytest.raises(UsageError, match="encrypted"):
        cf.write_rclone_remote(path, "r", {"type": "s3"})


def test_bad_remote_names_and_values():
    for bad in ("", "a:b", "[x]", "a\nb", "-x"):
        with pytest.raises(UsageError):
            cf.set_rclone_remote("", bad, {"type": "s3"})
    with pytest.raises(UsageError):
        cf.set_rclone_remote("", "ok", {"type": "s3\n[evil]"})


def test_default_config_path(monkeypatch, tmp_path):
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "x.conf"))
    assert cf.default_rclone_config_path() == tmp_path / "x.conf"
    monkeypatch.delenv("RCLONE_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert cf.default_rclone_config_path() == tmp_path / "cfg" / "rclone" / "rclone.conf"


def test_default_config_path_matches_rclone(monkeypatch, tmp_path):
    rclone = shlex.quote(str(__import__("pathlib").Path(__import__("sys").executable).parent / "rclone"))
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(f"{rclone} config file", shell=True, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        pytest.skip("no rclone beside the interpreter")
    monkeypatch.delenv("RCLONE_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert str(cf.default_rclone_config_path()) == out.stdout.strip().splitlines()[-1]
