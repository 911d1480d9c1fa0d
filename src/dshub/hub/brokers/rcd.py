"""A small supervisor and client for one ``rclone rcd`` process.

The local broker runs every S3 endpoint it hands out inside a single ``rclone rcd``
(remote-control daemon) and drives it over rc's HTTP API. This module knows how to start
that process safely and how to talk to it; it knows nothing about grants.

Safety rules it follows, and why:

* rc authentication (user/password) is random per launch and passed through the
  environment (``RCLONE_RC_USER``/``RCLONE_RC_PASS``), never argv: ``serve/list`` returns
  the secrets of every endpoint, and argv is world-readable through ``/proc``.
* rc is bound to ``127.0.0.1`` only.
* On Linux the child gets ``PR_SET_PDEATHSIG=SIGKILL`` so it dies even if the hub is
  ``kill -9``'d. PDEATHSIG fires when the *thread* that forked the child exits, so the
  caller must launch from a thread that lives as long as the child (the local broker
  launches only from its supervisor thread).
* ``serve/stop`` waits (rclone's fixed ~10 s graceful deadline) for the endpoint's open
  connections, and rclone holds one lock across it, so every other ``serve/start`` waits
  too: one client holding a PUT open stalled every user's grants. The listener closes at
  once, so :meth:`RcdProcess.cut_connections` then shuts down the endpoint's remaining
  connections from the hub's side (``pidfd_getfd`` on its own child, Linux 5.6+), and the
  stop completes in milliseconds. Where the kernel refuses, rclone's deadline still ends it.
* rc echoes the request body (``input``) in error replies, which for ``serve/start``
  includes the key pair: :class:`RcError` only ever carries rc's ``error`` string, with
  any secret the caller names scrubbed out.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


_log = logging.getLogger(__name__)
#: Go's soft memory limit for the rcd unless the environment sets GOMEMLIMIT.
RCD_MEMORY_LIMIT = "320MiB"

# pidfd_getfd(2): the same number on every architecture (the unified syscall table).
_SYS_PIDFD_GETFD = 438
# /proc/net/tcp states of a connection the server side still holds open.
_HELD_STATES = {"01", "02", "03", "04", "05", "08", "0B"}  # ESTABLISHED .. CLOSE_WAIT, CLOSING


class BrokerError(RuntimeError):
    """A broker could not do what was asked. The message never contains a secret."""


class RcError(BrokerError):
    """rc answered with an error (``status`` is rc's HTTP status)."""

    def __init__(self, command: str, message: str, status: int) -> None:
        super().__init__(f"rclone rc {command} failed ({status}): {message}")
        self.command = command
        self.rc_message = message
        self.status = status


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual small race applies)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _socket_inodes_on_port(port: int) -> set[str]:
    """Inodes of TCP sockets whose local port is ``port`` and that are not listening."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] in _HELD_STATES:
                found.add(cols[9])
    return found


_getfd_refused = False  # logged once: the kernel or a seccomp filter refuses pidfd_getfd


def _pidfd_getfd(pidfd: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    out = int(libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0))
    if out < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return out


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    # prctl(PR_SET_PDEATHSIG=1, SIGKILL=9): the kernel kills rclone when its parent dies,
    # so a kill -9'd hub cannot leave an rcd (which holds open S3 endpoints) behind.
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


class RcdProcess:
    """One ``rclone rcd`` child: launch, call rc commands, terminate."""

    def __init__(self, *, rclone: str, config_path: Path, log_path: Path) -> None:
        self._rclone = rclone
        self._config_path = config_path
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self.port: int | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def launch(self, timeout: float = 15.0) -> None:
        """Start rcd and wait until rc answers ``rc/noop``. Raises BrokerError on failure."""
        self.terminate()
        last_error = "did not start"
        for _attempt in range(3):  # the free-port race is the only expected failure
            port = free_port()
            user = "dshub-" + secrets.token_hex(4)
            password = secrets.token_urlsafe(24)
            env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
            # Drop inherited RCLONE_* settings: a user's RCLONE_CONFIG_* or flags must not
            # change what the hub serves. Then add rc auth (environment, never argv).
            env["RCLONE_RC_USER"] = user
            env["RCLONE_RC_PASS"] = password
            # Go keeps freed heap resident: after S3 clients' multipart uploads the rcd stayed
            # at 520-600 MiB for a much smaller live heap. A soft limit makes Go collect and
            # hand memory back sooner (it is no cap: a larger live heap still gets its room).
            # The operator's own GOMEMLIMIT wins.
            env.setdefault("GOMEMLIMIT", RCD_MEMORY_LIMIT)
            argv = [
                self._rclone,
                "rcd",
                "--rc-addr",
                f"127.0.0.1:{port}",
                "--config",
                str(self._config_path),
                "--log-level",
                "NOTICE",
            ]
            log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
                    start_new_session=True,  # a Ctrl-C to the hub's terminal is the hub's to handle
                )
            finally:
                log.close()
            self.port = port
            self._client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                auth=(user, password),
                timeout=httpx.Timeout(30.0, connect=2.0),
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    last_error = f"rclone rcd exited with code {self._proc.returncode} (see {self._log_path})"
                    break
                try:
                    self.call("rc/noop", {})
                    return
                except (httpx.HTTPError, RcError):
                    time.sleep(0.05)
            else:
                last_error = f"rclone rcd did not answer within {timeout:.0f} s (see {self._log_path})"
            self.terminate()
        raise BrokerError(last_error)

    def alive(self) -> bool:
        """True while the child process runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's pid, if one was launched."""
        return self._proc.pid if self._proc is not None else None

    def cut_connections(self, port: int) -> int:
        """Shut down rcd's connections on local ``port`` (a stopped endpoint's); return how many.

        ``shutdown(2)`` acts on the socket, not on the descriptor, so shutting down a
        duplicate taken with ``pidfd_getfd`` ends rcd's connection too: its handler sees the
        peer gone and ``serve/stop`` stops waiting. Best effort: 0 when not on Linux or when
        the kernel refuses (then rclone's own deadline applies).
        """
        global _getfd_refused
        proc = self._proc
        if proc is None or proc.poll() is not None or not sys.platform.startswith("linux") or _getfd_refused:
            return 0
        inodes = _socket_inodes_on_port(port)
        if not inodes:
            return 0
        fd_dir = Path(f"/proc/{proc.pid}/fd")
        targets: list[int] = []
        try:
            for entry in fd_dir.iterdir():
                try:
                    link = os.readlink(entry)
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    targets.append(int(entry.name))
        except OSError:
            return 0
        if not targets:
            return 0
        cut = 0
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (OSError, AttributeError):
            return 0
        try:
            for fd in targets:
                try:
                    dup = _pidfd_getfd(pidfd, fd)
                except OSError as exc:
                    if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                        _getfd_refused = True
                        _log.warning("cannot cut open connections of stopped endpoints (%s); "
                                     "rclone's own shutdown deadline applies", exc.strerror)
                        break
                    continue  # the connection closed meanwhile
                try:
                    with socket.socket(fileno=dup) as sock:
                        sock.shutdown(socket.SHUT_RDWR)
                    cut += 1
                except OSError:
                    pass
        finally:
            os.close(pidfd)
        return cut

    def terminate(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps the child."""
        proc, self._proc = self._proc, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    # --- rc -----------------------------------------------------------------------------

    def call(self, command: str, body: dict[str, Any], scrub: tuple[str, ...] = ()) -> dict[str, Any]:
        """POST one rc command; return its JSON reply or raise RcError (secrets scrubbed).

        Transport errors (rcd gone) propagate as ``httpx.HTTPError``.
        """
        if self._client is None:
            raise httpx.ConnectError("rclone rcd is not running")
        resp = self._client.post(f"/{command}", json=body)
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code != 200 or (isinstance(data, dict) and "error" in data):
            message = str(data.get("error", resp.reason_phrase)) if isinstance(data, dict) else "?"
            for s in scrub:
                if s:
                    message = message.replace(s, "<hidden>")
            raise RcError(command, message, resp.status_code)
        return data if isinstance(data, dict) else {}
