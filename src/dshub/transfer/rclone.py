"""Finding rclone, building its command lines and environment, mapping its exit codes.

Everything here is a pure function of its inputs (apart from ``find_rclone``, which runs
``rclone version`` once per binary, and ``find_rclone_soon``, which does it on a thread), so the argument lists and environments are unit-tested without
a network.

Rules this module enforces:

* The remote is defined **only** by environment variables (``RCLONE_CONFIG_DSHUB_*``):
  secrets never appear in argv, where any user of the machine could read them with ``ps``.
* The user's own rclone config file and AWS credentials never leak in: ``RCLONE_CONFIG``
  points at a path that does not exist (rclone then uses defaults) and every ``AWS_*``
  credential variable is removed, so nothing can shadow the credentials dshub hands over.
* Scoped credentials need ``--s3-no-check-bucket`` (else rclone tries CreateBucket and
  gets 403) and a trailing slash on ``dshub:bucket/prefix/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from dshub.errors import DestinationNotWritableError, DshubError, NoSpaceError, NotFoundError, TransferError
from dshub.models import Credentials, Location
from dshub.transfer.background import soon
from dshub.transfer.failures import Failures, Kind, is_summary
from dshub.util.rclone_bin import RcloneInfo, find_rclone

REMOTE = "dshub"
_ENV_PREFIX = f"RCLONE_CONFIG_{REMOTE.upper()}_"

# Environment variables that could make rclone (through the AWS SDK) pick up credentials
# other than the ones dshub gives it. Removed from every rclone environment.
_AWS_SHADOWING = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
)

# Speed defaults (measured in docs: rclone-facts.md). --s3-no-head skips the HEAD after
# each upload: dshub verifies every object itself afterwards with one listing
# (``lsjson --hash``), so the HEAD would only cost a request per file.
# --s3-disable-checksum is deliberately NOT used: without it rclone sends Content-MD5 on
# single-part uploads and stores the MD5 of multipart uploads in metadata, which is what
# lets the store confirm the manifest's md5 (costs one extra read of large files).
DEFAULT_TRANSFERS = 8
DEFAULT_CHECKERS = 16


def find_rclone_soon() -> Future[RcloneInfo]:
    """Start ``find_rclone`` on a thread and return its future.

    Without a cached answer the version probe runs ``rclone version`` (~0.1 s: a large Go
    binary starting); a transfer starts it first and asks for the result only when it is
    about to run rclone, so the probe overlaps the scan and the hub calls. ``result()``
    returns the ``RcloneInfo`` or raises what ``find_rclone`` raised.
    """
    return soon(find_rclone, "dshub-find-rclone")


# --- environment ------------------------------------------------------------------------


def base_env(parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent environment minus anything that could configure the dshub remote.

    Keeps PATH, HOME, proxies, and ``RCLONE_*`` tuning variables (``RCLONE_S3_UPLOAD_CUTOFF``,
    ``RCLONE_BWLIMIT`` …) so users and tests can still tune rclone; drops AWS credential
    variables and any inherited ``RCLONE_CONFIG_DSHUB_*`` definition.
    """
    env = dict(os.environ if parent is None else parent)
    for key in list(env):
        if key in _AWS_SHADOWING or key.startswith(_ENV_PREFIX):
            del env[key]
        # A DSHUB_TOKEN of the parent is not rclone's business (credential_process gets
        # its own, set explicitly by the caller).
        elif key == "DSHUB_TOKEN":
            del env[key]
    # An empty config: rclone never reads the user's rclone.conf (which could define a
    # [dshub] remote of its own), and /dev/null spares the "config not found" notice.
    env["RCLONE_CONFIG"] = os.devnull
    return env


def remote_env(
    location: Location,
    credentials: Credentials | None,
    *,
    env_auth: bool = False,
) -> dict[str, str]:
    """Environment variables that define the ``dshub:`` remote for one location.

    With ``credentials`` the keys go in ``RCLONE_CONFIG_DSHUB_*`` variables. With
    ``env_auth=True`` (and no credentials) rclone asks the AWS SDK chain instead, which
    the caller points at a profile with ``credential_process`` so credentials refresh
    without restarting rclone.
    """
    env = {
        _ENV_PREFIX + "TYPE": "s3",
        _ENV_PREFIX + "PROVIDER": location.provider or "Other",
        _ENV_PREFIX + "REGION": location.region or "us-east-1",
    }
    if location.endpoint:
        env[_ENV_PREFIX + "ENDPOINT"] = location.endpoint
    if env_auth:
        env[_ENV_PREFIX + "ENV_AUTH"] = "true"
    elif credentials is not None:
        env[_ENV_PREFIX + "ENV_AUTH"] = "false"
        env[_ENV_PREFIX + "ACCESS_KEY_ID"] = credentials.access_key_id
        env[_ENV_PREFIX + "SECRET_ACCESS_KEY"] = credentials.secret_access_key
        if credentials.session_token:
            env[_ENV_PREFIX + "SESSION_TOKEN"] = credentials.session_token
    return env


