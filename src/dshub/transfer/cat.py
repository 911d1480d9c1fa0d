"""``cat``: one file of a version streamed to a file object, nothing written to disk.

Phases: resolve (which version) → grant (read credentials, and one ``lsjson --stat`` to
know the path is a file: ``rclone cat`` of a missing key prints nothing and succeeds, and
of a "folder" prints every file below it) → stream (``rclone cat``; with a real file
descriptor rclone writes to it directly, so the bytes never pass through Python).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from dshub.errors import InterruptedTransfer, NotFoundError, TransferError, UsageError
from dshub.refs import DatasetRef
from dshub.transfer import rclone as rc
from dshub.transfer.common import static_env
from dshub.transfer.resolve import resolve
from dshub.transfer.runner import popen_rclone, run_quiet, stop

if TYPE_CHECKING:
    from dshub.api.client import HubClient


@dataclass
class Cat:
    """One ``cat`` run: ``run()`` goes resolve → grant → stream and returns the bytes
    written (-1 when rclone wrote to the descriptor itself)."""

    client: HubClient
    ref: DatasetRef
    out: IO[bytes] | None = None
    label: str = ""
    _version: tuple[str, str, int] = ("", "", 0)
    _argv: list[str] = field(default_factory=list)
    _env: dict[str, str] = field(default_factory=dict)

    def run(self) -> int:
        """Print the file; the bytes written (-1 when rclone wrote to the descriptor)."""
        self.resolve()
        self.grant()
        return self.stream()

    def _missing(self, extra: str = "") -> NotFoundError:
        return NotFoundError(f"no file {self.ref.path!r} in {self.label}{extra}")

    def resolve(self) -> None:
        if not self.ref.path:
            raise UsageError(f"{self.ref}: give the file to print as OWNER/NAME[@vN]:PATH")
        owner, name, version = resolve(self.client, self.ref)
        self.label = f"{owner}/{name}@v{version}"
        self._version = (owner, name, version)

    def grant(self) -> None:
        """Read credentials for the version, and the check that the path is one file."""
        info = rc.find_rclone()
        grant = self.client.read_credentials(*self._version)
        self._env = static_env(grant.location, grant.credentials)
        assert self.ref.path is not None
        stat = rc.stat_args(info.path, grant.location, self.ref.path)
        code, so, se = run_quiet(stat, self._env, timeout=120)
        if code in (3, 4):
            raise self._missing()
        if code != 0:
            raise rc.error_for_exit(code, "cat", se.strip().splitlines()[-1:]) or TransferError("cat failed")
        if json.loads(so or b"{}").get("IsDir", True):
            # S3 has no folders: a missing key and a "folder" look alike here.
            raise self._missing(" (cat prints one file; for a folder use download)")
        self._argv = rc.cat_args(info.path, grant.location, self.ref.path)

    def stream(self) -> int:
        """rclone cat into ``out``; a reader that leaves early (``| head``) is not an error."""
        out = self.out if self.out is not None else sys.stdout.buffer
        try:
            fd: int | None = out.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            out.flush()
        proc = popen_rclone(self._argv, self._env, stdout=fd if fd is not None else subprocess.PIPE)
        try:
            written, reader_left = self._pump(proc, out) if fd is None else (-1, False)
            if reader_left:
                return written
            assert proc.stderr is not None
            err = proc.stderr.read().decode("utf-8", "replace")
            code = proc.wait()
        except KeyboardInterrupt:
            stop(proc, grace=2)
            raise InterruptedTransfer("interrupted") from None
        finally:
            if proc.poll() is None:
                stop(proc, grace=2)
        self._check_exit(code, err)
        return written

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], out: IO[bytes]) -> tuple[int, bool]:
        """Copy rclone's stdout to ``out``: (bytes written, whether the reader went away)."""
        assert proc.stdout is not None
        written = 0
        while chunk := proc.stdout.read(1 << 20):
            try:
                out.write(chunk)
            except BrokenPipeError:
                stop(proc, grace=2)
                return written, True
            written += len(chunk)
        return written, False

    def _check_exit(self, code: int, err: str) -> None:
        if code == 0:
            return
        # The reader went away (`dshub cat … | head`): rclone died of SIGPIPE or saw EPIPE.
        if code == -signal.SIGPIPE or "broken pipe" in err.lower():
            return
        if code in (3, 4) or "not found" in err.lower():
            raise self._missing()
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:]
        raise rc.error_for_exit(code, "cat", last) or TransferError("cat failed")


def cat(client: HubClient, ref: DatasetRef, out: IO[bytes] | None = None) -> int:
    """Stream one file of a version (``ref.path``) to ``out`` (default: stdout) without
    writing it to disk. Returns the bytes written when known (else -1). A reader that
    goes away early (``| head``) is not an error."""
    return Cat(client, ref, out).run()
