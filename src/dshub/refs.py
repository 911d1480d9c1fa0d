"""Dataset references ``OWNER/NAME[@vN][:PATH]`` and the name and path rules.

Pure functions, no network: both the client (parsing what users type) and the hub
(validating what arrives on the wire) use them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from dshub.models import NAME_PATTERN, USER_PATTERN

# Unicode category Cc is exactly C0, DEL and C1; one pattern instead of unicodedata per
# character, which is a visible part of scanning a large tree.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

_NAME_RE = re.compile(NAME_PATTERN)
_USER_RE = re.compile(USER_PATTERN)
_REF_RE = re.compile(
    r"^(?:(?P<owner>[^/@:]+)/)?(?P<name>[^/@:]+)(?:@(?P<version>[^:]+))?(?::(?P<path>.*))?$"
)
# S3 keys are at most 1024 bytes; the dataset and version prefix takes part of that.
MAX_PATH_BYTES = 900


class RefError(ValueError):
    """A reference, name or path that cannot be used; the message says why."""


@dataclass(frozen=True)
class DatasetRef:
    """A parsed reference. ``owner`` None means the current user; ``version`` None = latest.

    ``latest`` is True when the reference said ``@latest`` itself (the same version as no
    ``@``, but a command that takes no version can tell it was given).
    """

    name: str
    owner: str | None = None
    version: int | None = None
    path: str | None = None
    latest: bool = False

    def with_owner(self, owner: str) -> DatasetRef:
        return DatasetRef(
            name=self.name, owner=self.owner or owner, version=self.version, path=self.path, latest=self.latest
        )

    def with_version(self, version: int) -> DatasetRef:
        return DatasetRef(name=self.name, owner=self.owner, version=version, path=self.path)

    def without_version(self) -> DatasetRef:
        return DatasetRef(name=self.name, owner=self.owner, path=self.path)

    def __str__(self) -> str:
        s = f"{self.owner}/{self.name}" if self.owner else self.name
        if self.version is not None:
            s += f"@v{self.version}"
        elif self.latest:
            s += "@latest"
        if self.path:
            s += f":{self.path}"
        return s


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise RefError saying why."""
    if not _NAME_RE.fullmatch(name):
        raise RefError(
            f"invalid dataset name {name!r}: use 1-100 lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


def validate_user(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise RefError."""
    if not _USER_RE.fullmatch(name):
        raise RefError(
            f"invalid user name {name!r}: use 1-39 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def parse_version(text: str) -> int:
    """Parse ``v3`` or ``3`` into 3."""
    m = re.fullmatch(r"v?([1-9][0-9]{0,8})", text.strip())
    if not m:
        raise RefError(f"invalid version {text!r}: expected v1, v2, … or latest")
    return int(m.group(1))


def parse_ref(text: str) -> DatasetRef:
    """Parse ``[OWNER/]NAME[@vN|@latest][:PATH]``; raise RefError with a one-line reason."""
    m = _REF_RE.fullmatch(text.strip())
    if not m:
        raise RefError(f"invalid dataset reference {text!r}: expected [OWNER/]NAME[@vN|@latest][:PATH]")
    owner = m.group("owner")
    if owner is not None:
        validate_user(owner)
    name = validate_name(m.group("name"))
    word = m.group("version")
    latest = word is not None and word.strip() == "latest"
    version = parse_version(word) if word is not None and not latest else None
    path = m.group("path")
    if path is not None:
        path = path.strip("/")
        path = validate_relpath(path) if path else None
    return DatasetRef(name=name, owner=owner, version=version, path=path, latest=latest)


# Compiled once: validate_relpath runs for every file of a scan (10,000s per command).
_DRIVE = re.compile(r"[A-Za-z]:")


def validate_relpath(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path inside a dataset.

    Rejects what could escape a prefix or a download folder: absolute paths, ``..``
    and ``.`` components, empty components, backslashes, NUL and control characters,
    and keys S3 cannot take (over ``MAX_PATH_BYTES`` bytes of UTF-8).
    """
    if not path:
        raise RefError("empty file path")
    if _CONTROL.search(path):
        raise RefError(f"file path {path!r} contains control characters")
    if path.startswith("/") or _DRIVE.match(path):
        raise RefError(f"file path {path!r} is absolute; paths must be relative")
    if "\\" in path:
        raise RefError(f"file path {path!r} contains a backslash")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise RefError(f"file path {path!r} has an empty, '.' or '..' component")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise RefError(
            f"file path {path[:60]!r}… is {len(path.encode('utf-8'))} bytes; "
            f"object keys allow at most {MAX_PATH_BYTES} bytes of path"
        )
    return path


def normalise_name(text: str) -> str:
    """Turn a folder name into a valid dataset name (``My Taxi Data`` → ``my-taxi-data``)."""
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    s = re.sub(r"[^a-z0-9._-]+", "-", s).strip("-._")
    s = s[:100].strip("-._")
    return s or "dataset"
