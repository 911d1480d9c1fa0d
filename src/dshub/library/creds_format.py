"""Render a storage location and its credentials for other tools, and edit rclone.conf.

Pure functions: they return strings or data, the CLI decides where they go. Every format
here contains the secret on purpose: the user asked for it (``dshub creds --format …``,
``dshub rclone-config``). Shell values are quoted with ``shlex.quote``.

rclone notes (see DESIGN.md): scoped credentials cannot list or create buckets, so every
remote sets ``no_check_bucket = true``, and a prefix is used with a trailing slash
(``remote:bucket/prefix/``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path

from dshub.errors import UsageError
from dshub.models import Credentials, Location

DEFAULT_ENV_REMOTE = "dshub"
_REMOTE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+@ -]*$")
_ENV_REMOTE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _iso(dt: datetime) -> str:
    """RFC 3339 in UTC with a 'Z', the form AWS SDKs expect for ``Expiration``."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_remote_name(name: str, *, for_env: bool = False) -> str:
    """Return ``name`` if rclone (and, with ``for_env``, a shell variable name) accepts it."""
    pattern = _ENV_REMOTE_RE if for_env else _REMOTE_RE
    if not pattern.fullmatch(name) or name.endswith(" "):
        what = "letters, digits and '_'" if for_env else "letters, digits, '_', '-', '.', '+', '@'"
        raise UsageError(f"invalid rclone remote name {name!r}: use {what}")
    return name


def bucket_path(loc: Location) -> str:
    """``bucket/prefix/`` with exactly one trailing slash (an empty prefix gives ``bucket/``)."""
    prefix = loc.prefix.strip("/")
    return f"{loc.bucket}/{prefix}/" if prefix else f"{loc.bucket}/"


def remote_path(remote: str, loc: Location) -> str:
    """``remote:bucket/prefix/``, the path to give rclone."""
    return f"{remote}:{bucket_path(loc)}"


def rclone_options(loc: Location, creds: Credentials) -> dict[str, str]:
    """The s3 remote options, in the order rclone's own config writer uses."""
    opts = {
        "type": "s3",
        "provider": loc.provider or "Other",
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key,
    }
    if creds.session_token:
        opts["session_token"] = creds.session_token
    opts["region"] = loc.region or "us-east-1"
    if loc.endpoint:
        opts["endpoint"] = loc.endpoint
    # Scoped keys may not HEAD/CREATE the bucket; without this rclone fails on first write.
    opts["no_check_bucket"] = "true"
    return opts


def sdk_settings(loc: Location) -> dict[str, str]:
    """Settings of the AWS SDKs (and object_store) that an endpoint other than AWS needs.

    Recent AWS SDKs send checksums with every upload by default (``aws-chunked`` bodies
    with a trailer and no ``Content-Length``); rclone's S3 server behind the local broker
    answers such an UploadPart ``411 MissingContentLength`` (pyarrow's ``write_table``).
    ``when_required`` restores the classic requests, which every S3 server takes. Rust's
    object_store (polars, obstore) refuses plain-HTTP endpoints unless allowed.
    Keys are the environment variable names; :func:`format_aws_profile` uses the config
    file spelling.
    """
    if not loc.endpoint:
        return {}
    out = {
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    }
    if loc.endpoint.startswith("http://"):
        out["AWS_ALLOW_HTTP"] = "true"
    return out


def table_rows(loc: Location, creds: Credentials) -> list[tuple[str, str]]:
    """``(label, value)`` rows for a human display of everything needed to connect by hand."""
    return [
        ("endpoint", loc.endpoint or "(AWS default)"),
        ("bucket", loc.bucket),
        ("prefix", bucket_path(loc)[len(loc.bucket) + 1 :]),
        ("region", loc.region),
        ("provider", loc.provider),
        ("access key id", creds.access_key_id),
        ("secret access key", creds.secret_access_key),
        ("session token", creds.session_token or "(none)"),
        ("expires", _iso(creds.expiry)),
    ]


def format_env(loc: Location, creds: Credentials, remote: str = DEFAULT_ENV_REMOTE) -> str:
    """``export`` lines defining rclone remote ``remote`` and the standard ``AWS_*`` variables."""
    validate_remote_name(remote, for_env=True)
    up = remote.upper()
    lines = [f"# dshub credentials, valid until {_iso(creds.expiry)}"]
    for key, value in rclone_options(loc, creds).items():
        lines.append(f"export RCLONE_CONFIG_{up}_{key.upper()}={shlex.quote(value)}")
    lines.append(f"export AWS_ACCESS_KEY_ID={shlex.quote(creds.access_key_id)}")
    lines.append(f"export AWS_SECRET_ACCESS_KEY={shlex.quote(creds.secret_access_key)}")
    if creds.session_token:
        lines.append(f"export AWS_SESSION_TOKEN={shlex.quote(creds.session_token)}")
    else:
        lines.append("unset AWS_SESSION_TOKEN")
    lines.append(f"export AWS_REGION={shlex.quote(loc.region)}")
    lines.append(f"export AWS_DEFAULT_REGION={shlex.quote(loc.region)}")
    if loc.endpoint:
        lines.append(f"export AWS_ENDPOINT_URL={shlex.quote(loc.endpoint)}")
    for key, value in sdk_settings(loc).items():
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(f"# then: rclone ls {remote}:{bucket_path(loc)}")
    return "\n".join(lines) + "\n"


