"""Where the token comes from, and where a login keeps it.

Resolution order (like twine's ``auth.Resolver``), first hit wins:

1. an explicit argument (``dshub login --token``, ``HubClient(token=…)``);
2. ``$DSHUB_TOKEN`` (CI: it wins over any stored login, as ``$DSHUB_HUB_URL`` does for the URL);
3. the system keyring: service ``dshub``, username ``<profile>@<hub url>``;
4. the fallback file ``tokens.json`` (mode 0600) in the config directory, used when there is
   no real keyring (a headless box, a container).

"No real keyring" means keyring chose its ``fail`` backend, an empty chainer, or one of
keyrings.alt's file backends without the user asking for it (those keep plaintext in a
place ``DSHUB_CONFIG_DIR`` does not control, so our own 0600 file is the more honest
choice); setting ``PYTHON_KEYRING_BACKEND`` or a ``keyringrc.cfg`` selects a backend
explicitly. Any keyring error is logged and dshub falls back to the file: a broken D-Bus
must never stop a download. Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dshub.api.config import Config, config_dir, load_config, selected_profile
from dshub.errors import NotLoggedInError
from dshub.util.files import write_private

if TYPE_CHECKING:
    from dshub.api.client import HubClient

log = logging.getLogger(__name__)

SERVICE = "dshub"
TOKEN_FILE = "tokens.json"


def keyring_username(profile: str, hub_url: str) -> str:
    """The keyring username of a login: ``<profile>@<hub url>``."""
    return f"{profile}@{hub_url}"


def token_file() -> Path:
    """Path of the fallback token file."""
    return config_dir() / TOKEN_FILE


@dataclass(frozen=True)
class StoreInfo:
    """Where tokens are kept: ``kind`` is ``keyring`` or ``file``; ``detail`` names it."""

    kind: str
    detail: str


def _explicit_backend() -> bool:
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True
    try:
        from keyring.util import platform_

        return (Path(platform_.config_root()) / "keyringrc.cfg").exists()
    except Exception:  # pragma: no cover - keyring internals moved
        return False


def _keyring_backend() -> Any | None:
    """The usable keyring backend, or None when only the fallback file makes sense."""
    try:
        import keyring
        from keyring.backends import chainer, fail

        kr = keyring.get_keyring()
    except Exception as e:  # keyring itself broken: log, never fatal
        log.warning("keyring unavailable (%s); using the token file", type(e).__name__)
        return None
    if isinstance(kr, fail.Keyring):
        return None
    if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
        return None
    module = type(kr).__module__
    if module.startswith("keyrings.alt") and not _explicit_backend():
        return None
    return kr


def _backend_name(kr: Any) -> str:
    return f"{type(kr).__module__}.{type(kr).__name__}"


class TokenStore:
    """Get, set and delete tokens in the keyring, or in the fallback file."""

    def __init__(self) -> None:
        self._kr_loaded = False
        self._kr_value: Any | None = None

    @property
    def _kr(self) -> Any | None:
        # Finding the keyring backend imports every backend keyring knows (slow): only
        # when the token file cannot answer.
        if not self._kr_loaded:
            self._kr_value = _keyring_backend()
            self._kr_loaded = True
        return self._kr_value

    def info(self) -> StoreInfo:
        """Where a token stored now would go."""
        if self._kr is not None:
            return StoreInfo("keyring", _backend_name(self._kr))
        return StoreInfo("file", str(token_file()))

    # The fallback file: {"<profile>@<hub>": "<token>"}.
    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(token_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, OSError) as e:
            log.warning("cannot read token file %s (%s); ignoring it", token_file(), type(e).__name__)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_file(self, data: dict[str, str]) -> None:
        path = token_file()
        if not data:
            path.unlink(missing_ok=True)
            return
        write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def get(self, profile: str, hub_url: str) -> str | None:
        """The stored token of a login, or None."""
        return self.lookup(profile, hub_url)[0]

    def lookup(self, profile: str, hub_url: str) -> tuple[str | None, str | None]:
        """``(token, "keyring" | "file")`` of a stored login, or ``(None, None)``."""
        user = keyring_username(profile, hub_url)
        # The file first: it holds a login only when the keyring could not take it
        # (``set`` removes the file's copy when the keyring does), so both never disagree.
        token = self._read_file().get(user)
        if token:
            return token, "file"
        if self._kr is not None:
            try:
                token = self._kr.get_password(SERVICE, user)
                if token:
                    return str(token), "keyring"
            except Exception as e:
                log.warning("keyring lookup failed (%s)", type(e).__name__)
        return None, None

    def set(self, profile: str, hub_url: str, token: str) -> StoreInfo:
        """Store a token; return where it went (the CLI tells the user when it is the file)."""
        user = keyring_username(profile, hub_url)
        if self._kr is not None:
            try:
                self._kr.set_password(SERVICE, user, token)
                # A stale copy in the file would shadow nothing but must not linger.
                data = self._read_file()
                if data.pop(user, None) is not None:
                    self._write_file(data)
                return StoreInfo("keyring", _backend_name(self._kr))
            except Exception as e:
                log.warning("keyring refused the token (%s); storing it in the token file", type(e).__name__)
        data = self._read_file()
        data[user] = token
        self._write_file(data)
        return StoreInfo("file", str(token_file()))

    def delete(self, profile: str, hub_url: str) -> bool:
        """Forget a token wherever it is; True if there was one."""
        user = keyring_username(profile, hub_url)
        found = False
        if self._kr is not None:
            try:
                if self._kr.get_password(SERVICE, user):
                    self._kr.delete_password(SERVICE, user)
                    found = True
            except Exception as e:
                log.warning("keyring delete failed (%s)", type(e).__name__)
        data = self._read_file()
        if data.pop(user, None) is not None:
            self._write_file(data)
            found = True
        return found


@dataclass(frozen=True)
class Login:
    """What a command will use to talk to the hub. ``token_source`` names where the token came from."""

    profile: str
    hub_url: str | None
    token: str | None
    token_source: str | None  # "argument", "DSHUB_TOKEN", "keyring", "file" or None
    hub_source: str | None  # "argument", "DSHUB_HUB_URL", "profile" or None


def resolve_login(
    profile: str | None = None,
    *,
    hub_url: str | None = None,
    token: str | None = None,
    cfg: Config | None = None,
) -> Login:
    """Work out hub URL and token: argument → environment → stored login (never raises for a missing token)."""
    from dshub.api.client import normalise_hub_url

    cfg = cfg or load_config()
    name = selected_profile(profile, cfg)
    hub_source: str | None = None
    if hub_url:
        hub_source = "argument"
    elif os.environ.get("DSHUB_HUB_URL"):
        hub_url, hub_source = os.environ["DSHUB_HUB_URL"], "DSHUB_HUB_URL"
    elif cfg.profile(name).hub_url:
        hub_url, hub_source = cfg.profile(name).hub_url, "profile"
    if hub_url:
        hub_url = normalise_hub_url(hub_url)

    source: str | None = None
    if token:
        source = "argument"
    elif os.environ.get("DSHUB_TOKEN"):
        token, source = os.environ["DSHUB_TOKEN"], "DSHUB_TOKEN"
    elif hub_url:
        token, source = TokenStore().lookup(name, hub_url)
    return Login(profile=name, hub_url=hub_url, token=token or None, token_source=source, hub_source=hub_source)


def resolve_client(
    profile: str | None = None,
    *,
    hub_url: str | None = None,
    token: str | None = None,
    require_token: bool = True,
    timeout: float = 30.0,
) -> HubClient:
    """A ``HubClient`` for the selected profile; ``DSHUB_HUB_URL``/``DSHUB_TOKEN`` win over the stored login.

    Raises NotLoggedInError when there is no hub URL, or no token and ``require_token``.
    """
    from dshub.api.client import HubClient

    login = require_login(profile, hub_url=hub_url, token=token, require_token=require_token)
    assert login.hub_url
    return HubClient(login.hub_url, login.token, timeout=timeout)


def require_login(
    profile: str | None = None, *, hub_url: str | None = None, token: str | None = None, require_token: bool = True
) -> Login:
    """:func:`resolve_login`, raising NotLoggedInError without a hub URL (or, ``require_token``, a token)."""
    login = resolve_login(profile, hub_url=hub_url, token=token)
    if not login.hub_url:
        raise NotLoggedInError(f"not logged in (profile {login.profile!r}): no hub URL", code="no_hub")
    if require_token and not login.token:
        raise NotLoggedInError(
            f"not logged in to {login.hub_url} (profile {login.profile!r}): no token", code="no_token"
        )
    return login
