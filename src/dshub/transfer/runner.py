"""Running one rclone process: events out, clean stop on Ctrl-C, no orphans after kill -9.

* rclone gets its own process group, so the terminal's Ctrl-C reaches dshub only; dshub
  then stops rclone itself (SIGINT, then SIGKILL after a grace period) and raises
  InterruptedTransfer — the session stays open and a re-run resumes.
* On Linux rclone is started with ``PR_SET_PDEATHSIG``: if dshub dies (kill -9), the
  kernel sends rclone SIGTERM, so no orphan keeps writing into the session while the
  user's re-run starts another rclone.
* A failure that every remaining file would repeat (``failures.STOP_KINDS``) stops
  rclone at once instead of letting it log one error per file.
* ``DSHUB_RCLONE_LOG=FILE`` appends rclone's raw JSON log lines to FILE (they carry no
  secrets: the remote is defined by environment variables) — used by tests to count
  which files each run sent, and handy for bug reports.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO

from dshub.errors import InterruptedTransfer
from dshub.transfer.stats import EventCallback, StatsParser

STOP_GRACE_SECONDS = 10.0

_libc: ctypes.CDLL | None = None
try:  # Loaded in the parent: a forked child must not import or dlopen anything.
    _name = ctypes.util.find_library("c")
    _libc = ctypes.CDLL(_name, use_errno=True) if _name else None
except OSError:  # pragma: no cover - non-glibc platforms
    _libc = None

_PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int) -> None:  # pragma: no cover - runs in the child
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may have died between fork and prctl: then nobody would signal us.
    if os.getppid() != parent_pid:
        os._exit(1)


def popen_rclone(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start rclone detached from the terminal's process group, tied to our lifetime."""
    parent = os.getpid()
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: _child_setup(parent),
    )


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """Ask rclone to stop (SIGINT: it aborts in-flight multipart uploads), then insist."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:  # pragma: no cover - already gone
        pass


def run_rclone(
    argv: Sequence[str],
    env: Mapping[str, str],
    parser: StatsParser,
    on_event: EventCallback,
    *,
    interrupted_message: str = "interrupted; run the same command to resume",
) -> int:
    """Run rclone to completion, feeding each stderr line to ``parser`` and the resulting
    events to ``on_event``. Returns rclone's exit status. Ctrl-C stops rclone and raises
    InterruptedTransfer; a failure every remaining file would repeat stops it too
    (``StatsParser.failures``: the caller maps it to an error)."""
    log_path = os.environ.get("DSHUB_RCLONE_LOG")
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    proc = popen_rclone(argv, env)
    try:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            if log is not None:
                log.write(line)
                log.flush()
            event = parser.feed(line)
            if event is not None:
                on_event(event)
            if parser.failures.should_stop:
                # Every remaining file would fail the same way (full disk, read-only
                # folder, endpoint gone): stop now; the error names the kind.
                stop(proc, grace=2)
                code = proc.wait()
                # Stopped by us: never a success, whatever rclone's status after SIGINT.
                return code if code > 0 and code != 9 else 1
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        raise InterruptedTransfer(interrupted_message) from None
    finally:
        if proc.poll() is None:
            stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()
        if log is not None:
            log.close()


def append_rclone_log(err: bytes) -> None:
    """Append a finished rclone's stderr to ``DSHUB_RCLONE_LOG`` when that is set."""
    log_path = os.environ.get("DSHUB_RCLONE_LOG")
    if log_path and err:
        with open(log_path, "ab") as log:
            log.write(err)


def run_quiet(
    argv: Sequence[str], env: Mapping[str, str], *, timeout: float | None = None
) -> tuple[int, bytes, str]:
    """Run a short rclone command (lsjson, delete, cleanup); returns (status, stdout, stderr)."""
    proc = popen_rclone(argv, env, stdout=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
        append_rclone_log(err)
    except KeyboardInterrupt:
        stop(proc)
        raise InterruptedTransfer("interrupted; run the same command to resume") from None
    except subprocess.TimeoutExpired:
        stop(proc, grace=2)
        return 124, b"", "timed out"
    return proc.returncode, out, err.decode("utf-8", "replace")