def format_aws_profile(loc: Location, creds: Credentials, profile: str = "dshub") -> str:
    """A ``~/.aws/credentials``-style profile block (``endpoint_url`` is read by recent AWS SDKs)."""
    lines = [
        f"# dshub credentials for s3://{bucket_path(loc)}, valid until {_iso(creds.expiry)}",
        f"[{profile}]",
        f"aws_access_key_id = {creds.access_key_id}",
        f"aws_secret_access_key = {creds.secret_access_key}",
    ]
    if creds.session_token:
        lines.append(f"aws_session_token = {creds.session_token}")
    lines.append(f"region = {loc.region}")
    if loc.endpoint:
        lines.append(f"endpoint_url = {loc.endpoint}")
    settings = sdk_settings(loc)
    for key in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        if key in settings:  # the config-file names of the same settings
            lines.append(f"{key[4:].lower()} = {settings[key]}")
    return "\n".join(lines) + "\n"


def credential_process(creds: Credentials) -> dict[str, object]:
    """The JSON document an AWS SDK's ``credential_process`` expects (Version 1)."""
    doc: dict[str, object] = {
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
    }
    if creds.session_token:
        doc["SessionToken"] = creds.session_token
    doc["Expiration"] = _iso(creds.expiry)
    return doc


def format_credential_process(creds: Credentials) -> str:
    """:func:`credential_process` as one line of JSON."""
    return json.dumps(credential_process(creds)) + "\n"


def format_rclone_section(loc: Location, creds: Credentials, remote: str) -> str:
    """An ``rclone.conf`` section defining ``remote``."""
    validate_remote_name(remote)
    body = "".join(f"{k} = {v}\n" for k, v in rclone_options(loc, creds).items())
    return f"[{remote}]\n{body}"


# --- rclone.conf editing ----------------------------------------------------------------


def default_rclone_config_path() -> Path:
    """Where rclone reads its config: ``$RCLONE_CONFIG``, else what ``rclone config file`` prints.

    rclone uses ``$XDG_CONFIG_HOME/rclone/rclone.conf`` (``~/.config/…``), except when only
    the legacy ``~/.rclone.conf`` exists.
    """
    env = os.environ.get("RCLONE_CONFIG")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    new = base / "rclone" / "rclone.conf"
    legacy = home / ".rclone.conf"
    if not new.exists() and legacy.exists():
        return legacy
    return new


_SECTION_RE = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")


def set_rclone_remote(text: str, remote: str, options: dict[str, str]) -> tuple[str, bool]:
    """Return ``text`` with section ``[remote]`` set to ``options`` and whether it existed.

    Line-based on purpose: configparser would rewrite every other section (comments,
    spacing, key case); here every line outside ``[remote]`` is kept byte for byte.
    """
    validate_remote_name(remote)
    for v in options.values():
        if "\n" in v or "\r" in v:
            raise UsageError("an rclone option value contains a newline; refusing to write it")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    section = [f"[{remote}]\n"] + [f"{k} = {v}\n" for k, v in options.items()]
    start = end = None
    for i, line in enumerate(lines):
        m = _SECTION_RE.match(line)
        if not m:
            continue
        if start is not None:
            end = i
            break
        if m.group("name").strip() == remote:
            start = i
    if start is None:
        sep = ["\n"] if lines and lines[-1].strip() else []
        return "".join(lines + sep + section), False
    if end is None:
        end = len(lines)
    # Keep blank lines / comments between this section and the next one.
    tail_start = end
    while tail_start > start + 1 and (not lines[tail_start - 1].strip() or lines[tail_start - 1].lstrip().startswith(("#", ";"))):
        tail_start -= 1
    trailer = lines[tail_start:end]
    if end < len(lines) and not trailer:
        trailer = ["\n"]
    return "".join(lines[:start] + section + trailer + lines[end:]), True


def write_rclone_remote(path: Path, remote: str, options: dict[str, str]) -> bool:
    """Add or update ``[remote]`` in the rclone config at ``path`` (mode 0600); True if it was updated."""
    from dshub.util.files import write_private

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if text.lstrip().startswith("RCLONE_ENCRYPT_V0:"):
        raise UsageError(
            f"{path} is an encrypted rclone config; dshub cannot edit it: "
            "use `dshub creds REF --format rclone` and add the remote with `rclone config`"
        )
    new, existed = set_rclone_remote(text, remote, options)
    write_private(path, new)
    return existed
