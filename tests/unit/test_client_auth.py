"""Config profiles and token resolution: argument → env → keyring → 0600 file."""

from __future__ import annotations

import logging
import stat

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from dshub.api import auth, config
from dshub.errors import NotLoggedInError, UsageError


class MemoryKeyring(KeyringBackend):
    priority = 5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        self.data.pop((service, username))


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service, username):
        raise RuntimeError("dbus exploded")

    def set_password(self, service, username, password):
        raise RuntimeError("dbus exploded")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("DSHUB_CONFIG_DIR", str(tmp_path / "cfg"))
    for var in ("DSHUB_TOKEN", "DSHUB_HUB_URL", "DSHUB_PROFILE", "PYTHON_KEYRING_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_config_roundtrip_and_modes(tmp_path):
    cfg = config.load_config()
    assert cfg.profiles == {}
    cfg.set_profile(config.Profile("default", "http://a:1"))
    cfg.set_profile(config.Profile("staging", 'http://b:2/"quoted"'))
    cfg.default_profile = "staging"
    path = config.save_config(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = config.load_config()
    assert again.default_profile == "staging"
    assert again.profile("staging").hub_url == 'http://b:2/"quoted"'
    assert again.profile().name == "staging"
    with pytest.raises(UsageError):
        config.validate_profile("a b")


def test_broken_config_is_a_usage_error():
    d = config.ensure_config_dir()
    (d / "config.toml").write_text("this is = = not toml")
    with pytest.raises(UsageError, match="config.toml"):
        config.load_config()


def test_file_fallback_when_no_keyring():
    store = auth.TokenStore()
    assert store.info().kind == "file"
    where = store.set("default", "http://a:1", "T1")
    assert where.kind == "file"
    path = auth.token_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.lookup("default", "http://a:1") == ("T1", "file")
    assert store.get("default", "http://other") is None
    assert store.delete("default", "http://a:1") is True
    assert not path.exists()
    assert store.delete("default", "http://a:1") is False


def test_token_file_answers_without_loading_the_keyring(monkeypatch):
    auth.TokenStore().set("default", "http://a:1", "T1")  # no keyring here: the file

    def boom():
        raise AssertionError("keyring backend discovery (~0.1 s) on the fast path")

    monkeypatch.setattr(auth, "_keyring_backend", boom)
    assert auth.TokenStore().lookup("default", "http://a:1") == ("T1", "file")
    monkeypatch.setenv("DSHUB_TOKEN", "ENV")
    assert auth.resolve_login(hub_url="http://b:2").token == "ENV"


def test_real_keyring_is_used(monkeypatch):
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    store = auth.TokenStore()
    assert store.set("p", "http://a:1", "T2").kind == "keyring"
    assert kr.data == {("dshub", "p@http://a:1"): "T2"}
    assert not auth.token_file().exists()
    assert store.lookup("p", "http://a:1") == ("T2", "keyring")


def test_keyrings_alt_is_used_only_when_asked(monkeypatch, tmp_path):
    from keyrings.alt.file import PlaintextKeyring

    kr = PlaintextKeyring()
    kr.file_path = str(tmp_path / "alt.cfg")  # never the user's real file
    keyring.set_keyring(kr)
    assert auth.TokenStore().info().kind == "file"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    assert auth.TokenStore().info().kind == "keyring"


def test_broken_keyring_falls_back_and_logs(caplog):
    keyring.set_keyring(BrokenKeyring())
    store = auth.TokenStore()
    with caplog.at_level(logging.WARNING, logger="dshub.api.auth"):
        assert store.set("default", "http://a:1", "T3").kind == "file"
        assert store.get("default", "http://a:1") == "T3"
    assert "dbus exploded" not in caplog.text  # type only, never the backend's text
    assert "T3" not in caplog.text
    assert "keyring" in caplog.text


def test_resolution_order(monkeypatch):
    cfg = config.load_config()
    cfg.set_profile(config.Profile("default", "http://stored:1"))
    config.save_config(cfg)
    auth.TokenStore().set("default", "http://stored:1", "STORED")

    login = auth.resolve_login()
    assert (login.hub_url, login.token, login.token_source, login.hub_source) == (
        "http://stored:1", "STORED", "file", "profile")

    monkeypatch.setenv("DSHUB_TOKEN", "ENV")
    assert auth.resolve_login().token == "ENV"
    assert auth.resolve_login(token="ARG").token_source == "argument"

    monkeypatch.setenv("DSHUB_HUB_URL", "http://env:2/")
    login = auth.resolve_login()
    assert (login.hub_url, login.hub_source) == ("http://env:2", "DSHUB_HUB_URL")
    monkeypatch.delenv("DSHUB_TOKEN")
    # A stored token belongs to its hub URL: never sent to another hub.
    assert auth.resolve_login().token is None


def test_profiles_select_tokens(monkeypatch):
    cfg = config.load_config()
    cfg.set_profile(config.Profile("default", "http://a:1"))
    cfg.set_profile(config.Profile("other", "http://b:1"))
    config.save_config(cfg)
    store = auth.TokenStore()
    store.set("default", "http://a:1", "TA")
    store.set("other", "http://b:1", "TB")
    assert auth.resolve_login().token == "TA"
    assert auth.resolve_login("other").token == "TB"
    monkeypatch.setenv("DSHUB_PROFILE", "other")
    assert auth.resolve_login().hub_url == "http://b:1"


def test_resolve_client_errors(monkeypatch):
    with pytest.raises(NotLoggedInError, match="no hub URL") as e:
        auth.resolve_client()
    assert e.value.code == "no_hub"
    monkeypatch.setenv("DSHUB_HUB_URL", "http://x:1")
    with pytest.raises(NotLoggedInError, match="no token") as e:
        auth.resolve_client()
    assert e.value.code == "no_token"
    c = auth.resolve_client(require_token=False)
    assert c.base_url == "http://x:1" and not c.has_token
    c.close()
    monkeypatch.setenv("DSHUB_HUB_URL", "x:1")
    with pytest.raises(UsageError, match="http"):
        auth.resolve_client(token="t")
