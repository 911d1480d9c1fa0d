"""The wire contract between the dshub client and hub.

Every request and response body of the hub's REST API is one of these models; the client
parses responses with them and the hub serialises with them, so the generated OpenAPI
document (``docs/openapi.json``) is the single description of the wire. This module
imports nothing else of dshub on purpose: both sides depend on it, it depends on neither.

Naming follows FastAPI's template: ``XCreate`` (request), ``XUpdate`` (partial update),
plain ``X`` (what goes out). Models that carry secrets are named so (``Credentials``)
and never embedded in listings.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

API_PREFIX = "/api/v1"

# A dataset name: lowercase letters, digits, '-', '_', '.'; 1–100 chars; must not be
# '.' or '..' and must start with a letter or digit so it can never look like a flag or
# a relative path component.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
USER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,38}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Visibility(str, Enum):
    private = "private"
    public = "public"


class SessionState(str, Enum):
    open = "open"
    committed = "committed"
    aborted = "aborted"
    expired = "expired"


class Access(str, Enum):
    read = "read"
    write = "write"


# --- errors -----------------------------------------------------------------------------


class ErrorDetail(_Model):
    """One item of a multi-part error, e.g. one file that does not match the manifest."""

    path: str | None = None
    problem: str
    expected: int | str | None = None
    actual: int | str | None = None


class ErrorInfo(_Model):
    code: str = Field(description="Stable machine-readable code, e.g. 'not_found', 'conflict'.")
    message: str = Field(description="One human-readable line saying what went wrong.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(_Model):
    """Body of every 4xx/5xx response of the hub."""

    error: ErrorInfo


# --- users ------------------------------------------------------------------------------


class User(_Model):
    name: str
    is_admin: bool = False
    created_at: datetime | None = None


class HubInfo(_Model):
    """``GET /api/v1/info`` (no auth): what the hub is and the time it thinks it is."""

    version: str
    api_version: str = "1"
    broker: str
    anonymous_read: bool = False
    server_time: datetime


# --- datasets ---------------------------------------------------------------------------


class DatasetCreate(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    license: str | None = Field(default=None, max_length=100, description="SPDX identifier")
    visibility: Visibility = Visibility.private


class DatasetUpdate(_Model):
    """Partial update: fields left out (None) are unchanged."""

    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=50)
    license: str | None = Field(default=None, max_length=100)
    visibility: Visibility | None = None


class VersionSummary(_Model):
    version: int
    size: int
    file_count: int
    created_at: datetime
    uploader: str
    new_bytes: int | None = Field(
        default=None, description="Bytes this version's upload added (the rest was carried from earlier versions)."
    )


class Dataset(_Model):
    id: str
    owner: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    license: str | None = None
    visibility: Visibility = Visibility.private
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    size: int = Field(default=0, description="Bytes in the latest version.")
    file_count: int = Field(default=0, description="Files in the latest version.")

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class DatasetList(_Model):
    items: list[Dataset]
    total: int
    page: int
    page_size: int


class VersionList(_Model):
    items: list[VersionSummary]


# --- files ------------------------------------------------------------------------------


class ManifestEntry(_Model):
    """One file of a version: what the client claims at commit, what the hub records."""

    path: str = Field(description="Relative POSIX path inside the version, no '..', no leading '/'.")
    size: int = Field(ge=0)
    md5: str | None = Field(default=None, description="Hex MD5 of the content, where known.")
    blake3: str | None = Field(
        default=None,
        description="Hex BLAKE3 (256-bit) of the content, where known: what downloads are verified with.",
    )


class FileEntry(_Model):
    """An entry of a paged directory listing: a file, or a directory (``is_dir``)."""

    path: str
    is_dir: bool = False
    size: int = 0
    md5: str | None = None
    blake3: str | None = None
    file_count: int | None = Field(default=None, description="Files below a directory.")


class FileList(_Model):
    items: list[FileEntry]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page.")


class Version(_Model):
    dataset_id: str
    owner: str
    name: str
    version: int
    size: int
    file_count: int
    created_at: datetime
    uploader: str
    prefix: str = Field(description="Object prefix of this version inside the bucket.")
    new_bytes: int | None = Field(
        default=None, description="Bytes this version's upload added (the rest was carried from earlier versions)."
    )


# --- storage location and credentials ---------------------------------------------------


class Location(_Model):
    """Where the bytes are: an S3 endpoint, bucket and key prefix (ends with '/')."""

    endpoint: str | None = Field(default=None, description="S3 endpoint URL; None = AWS default.")
    bucket: str
    prefix: str
    region: str = "us-east-1"
    provider: str = Field(default="Other", description="rclone s3 provider: AWS, Minio, Other.")


class Credentials(_Model):
    """Short-lived S3 credentials. Secret: never logged, never in argv."""

    access_key_id: str
    secret_access_key: str = Field(repr=False)
    session_token: str | None = Field(default=None, repr=False)
    expiry: datetime

    def __repr__(self) -> str:  # pragma: no cover - belt and braces on top of repr=False
        return f"Credentials(access_key_id={self.access_key_id!r}, expiry={self.expiry!r}, <hidden>)"


class SessionOpen(_Model):
    """``POST …/sessions``: open an upload session, or resume one of the caller's.

    Two jobs uploading to one dataset never share a session: ``resume`` returns only a
    session the caller can show is its own — the one named by ``session_id``, or the open
    one opened with the same ``client_key`` (an id the client keeps per machine and
    folder) — and otherwise opens a new one. Without either, ``resume`` returns the open
    session opened without a key (``dshub creds --write`` and other tools).
    """

    resume: bool = Field(default=True, description="Return the caller's open session if there is one.")
    client_key: str | None = Field(
        default=None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="The uploader's own id for this job (machine + folder); resumes only its session.",
    )
    session_id: str | None = Field(
        default=None, max_length=64, description="Resume exactly this open session (a CI retry on a new runner)."
    )
    concurrent: bool = Field(
        default=False, description="Ignored: every job gets a session of its own (kept for older clients)."
    )


class UploadSession(_Model):
    id: str
    dataset_id: str
    owner: str
    name: str
    version: int | None = Field(
        default=None,
        description="The version the session became once committed; None while open "
        "(versions are numbered in commit order).",
    )
    state: SessionState
    created_at: datetime
    expires_at: datetime = Field(description="When the session (not its credentials) expires.")
    location: Location
    credentials: Credentials | None = Field(
        default=None, description="Present on open, resume and refresh only."
    )
    resumed: bool = Field(default=False, description="True when an open session was resumed.")
    client_key: str | None = Field(default=None, description="The key the session was opened with, if any.")
    stored_files: int | None = Field(
        default=None, description="Files in the session's storage so far (in listings only)."
    )
    stored_bytes: int | None = Field(
        default=None, description="Bytes in the session's storage so far (in listings only)."
    )


class SessionList(_Model):
    items: list[UploadSession]


class CommitRequest(_Model):
    files: list[ManifestEntry] = Field(default_factory=list)
    from_staging: bool = Field(
        default=False,
        description="Publish what the staging area holds (objects put there with rclone or any S3 "
        "tool): the hub builds the manifest from the files it finds and hashes; `files` must be empty.",
    )


class StagedObject(_Model):
    path: str
    size: int


class StagedList(_Model):
    """What an open session's staging area holds now (``GET /sessions/{id}/staged``)."""

    items: list[StagedObject]
    files: int
    bytes: int


class CarriedFile(_Model):
    path: str
    size: int
    from_version: int = Field(description="The committed version whose verified copy fills this path.")


class CarryPlan(_Model):
    """``POST /sessions/{id}/carry``: the entries of the manifest to come that the hub
    fills itself from the dataset's committed versions; the uploader sends the rest."""

    carried: list[CarriedFile]
    carried_files: int
    carried_bytes: int


class ReadGrant(_Model):
    """Read-only credentials for one committed version."""

    owner: str
    name: str
    version: int
    location: Location
    credentials: Credentials
