"""What sending parts and fetching ranges share: a pool of jobs that stops as a whole at
the first failure; and for parts, a span of a file moved into a pipe in the kernel."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

_SPLICE = 2**20
#: Linux's default pipe holds 64 KiB: rclone and the splicing thread would wake each other
#: for every 64 KiB. 1 MiB is the default limit for unprivileged processes.
_PIPE_SIZE = 2**20


def span_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) for :func:`splice_span`, with a 1 MiB buffer where the
    system allows it."""
    r, w = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
    except (OSError, ImportError):
        pass  # the default buffer works, with more wake-ups
    return r, w


def splice_span(file_fd: int, pipe_fd: int, offset: int, length: int, *, stop: threading.Event) -> int:
    """Move ``length`` bytes at ``offset`` of a file into a pipe with ``os.splice``: no
    byte passes through Python. Returns the bytes moved (fewer when the reader ended
    early or ``stop`` was set)."""
    pos, end = offset, offset + length
    while pos < end and not stop.is_set():
        n = os.splice(file_fd, pipe_fd, min(_SPLICE, end - pos), offset_src=pos)
        if n == 0:
            break
        pos += n
    return pos - offset


def run_all(jobs: Sequence[Callable[[], None]], workers: int, name: str, stop: threading.Event) -> None:
    """Run ``jobs`` on ``workers`` threads; at the first exception set ``stop`` (running jobs
    end at their next check), cancel the jobs not started, and raise it."""
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(job) for job in jobs]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise
