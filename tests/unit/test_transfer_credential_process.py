"""credential_process: output format, early expiry, cache, refresh through the hub."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dshub.models import Credentials
from dshub.transfer import credential_process as cp

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def _creds(ttl: float, key: str = "AKID1") -> Credentials:
    return Credentials(
        access_key_id=key, secret_access_key="sec", session_token="tok", expiry=NOW + timedelta(seconds=ttl)
    )


def test_margin() -> None:
    assert cp.margin_for(NOW, NOW + timedelta(seconds=30)) == timedelta(seconds=10)
    assert cp.margin_for(NOW, NOW + timedelta(hours=1)) == timedelta(minutes=5)
    assert cp.margin_for(NOW, NOW + timedelta(seconds=6)) == timedelta(seconds=5)


def test_output_reports_early_expiry() -> None:
    doc = cp.process_output(_creds(30), NOW)
    assert doc == {
        "Version": 1,
        "AccessKeyId": "AKID1",
        "SecretAccessKey": "sec",
        "SessionToken": "tok",
        "Expiration": "2026-11-26T12:00:20Z",
    }


def test_cache_roundtrip_0600(tmp_path: Path) -> None:
    path = str(tmp_path / "c.json")
    cp.write_cache(path, _creds(30), NOW)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    creds, issued = cp.read_cache(path)  # type: ignore[misc]
    assert creds.access_key_id == "AKID1" and issued == NOW
    assert cp.read_cache(str(tmp_path / "missing")) is None


class _FakeHub:
    calls = 0

    def __init__(self, url: str, token: str | None, timeout: float = 0) -> None:
        assert url == "http://hub" and token == "tkn"

    def __enter__(self) -> _FakeHub:
        return self

    def __exit__(self, *a: Any) -> None:
        pass

    def refresh_session(self, sid: str) -> Any:
        _FakeHub.calls += 1

        class S:
            credentials = Credentials(
                access_key_id="AKID2",
                secret_access_key="sec2",
                expiry=datetime.now(timezone.utc) + timedelta(seconds=30),
            )

        return S()


def test_fresh_cache_needs_no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dshub.api.client as api

    monkeypatch.setattr(api, "HubClient", _FakeHub)
    _FakeHub.calls = 0
    path = str(tmp_path / "c.json")
    cp.write_cache(path, _creds(3600), NOW)
    creds, _ = cp.fresh_credentials("s1", path, now=NOW + timedelta(seconds=60))
    assert creds.access_key_id == "AKID1" and _FakeHub.calls == 0


def test_stale_cache_refreshes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dshub.api.client as api

    monkeypatch.setattr(api, "HubClient", _FakeHub)
    monkeypatch.setenv("DSHUB_HUB_URL", "http://hub")
    monkeypatch.setenv("DSHUB_TOKEN", "tkn")
    path = str(tmp_path / "c.json")
    real_now = datetime.now(timezone.utc)
    stale = Credentials(
        access_key_id="AKID1", secret_access_key="sec", expiry=real_now + timedelta(seconds=5)
    )
    cp.write_cache(path, stale, real_now - timedelta(seconds=25))
    monkeypatch.setenv("DSHUB_CRED_CACHE", path)
    _FakeHub.calls = 0
    assert cp.main(["s1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["AccessKeyId"] == "AKID2" and "SessionToken" not in out and _FakeHub.calls == 1
    assert cp.read_cache(path)[0].access_key_id == "AKID2"  # type: ignore[index]


def test_failure_is_one_line_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DSHUB_HUB_URL", raising=False)
    monkeypatch.delenv("DSHUB_CRED_CACHE", raising=False)
    assert cp.main(["s1"]) == 1
    err = capsys.readouterr().err
    assert "cannot refresh" in err and err.count("\n") == 1
    assert cp.main([]) == 2