def remote_path(location: Location, rel: str = "") -> str:
    """``dshub:bucket/prefix/`` (trailing slash: scoped credentials list only below it),
    or ``dshub:bucket/prefix/rel`` for one object."""
    prefix = location.prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"{REMOTE}:{location.bucket}/{prefix}{rel}"


# --- command lines ----------------------------------------------------------------------

JSON_LOG_FLAGS = ("-v", "--use-json-log", "--stats", "1s", "--stats-log-level", "NOTICE")
SCOPED_FLAGS = ("--s3-no-check-bucket",)
# Names are bytes to dshub: "café" in NFC and in NFD are two different files and both
# must round-trip. rclone NFC-normalises names when matching by default, which folds the
# two together (seen: one of them silently missing after download).
EXACT_NAMES = ("--no-unicode-normalization",)


def copy_up_args(
    rclone: str,
    src_dir: str,
    location: Location,
    files_from: str,
    *,
    transfers: int = DEFAULT_TRANSFERS,
    checkers: int = DEFAULT_CHECKERS,
    bwlimit: str | None = None,
    extra: Sequence[str] = (),
    report_md5: bool = False,
) -> list[str]:
    """``rclone copy`` of exactly the files listed in ``files_from`` (relative paths, one
    a line, ``--files-from-raw`` so names are taken verbatim) to the session prefix.

    ``report_md5``: run at debug level, where rclone logs the MD5 it checked for each file
    (``md5 = … OK``, collected by ``StatsParser``): the manifest then needs no second read
    of the files. It costs about four log lines per file, so the engine asks for it only
    when files are large enough for that to be cheaper than hashing them (``upload``).

    ``--no-check-dest``: dshub already listed the destination once (one ListObjects per
    1,000 keys, ``list_args``) and passes only what is missing or different, so rclone
    need not list or HEAD anything again. ``--retries 1``: the engine re-plans from a
    fresh listing and re-runs itself, which never re-sends finished files (rclone's own
    retry would re-send the whole list under --no-check-dest).
    """
    # Symlinks were dealt with by the scan (skipped with a warning); never follow.
    return _copy_args(
        rclone, src_dir, remote_path(location), files_from, ["--s3-no-head", "--skip-links"],
        transfers=transfers, checkers=checkers, bwlimit=bwlimit, extra=extra, debug=report_md5,
    )


def rcat_args(rclone: str, location: Location, rel: str, size: int, *, bwlimit: str | None = None,
               extra: Sequence[str] = ()) -> list[str]:
    """``rclone rcat`` of ``size`` bytes from stdin to one object (a part of a big file).

    ``--size`` and the largest upload cutoff make every part one PUT (S3 takes up to
    5 GiB, the largest part), never a multipart upload: its ETag is then the MD5 of its
    bytes, which a re-run compares with the MD5 in its name, and which the hub checks at
    commit (S3: each part's MD5 against its name; local store: the joined file's BLAKE3).
    ``--ignore-checksum`` spares rclone a second MD5 pass over every part for the same
    check, and ``--s3-no-head`` the HEAD it would need for it.
    """
    args = [
        rclone, "rcat", remote_path(location, rel),
        "--size", str(size),
        "--s3-upload-cutoff", "5G",
        "--ignore-checksum",
        "--retries", "1",
        *_low_level_retries(),
        "--s3-no-head",
        *EXACT_NAMES,
        *SCOPED_FLAGS,
        *JSON_LOG_FLAGS[:2],
    ]
    if bwlimit:
        args += ["--bwlimit", bwlimit]
    args += list(extra)
    return args


