"""Client configuration: where it lives and the named profiles in it.

The config directory is ``$DSHUB_CONFIG_DIR`` or ``platformdirs.user_config_dir("dshub")``.
It holds ``config.toml``::

    default_profile = "default"

    [profiles.default]
    hub_url = "https://hub.example.org"

    [profiles.staging]
    hub_url = "http://localhost:8080"

Only strings are stored, so the file is written by a ten-line writer below and read with
``tomllib`` (no TOML-writing dependency). Tokens are NOT stored here: they go to the
system keyring or, without one, to ``tokens.json`` beside it (see ``dshub.api.auth``).
The directory is created 0700 and files are written 0600 because a token file may live
there.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dshub.errors import UsageError

DEFAULT_PROFILE = "default"
CONFIG_FILE = "config.toml"
_PROFILE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def config_dir() -> Path:
    """The dshub config directory (not created)."""
    env = os.environ.get("DSHUB_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only here: keeps `dshub --version` imports small

    return Path(platformdirs.user_config_dir("dshub", appauthor=False))


def ensure_config_dir() -> Path:
    """Create the config directory with mode 0700 if needed and return it."""
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def validate_profile(name: str) -> str:
    """Return ``name`` if it can be a profile name (letters, digits, '-', '_')."""
    if not _PROFILE_RE.fullmatch(name):
        raise UsageError(f"invalid profile name {name!r}: use letters, digits, '-' or '_'")
    return name


@dataclass
class Profile:
    """One hub login target."""

    name: str
    hub_url: str | None = None


@dataclass
class Config:
    """The contents of ``config.toml``."""

    default_profile: str = DEFAULT_PROFILE
    profiles: dict[str, Profile] = field(default_factory=dict)
    path: Path | None = None

    def profile(self, name: str | None = None) -> Profile:
        """The profile ``name`` (or the default one); an empty profile if it is not stored."""
        name = validate_profile(name or self.default_profile)
        return self.profiles.get(name) or Profile(name=name)

    def set_profile(self, profile: Profile) -> None:
        """Add or replace a profile."""
        self.profiles[validate_profile(profile.name)] = profile


def _toml_str(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string (\uXXXX, \", \\, \n).
    return json.dumps(value, ensure_ascii=True)


def dumps(cfg: Config) -> str:
    """Serialise ``cfg`` as TOML."""
    lines = ["# dshub client configuration (written by `dshub login`).", ""]
    lines.append(f"default_profile = {_toml_str(cfg.default_profile)}")
    for name in sorted(cfg.profiles):
        p = cfg.profiles[name]
        lines += ["", f"[profiles.{name}]"]
        if p.hub_url:
            lines.append(f"hub_url = {_toml_str(p.hub_url)}")
    return "\n".join(lines) + "\n"


def load_config() -> Config:
    """Read ``config.toml``; a missing file is an empty config."""
    path = config_dir() / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config(path=path)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}; fix or delete the file and run `dshub login`") from None
    cfg = Config(path=path, default_profile=str(data.get("default_profile") or DEFAULT_PROFILE))
    for name, body in (data.get("profiles") or {}).items():
        if isinstance(body, dict) and _PROFILE_RE.fullmatch(name):
            url = body.get("hub_url")
            cfg.profiles[name] = Profile(name=name, hub_url=str(url) if url else None)
    return cfg


def save_config(cfg: Config) -> Path:
    """Write ``cfg`` to ``config.toml`` (mode 0600, directory 0700) and return the path."""
    from dshub.util.files import write_private

    path = ensure_config_dir() / CONFIG_FILE
    write_private(path, dumps(cfg))
    cfg.path = path
    return path


def selected_profile(name: str | None = None, cfg: Config | None = None) -> str:
    """Profile to use: the argument, then ``$DSHUB_PROFILE``, then the config's default."""
    if name:
        return validate_profile(name)
    env = os.environ.get("DSHUB_PROFILE")
    if env:
        return validate_profile(env)
    cfg = cfg or load_config()
    return validate_profile(cfg.default_profile)
