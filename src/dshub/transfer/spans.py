"""What sending parts and fetching ranges share: a pool of jobs that stops as a whole at
the first failure, the progress count of parts across those jobs, and for parts a span of
a file moved into a pipe in the kernel."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from dshub.transfer.stats import Progress
from dshub.util.pipes import PIPE_SIZE


def splice_span(file_fd: int, pipe_fd: int, offset: int, length: int, *, stop: threading.Event) -> int:
    """Move ``length`` bytes at ``offset`` of a file into a pipe with ``os.splice``: no
    byte passes through Python. Returns the bytes moved (fewer when the reader ended
    early or ``stop`` was set)."""
    pos, end = offset, offset + length
    while pos < end and not stop.is_set():
        n = os.splice(file_fd, pipe_fd, min(PIPE_SIZE, end - pos), offset_src=pos)
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


@dataclass
class PartCounter:
    """Parts and bytes done across every file of one run (shared by the worker threads);
    ``bytes``/``parts`` start at what earlier runs left, the speed counts this run's only."""

    total_bytes: int
    total_parts: int
    bytes: int = 0
    parts: int = 0
    moved_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, length: int, *, moved: bool) -> Progress:
        """Count one finished part (``moved``: this run sent or fetched it, else it was
        kept) and return the progress event to report."""
        with self.lock:
            self.bytes += length
            self.parts += 1
            if moved:
                self.moved_bytes += length
            elapsed = time.monotonic() - self.started
            speed = self.moved_bytes / elapsed if elapsed > 0 else 0.0
            left = self.total_bytes - self.bytes
            return Progress(
                bytes=self.bytes, total_bytes=self.total_bytes, transfers=0, total_transfers=0, errors=0,
                speed=speed, eta=left / speed if speed > 0 else None, elapsed=elapsed,
                parts=self.parts, total_parts=self.total_parts,
            )