def list_args(rclone: str, location: Location, *, hashes: bool = True) -> list[str]:
    """``rclone lsjson`` of every object below the prefix, costing listing requests only.

    ``--fast-list`` = one ListObjectsV2 per 1,000 keys. ``--no-modtime`` matters: rclone
    keeps S3 modification times in object metadata, so printing them would cost one HEAD
    per object (measured: 10,010 requests for 10,000 objects vs 10 without).
    ``--hash`` is free for single-part objects (the ETag in the listing is the MD5);
    multipart objects cost one HEAD each to read rclone's md5 metadata.
    """
    args = [
        rclone,
        "lsjson",
        remote_path(location),
        "-R",
        "--fast-list",
        "--files-only",
        "--no-modtime",
        "--no-mimetype",
        *SCOPED_FLAGS,
    ]
    if hashes:
        args += ["--hash", "--hash-type", "md5"]
    return args


def copy_down_args(
    rclone: str,
    location: Location,
    dest_dir: str,
    files_from: str,
    *,
    transfers: int = DEFAULT_TRANSFERS,
    checkers: int = DEFAULT_CHECKERS,
    bwlimit: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``rclone copy`` of the listed files of a version into ``dest_dir``.

    The engine passes only files that are missing or of a different size locally, so a
    re-run skips finished files (``--no-check-dest``: the local side need not be checked
    again). No ``--no-traverse``: with it rclone would HEAD every listed object instead
    of listing the directories that hold them. ``--s3-no-head-object`` saves a HEAD per GET.
    ``--ignore-checksum``: dshub checks every file it downloads against the manifest
    (BLAKE3) itself; rclone would otherwise hash each file as it writes it, also when the
    store has no MD5 to compare with (the local broker's read endpoints): measured 3.3 →
    2.5 s for 1 GiB in 8 files.
    """
    return _copy_args(
        rclone, remote_path(location), dest_dir, files_from, ["--s3-no-head-object", "--ignore-checksum"],
        transfers=transfers, checkers=checkers, bwlimit=bwlimit, extra=extra,
    )


def _copy_args(
    rclone: str,
    src: str,
    dst: str,
    files_from: str,
    direction_flags: Sequence[str],
    *,
    transfers: int,
    checkers: int,
    bwlimit: str | None,
    extra: Sequence[str],
    debug: bool = False,
) -> list[str]:
    """The ``rclone copy`` both directions share: an exact file list, no destination
    re-check, one rclone attempt (the engine re-plans and re-runs itself), scoped-credential
    and JSON-log flags; ``direction_flags`` are what differs between upload and download."""
    args = [
        rclone, "copy", src, dst,
        "--files-from-raw", files_from,
        "--no-check-dest",
        "--retries", "1",
        *_low_level_retries(),
        "--transfers", str(transfers),
        "--checkers", str(checkers),
        *direction_flags,
        *EXACT_NAMES,
        *SCOPED_FLAGS,
        *(("-vv", *JSON_LOG_FLAGS[1:]) if debug else JSON_LOG_FLAGS),
    ]
    if bwlimit:
        args += ["--bwlimit", bwlimit]
    args += list(extra)
    return args


def _low_level_retries() -> tuple[str, ...]:
    """rclone's retries of each request, unless the user set ``RCLONE_LOW_LEVEL_RETRIES``
    (a flag would win over it). Each retry backs off: against an endpoint that is gone,
    the default ten cost about four minutes per request (measured with rclone 1.75)."""
    return () if os.environ.get("RCLONE_LOW_LEVEL_RETRIES") else ("--low-level-retries", "10")


def cat_args(rclone: str, location: Location, rel: str) -> list[str]:
    """``rclone cat`` of one object to stdout (streams; nothing is written to disk)."""
    # No --s3-no-head-object here: rclone needs the HEAD to know the path is a file;
    # without it `cat` treats the path as an (empty) directory and prints nothing.
    return [rclone, "cat", remote_path(location, rel), *SCOPED_FLAGS]


def stat_args(rclone: str, location: Location, rel: str) -> list[str]:
    """``lsjson --stat`` of one path (one HEAD): is it a file, and how big. ``rclone cat``
    of a missing key prints nothing and succeeds, and of a "directory" prints every file
    below it, so cat checks first."""
    return [
        rclone,
        "lsjson",
        "--stat",
        "--no-modtime",
        "--no-mimetype",
        remote_path(location, rel),
        *SCOPED_FLAGS,
    ]


def delete_args(rclone: str, location: Location, files_from: str) -> list[str]:
    """Delete the listed objects below the prefix (stray objects a commit would refuse)."""
    return [
        rclone,
        "delete",
        remote_path(location),
        "--files-from-raw",
        files_from,
        "--no-traverse",
        *EXACT_NAMES,
        *SCOPED_FLAGS,
    ]


def cleanup_args(rclone: str, location: Location, max_age: str = "1s") -> list[str]:
    """Abort pending multipart uploads below the prefix (left by a killed rclone)."""
    return [rclone, "backend", "cleanup", remote_path(location), "-o", f"max-age={max_age}", *SCOPED_FLAGS]


# --- exit codes -------------------------------------------------------------------------

# rclone's lib/exitcode, grouped by what the user should do next.
RCLONE_EXIT_MEANINGS = {
    0: "success",
    1: "syntax or usage error",
    2: "error not otherwise categorised",
    3: "directory not found",
    4: "file not found",
    5: "temporary error (retries might fix it)",
    6: "less serious error (no retry)",
    7: "fatal error",
    8: "transfer limit exceeded",
    9: "no files transferred",
}

RETRYABLE_EXIT_CODES = frozenset({2, 5, 8})


def error_for_exit(
    code: int, what: str, last_errors: Sequence[str] = (), failures: Failures | None = None
) -> DshubError | None:
    """The dshub error for an rclone exit status (None for success).

    ``what`` names the operation ("upload", "download"); ``last_errors`` are the last
    error lines rclone logged (already free of secrets), ``failures`` all of them grouped
    by kind (``StatsParser.failures``; built from ``last_errors`` when not given). The
    kind decides before the exit status does: rclone exits 1 ("usage error") for any
    failure it has no category for, a full disk or a dead endpoint included.
    """
    if code in (0, 9):
        return None
    if failures is None:
        failures = Failures()
        for line in last_errors:
            (failures.add_summary if is_summary(line) else failures.add)(line)
    kind = failures.worst
    if kind is not None and kind is not Kind.OTHER and (kind is not Kind.USAGE or code == 1):
        return _error_for_kind(kind, what, failures)
    meaning = RCLONE_EXIT_MEANINGS.get(code, f"exit status {code}")
    why = f": {last_errors[-1]}" if last_errors else ""
    if code == 1 and kind is None:
        return DshubError(
            f"rclone rejected the {what} command ({meaning}){why}; this is a dshub bug, please report it"
        )
    if code in (3, 4):
        return NotFoundError(f"{what} failed: {meaning}{why}")
    if code == 7:
        return TransferError(
            f"{what} stopped by a fatal rclone error{why}; fix the cause and run the same command again"
        )
    if code == 1:  # a runtime failure rclone has no category for: worth a retry
        meaning = "rclone error"
    return TransferError(f"{what} failed ({meaning}){why}; run the same command again to resume")


def _error_for_kind(kind: Kind, what: str, failures: Failures) -> DshubError:
    """One error for a group of rclone failures of one kind (see ``failures``)."""
    n = failures.counts.get(kind, 0)
    files = f" ({n} file(s))" if n > 1 else ""
    why = f": {failures.sample(kind)}" if failures.sample(kind) else ""
    if kind is Kind.NO_SPACE and what != "download":  # the store's disk, not ours
        return TransferError(
            f"{what} failed: the storage has no space left{why}; run the same command again once it has"
        )
    if kind is Kind.NO_SPACE:
        return NoSpaceError(
            f"{what} stopped: no space left on the destination disk{files}{why}; "
            "free some space and run the same command again (finished files are kept)"
        )
    if kind in (Kind.READ_ONLY, Kind.PERMISSION):
        if what == "download":
            return DestinationNotWritableError(
                f"{what} stopped: the destination is not writable{files}{why}; "
                "download elsewhere or fix its permissions"
            )
        return DshubError(f"{what} failed: the local file system refused access{files}{why}")
    if kind is Kind.UNREACHABLE:
        return TransferError(
            f"{what} failed: the storage endpoint stopped answering (the hub or the network went away){why}; "
            "run the same command again to resume"
        )
    if kind is Kind.DENIED:
        return TransferError(
            f"{what} failed: storage refused the credentials (expired or revoked){files}{why}; "
            "run the same command again to resume with fresh ones"
        )
    return DshubError(f"rclone rejected the {what} command{why}; this is a dshub bug, please report it")


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """Replace every secret value in ``text`` by ``<hidden>`` (belt and braces for logs)."""
    for s in secrets:
        if s:
            text = text.replace(s, "<hidden>")
    return text
