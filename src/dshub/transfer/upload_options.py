"""What a user may choose for an upload, checked before anything is sent, and the one
accumulator an upload run fills."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dshub.errors import UsageError
from dshub.models import DatasetUpdate, Visibility
from dshub.transfer import rclone as rc
from dshub.transfer.runner import run_quiet
from dshub.transfer.stats import EventCallback, Warning_
from dshub.util.parts import DEFAULT_PART, MAX_PART, MIN_PART

MAX_TRANSFERS = 256


@dataclass
class UploadOptions:
    """What ``dshub upload`` lets the user choose."""

    description: str | None = None
    tags: Sequence[str] = ()
    visibility: Visibility | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    dry_run: bool = False
    transfers: int = rc.DEFAULT_TRANSFERS
    new_session: bool = False
    #: Resume exactly this open session (a CI retry on a fresh runner); else the job's own.
    session: str | None = None
    #: Remove objects of a session this job did not open (``--session``) that are not in
    #: the folder; without it such an upload stops before sending anything.
    remove_others: bool = False
    bwlimit: str | None = None
    rclone_args: Sequence[str] = ()
    #: Files of at least two parts go in parts of this size (grown where a file would
    #: need more than MAX_PARTS); each finished part survives an interruption.
    part_size: int = DEFAULT_PART

    def check(self) -> None:
        """Raise UsageError for an option that cannot work, without asking rclone or the hub."""
        if not 1 <= self.transfers <= MAX_TRANSFERS:
            raise UsageError(f"--transfers must be between 1 and {MAX_TRANSFERS}, not {self.transfers}")
        check_part_size(self.part_size)
        try:
            self.metadata_update()
        except ValueError as e:  # pydantic's ValidationError is one
            raise UsageError(f"invalid dataset metadata: {_first_problem(e)}") from None

    def metadata_update(self) -> DatasetUpdate | None:
        """The metadata change the options ask for, or None."""
        if self.description is None and not self.tags and self.visibility is None:
            return None
        return DatasetUpdate(
            description=self.description, tags=list(self.tags) if self.tags else None, visibility=self.visibility
        )

    def check_with(self, rclone: str) -> None:
        """Raise UsageError when rclone refuses ``bwlimit`` or ``rclone_args`` (asked only
        when one is given: rclone's parser is the authority on its own syntax)."""
        if self.bwlimit is None and not self.rclone_args:
            return
        flags = [*(["--bwlimit", self.bwlimit] if self.bwlimit is not None else []), *self.rclone_args]
        code, _, err = run_quiet([rclone, "version", *flags], rc.base_env(), timeout=30)
        if code != 0:
            reason = next((line for line in err.splitlines() if line.startswith("Error:")), err.strip()[:200])
            raise UsageError(f"rclone refused the options {' '.join(flags)!r}: {reason.removeprefix('Error: ')}")


def check_part_size(size: int) -> None:
    """Raise UsageError unless ``size`` is a part size S3 takes (5 MiB to 5 GiB)."""
    if not MIN_PART <= size <= MAX_PART:
        raise UsageError(
            f"--part-size must be between 5M (S3's smallest part) and 5G (its largest), not {size} bytes"
        )


def _first_problem(e: ValueError) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    return str(e)


class Tally:
    """The one accumulator of a run: what was sent and skipped, and the warnings given."""

    def __init__(self, on_event: EventCallback) -> None:
        self.on_event = on_event
        self.sent_files = 0
        self.sent_bytes = 0
        self.carried_files = 0
        self.carried_bytes = 0
        self.carried_from: set[int] = set()
        self.skipped_files = 0
        #: Parts of big files sent by this run, and found stored from an earlier one.
        self.sent_parts = 0
        self.kept_parts = 0
        self.warnings: list[str] = []

    def warn(self, message: str, paths: Sequence[str] = ()) -> None:
        """Record a warning and tell the listener."""
        self.warnings.append(message)
        self.on_event(Warning_(message, tuple(paths)))

    def sent(self, files: int, nbytes: int) -> None:
        """Count files rclone finished sending."""
        self.sent_files += files
        self.sent_bytes += nbytes
