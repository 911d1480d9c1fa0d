"""The hub's data directory: private to the hub's user whatever the umask.

It holds the database (user names, private dataset names, manifests, token hashes), the
broker's state and log, and every stored object. Under the common umask 022 all of it
was world-readable, so any local user could ``cat`` another user's private file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

# Files 0600, directories 0700. The umask is per process, and the hub process (with the
# rclone it launches, which inherits it) writes nothing that others should read.
HUB_UMASK = 0o077


def prepare_data_dir(path: Path, *, set_umask: bool = True) -> Path:
    """Set the process umask to 077, create ``path`` (0700) and tighten it if it exists.

    ``set_umask=False`` (the app's lifespan: an app built inside another program, such as a
    test, must not change that program's umask) keeps the umask; the 0700 directory then
    still keeps other users out of everything below it.
    """
    if set_umask:
        os.umask(HUB_UMASK)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)  # a data dir from before this rule, or made by someone else's mkdir
    return path


class DataDirBusy(RuntimeError):
    """Another hub process serves this data directory."""


def lock_data_dir(path: Path) -> IO[bytes]:
    """Hold ``<path>/hub.lock`` (an exclusive ``flock``) for the life of the returned file.

    Two hubs on one data dir would each supervise an rclone re-arming the same endpoints
    and each sweep the other's sessions. The kernel drops the lock when the process
    exits, however it exits, so a stale lock file never blocks a restart.
    """
    f = open(path / "hub.lock", "ab")  # noqa: SIM115 - kept open by the caller
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise DataDirBusy(
                f"another hub is already serving {path} (it holds {path / 'hub.lock'}); "
                "stop it first or use another --data-dir"
            ) from None
        raise
    return f


def check_port_free(host: str, port: int) -> str | None:
    """None if ``host:port`` can be bound now, else a one-line reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn sets too
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; stop what holds it or pass --port"
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None
