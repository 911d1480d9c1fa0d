"""A kernel pipe for ``splice(2)``, shared by the client (parts of big files fed to
rclone) and the hub's gate (request and response bodies between sockets)."""

from __future__ import annotations

import contextlib
import os

#: Linux's default pipe holds 64 KiB: both ends would wake each other every 64 KiB.
#: 1 MiB is the default limit for unprivileged processes.
PIPE_SIZE = 1 << 20


def splice_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) grown to ``PIPE_SIZE`` where the system allows it
    (else the default size works, with more wake-ups)."""
    r, w = os.pipe()
    with contextlib.suppress(OSError, ImportError, AttributeError):
        import fcntl

        fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    return r, w
