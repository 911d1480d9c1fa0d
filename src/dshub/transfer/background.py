"""Start one piece of work on a thread now and take its result later (``soon``).

A transfer has a few slow, independent waits before rclone can start — rclone's version
probe, the hub starting a read endpoint — that overlap the work in between (a scan, the
manifest streaming) instead of adding to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def soon(work: Callable[[], T], name: str) -> Future[T]:
    """Run ``work()`` on a daemon thread called ``name``; the future's ``result()``
    returns its value or raises what it raised."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as e:  # handed to whoever waits, re-raised there
            future.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
