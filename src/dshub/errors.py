"""Client-side errors and exit codes.

Library code raises these; only the CLI turns them into a message and an exit status
(one place: ``dshub.cli.main``). Each error knows its exit code and carries a one-line
message that says what to do next. Messages never contain secrets.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: importing the models (pydantic) here would cost every
    # `dshub --version` a few hundred milliseconds.
    from dshub.models import ErrorDetail


class ExitCode(IntEnum):
    """Documented exit codes (README, DESIGN.md)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    TRANSFER = 5
    INTERRUPTED = 130


class DshubError(Exception):
    """Base of every error dshub raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE
    #: The hub's machine-readable error code (``ErrorInfo.code``) when the error came from
    #: the hub, e.g. ``session_open``; None for errors raised on the client side.
    code: str | None = None

    def __init__(
        self, message: str, *, details: list[ErrorDetail] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code


class UsageError(DshubError):
    """Bad input from the user: an invalid name, a missing path, conflicting flags."""

    exit_code = ExitCode.USAGE


class NotLoggedInError(DshubError):
    """No token anywhere (flag, environment, keyring)."""

    exit_code = ExitCode.AUTH


class AuthError(DshubError):
    """The hub rejected the token (401)."""

    exit_code = ExitCode.AUTH


class PermissionDeniedError(DshubError):
    """The hub understood who we are and said no (403)."""

    exit_code = ExitCode.FAILURE


class NotFoundError(DshubError):
    """Dataset, version, session or file not found (or not visible to this user)."""

    exit_code = ExitCode.NOT_FOUND


class PathNotFoundError(NotFoundError, FileNotFoundError):
    """A dataset, version or path that does not exist or is not visible to this user.

    Both a :class:`NotFoundError` (exit code 4 in the CLI) and a ``FileNotFoundError``
    (what pandas, fsspec and ``open()`` users catch).
    """

    def __str__(self) -> str:
        return self.message


class ConflictError(DshubError):
    """The request clashes with the hub's state (409): name taken, session open, …"""

    exit_code = ExitCode.FAILURE


class SessionExpiredError(ConflictError):
    """The upload session expired on the hub (410 ``session_expired``); open a new one."""

    code = "session_expired"


class CommitRefusedError(DshubError):
    """The hub refused a commit because storage does not match the manifest."""

    exit_code = ExitCode.TRANSFER


class HubUnreachableError(DshubError):
    """Could not talk to the hub at all (after retries)."""

    exit_code = ExitCode.FAILURE


class HubResponseError(DshubError):
    """The hub answered with something unexpected (5xx, not JSON, wrong shape)."""

    exit_code = ExitCode.FAILURE


class RcloneNotFoundError(DshubError):
    """No usable rclone binary."""

    exit_code = ExitCode.FAILURE


class TransferError(DshubError):
    """rclone failed in a way a retry may fix."""

    exit_code = ExitCode.TRANSFER


class DestinationError(DshubError):
    """The local destination cannot take the files. Exit 1, not 5: running the same
    command again fails the same way until the user frees space or picks another folder."""

    exit_code = ExitCode.FAILURE


class DestinationNotWritableError(DestinationError):
    """The destination folder (or a folder on the way to it) cannot be written."""

    code = "destination_not_writable"


class NoSpaceError(DestinationError):
    """Not enough free space at the destination for the files to fetch."""

    code = "no_space"


class InterruptedTransfer(DshubError):
    """The user interrupted a transfer; the session is kept and a re-run resumes."""

    exit_code = ExitCode.INTERRUPTED
