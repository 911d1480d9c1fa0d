"""The gate: a thin HTTP/1.1 front on every grant's port, in front of rclone's ``serve s3``.

rclone 1.75's S3 server (gofakes3) gets three things wrong that S3 clients depend on:

* a ranged ``GET`` answers ``200`` with a ``Content-Range`` header instead of ``206``;
  every client built on Rust's ``object_store`` (polars, obstore, DataFusion) refuses
  that ("Received non-partial response when range requested");
* a write on a read-only endpoint answers ``500 InternalError`` and never answers
  ``Expect: 100-continue``: the AWS CLI retries for seconds, s3fs waits forever;
* a ``PUT`` of a key ending in ``/`` (a directory marker) creates a *file* with the
  name without the slash, after which writes below it fail.

The gate owns the grant's advertised port and relays every connection to the endpoint
rclone serves on a loopback port of its own. It reads and writes only the **heads** of
requests and responses in Python; bodies move kernel-side with ``splice(2)``
(socket → pipe → socket), so bulk bytes never enter Python (see docs/benchmarks.md for
the measured cost). What it changes:

* ``200`` + ``Content-Range`` to a request with ``Range`` → ``206 Partial Content``;
* on a read grant, anything but ``GET``/``HEAD`` → ``403 AccessDenied`` at once, before
  any body is read (so ``Expect: 100-continue`` clients never send it);
* ``PUT`` of an empty directory marker (``key/``) → ``200`` and nothing stored: folders are
  implied by the keys below them, as on a file system (pyarrow and s3fs create markers);
  a marker with content, a copy onto one, or a multipart upload of one → ``400``.

Request heads are relayed byte for byte (they are signed with SigV4). Revocation closes
the listener and shuts down every relayed connection (:meth:`Gate.close`), so a revoked
grant's transfer stops at once, as it did when rclone's own sockets were cut.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import select
import selectors
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from dshub.util.pipes import PIPE_SIZE, splice_pipe

__all__ = ["Gate", "GateError"]

log = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024  # S3 request heads are a few KiB; a bigger one is refused
_MOVE = getattr(os, "SPLICE_F_MOVE", 1)
_MORE = getattr(os, "SPLICE_F_MORE", 4)
_DRAIN_LIMIT = 64 << 20  # bytes of an unwanted body read and dropped before closing
_DRAIN_SECONDS = 5.0
_READ_METHODS = frozenset({b"GET", b"HEAD"})
_EMPTY_MD5 = hashlib.md5(b"").hexdigest()


class GateError(RuntimeError):
    """The gate could not open a port (the message says which and why)."""


class _Closed(Exception):
    """A peer closed its side, or sent something the gate cannot relay: drop the connection."""


@dataclass
class _Head:
    """A parsed HTTP/1.1 message head; ``raw`` is relayed unchanged unless rewritten."""

    raw: bytes
    first: list[bytes]  # request: method, target, version; response: version, status, reason
    headers: dict[bytes, bytes]  # lower-case names; the last value wins (enough for framing)

    def header(self, name: bytes) -> bytes | None:
        return self.headers.get(name)

    def body_length(self) -> int | None:
        """Content-Length, or None when the body is chunked or absent."""
        value = self.headers.get(b"content-length")
        if value is None:
            return None
        try:
            n = int(value)
        except ValueError:
            raise _Closed("bad Content-Length") from None
        if n < 0:
            raise _Closed("bad Content-Length")
        return n

    def chunked(self) -> bool:
        return b"chunked" in (self.headers.get(b"transfer-encoding") or b"").lower()

    def wants_close(self) -> bool:
        """Connection: close, or HTTP/1.0 (which closes unless asked to keep alive)."""
        conn = (self.headers.get(b"connection") or b"").lower()
        version = self.first[0] if self.first[0].startswith(b"HTTP/") else self.first[-1]
        return b"close" in conn or (version == b"HTTP/1.0" and b"keep-alive" not in conn)


def _parse_head(raw: bytes) -> _Head:
    lines = raw[:-4].split(b"\r\n")
    first = lines[0].split(b" ", 2)
    if len(first) < 2:
        raise _Closed("bad start line")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise _Closed("bad header line")
        headers[name.strip().lower()] = value.strip()
    return _Head(raw, first, headers)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise _Closed("peer closed")
        out += data
    return bytes(out)


def _read_until(sock: socket.socket, marker: bytes, limit: int) -> bytes | None:
    """Consume bytes up to and including ``marker``; None on a clean EOF before any byte.

    Peeks first so that no byte past the marker leaves the kernel: what follows (a body)
    is then spliced straight from the socket.
    """
    buf = b""
    while True:
        data = sock.recv(limit, socket.MSG_PEEK)
        if not data:
            if buf:
                raise _Closed("peer closed mid-head")
            return None
        joined = buf + data
        idx = joined.find(marker, max(0, len(buf) - len(marker) + 1))
        if idx >= 0:
            return buf + _recv_exact(sock, idx + len(marker) - len(buf))
        if len(joined) >= limit:
            raise _Closed("head too long")
        buf += _recv_exact(sock, len(data))


def _read_head(sock: socket.socket) -> _Head | None:
    raw = _read_until(sock, b"\r\n\r\n", _MAX_HEAD)
    return None if raw is None else _parse_head(raw)


class _Pipe:
    """A kernel pipe for ``splice(2)`` (:func:`dshub.util.pipes.splice_pipe`)."""

    def __init__(self) -> None:
        self.r, self.w = splice_pipe()

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _splice(src: socket.socket, dst: socket.socket, n: int | None, pipe: _Pipe) -> None:
    """Move exactly ``n`` bytes (None: until ``src`` ends) from ``src`` to ``dst`` through
    ``pipe``, in the kernel."""
    sfd, dfd = src.fileno(), dst.fileno()
    left = n
    while left is None or left > 0:
        got = os.splice(sfd, pipe.w, PIPE_SIZE if left is None else min(left, PIPE_SIZE), flags=_MOVE)
        if got == 0:
            if left is None:
                return
            raise _Closed("peer closed mid-body")
        if left is not None:
            left -= got
        # SPLICE_F_MORE corks the socket like MSG_MORE: only while more of the body follows,
        # or the last segment would wait for the kernel's cork timeout.
        flags = _MOVE | _MORE if left else _MOVE
        while got > 0:
            put = os.splice(pipe.r, dfd, got, flags=flags)
            if put == 0:
                raise _Closed("peer closed mid-body")
            got -= put


def _relay_chunked(src: socket.socket, dst: socket.socket, pipe: _Pipe) -> None:
    """Relay a ``Transfer-Encoding: chunked`` body: size lines in Python, chunks spliced."""
    while True:
        line = _read_until(src, b"\r\n", 4096)
        if line is None:
            raise _Closed("peer closed mid-body")
        dst.sendall(line)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Closed("bad chunk size") from None
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = _read_until(src, b"\r\n", 4096)
                if trailer is None:
                    raise _Closed("peer closed mid-body")
                dst.sendall(trailer)
                if trailer == b"\r\n":
                    return
        _splice(src, dst, size, pipe)
        dst.sendall(_recv_exact(src, 2))


def _relay_body(head: _Head, src: socket.socket, dst: socket.socket, pipe: _Pipe) -> None:
    """Relay the body ``head`` announces (by Content-Length or chunked)."""
    if head.chunked():
        _relay_chunked(src, dst, pipe)
        return
    n = head.body_length()
    if n:
        _splice(src, dst, n, pipe)


def _s3_error(status: int, reason: str, code: str, message: str, resource: str, *, close: bool) -> bytes:
    request_id = secrets.token_hex(8).upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{_xml(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nx-amz-request-id: {request_id}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    ).encode()
    return head + body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class _Front:
    """One grant's listening socket and the connections it relays."""

    listener: socket.socket
    upstream: tuple[str, int]
    read_only: bool
    owner: str = ""  # the grant the port belongs to
    conns: set[socket.socket] = field(default_factory=set)
    closed: bool = False


class _Refusal(Exception):
    """The gate answers the request itself: ``answer`` is the whole response."""

    def __init__(self, answer: bytes, *, consume_body: bool) -> None:
        super().__init__("refused")
        self.answer = answer
        self.consume_body = consume_body


def _check(front: _Front, req: _Head) -> None:
    """Raise :class:`_Refusal` when the gate must answer ``req`` itself."""
    method = req.first[0]
    target = urlsplit(req.first[1].decode("latin-1"))
    resource = target.path
    if front.read_only and method not in _READ_METHODS:
        raise _Refusal(
            _s3_error(403, "Forbidden", "AccessDenied",
                      "Access Denied: these are read-only dshub credentials", resource, close=True),
            consume_body=False,
        )
    # The object key of a path-style target (``/bucket/key?query``), '' for a bucket.
    _bucket, _, key = unquote(resource).lstrip("/").partition("/")
    if not key.endswith("/"):
        return
    if method == b"PUT" and req.header(b"x-amz-copy-source") is None and "uploadId" not in target.query:
        if (req.body_length() or 0) == 0 and not req.chunked():
            ok = (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                f'ETag: "{_EMPTY_MD5}"\r\nx-amz-request-id: {secrets.token_hex(8).upper()}\r\n\r\n'
            ).encode()
            raise _Refusal(ok, consume_body=True)
    if method in (b"PUT", b"POST"):
        raise _Refusal(
            _s3_error(400, "Bad Request", "InvalidArgument",
                      "dshub stores no directory markers: a key ending in '/' can only be an empty marker",
                      resource, close=True),
            consume_body=False,
        )
    if method == b"DELETE" and not req.chunked() and not req.body_length():
        # markers are never stored; deleting one deletes nothing (S3 answers 204 too)
        raise _Refusal(b"HTTP/1.1 204 No Content\r\n\r\n", consume_body=True)


class Gate:
    """Listening sockets for grants, relayed to rclone endpoints (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fronts: dict[int, _Front] = {}  # by public port
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        # Under self._lock. A loop told to stop by close_all but not yet gone goes on
        # (it re-checks the flag under the lock before leaving); a gone one is replaced.
        self._stopping = False
        if self._thread is None:
            self._thread = threading.Thread(target=self._accept_loop, name="dshub-gate", daemon=True)
            self._thread.start()

    def open(self, host: str, port: int | None, upstream: tuple[str, int], *, read_only: bool,
             owner: str = "") -> int:
        """Listen on ``host:port`` (any free port when None or taken) and relay to ``upstream``.

        Returns the port listened on.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for p in ([port] if port else []) + [0]:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host.strip("[]"), p))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                if p and exc.errno == errno.EADDRINUSE:
                    log.warning("port %s is taken; the endpoint moves to a new port", p)
                    continue
                raise GateError(f"cannot listen on {host}:{p}: {exc.strerror}") from None
            sock.setblocking(False)
            bound = int(sock.getsockname()[1])
            with self._lock:
                self._fronts[bound] = _Front(sock, upstream, read_only, owner)
                self._selector.register(sock, selectors.EVENT_READ, bound)
                self._ensure_thread()
            os.write(self._wake_w, b"x")
            return bound
        raise GateError(f"cannot listen on {host}")  # pragma: no cover - port 0 binds or raises

    def close(self, port: int | None) -> None:
        """Stop listening on ``port`` and shut down every connection relayed from it.
        Idempotent."""
        if port is None:
            return
        with self._lock:
            front = self._fronts.pop(port, None)
            if front is None:
                return
            front.closed = True
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(front.listener)
            front.listener.close()
            conns = list(front.conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def retarget(self, port: int, upstream: tuple[str, int], owner: str) -> bool:
        """Relay new connections of ``owner``'s ``port`` to ``upstream`` (rclone's endpoint
        came back on another port); the public port stays open. False when the gate holds
        no such port for ``owner`` (another grant's port is never taken over)."""
        with self._lock:
            front = self._fronts.get(port)
            if front is None or front.owner != owner:
                return False
            front.upstream = upstream
            return True

    def close_all(self) -> None:
        """Close every port and stop accepting (used when the broker stops)."""
        with self._lock:
            ports = list(self._fronts)
            self._stopping = True
        for p in ports:
            self.close(p)
        os.write(self._wake_w, b"x")

    # --- accepting ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            if self._stopping:
                with self._lock:
                    if self._stopping:  # not re-opened meanwhile
                        self._thread = None
                        return
            for key, _ev in self._selector.select(1.0):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                with self._lock:
                    front = self._fronts.get(key.data)
                if front is None:
                    continue
                try:
                    conn, _addr = front.listener.accept()
                except (BlockingIOError, OSError):
                    continue
                conn.setblocking(True)
                threading.Thread(
                    target=self._serve, args=(front, conn), name="dshub-gate-conn", daemon=True
                ).start()

    # --- one connection -----------------------------------------------------------------

    def _track(self, front: _Front, sock: socket.socket) -> bool:
        with self._lock:
            if front.closed:
                return False
            front.conns.add(sock)
            return True

    def _serve(self, front: _Front, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        pipe = _Pipe()
        try:
            if not self._track(front, client):
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                req = _read_head(client)
                if req is None:
                    return
                try:
                    _check(front, req)
                except _Refusal as refusal:
                    if not self._refuse(client, req, refusal):
                        return
                    continue
                if upstream is not None and _peer_gone(upstream):
                    # rclone closed the idle connection: relaying into it would lose the request
                    with self._lock:
                        front.conns.discard(upstream)
                    upstream.close()
                    upstream = None
                if upstream is None:
                    upstream = socket.create_connection(front.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if not self._track(front, upstream):
                        return
                if not self._exchange(req, client, upstream, pipe):
                    return
        except (_Closed, OSError) as exc:
            log.debug("gate connection ended: %s", exc)
        finally:
            with self._lock:
                front.conns.discard(client)
                if upstream is not None:
                    front.conns.discard(upstream)
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            pipe.close()

    def _refuse(self, client: socket.socket, req: _Head, refusal: _Refusal) -> bool:
        """Answer ``req`` from the gate; True when the connection can carry another request."""
        client.sendall(refusal.answer)
        if refusal.consume_body:  # the request has no body (checked), the connection goes on
            return not req.wants_close()
        # Closing with unread request bytes would reset the connection and could destroy
        # the answer before the client reads it: half-close, then drop what still arrives.
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
            client.settimeout(_DRAIN_SECONDS)
            dropped = 0
            while dropped < _DRAIN_LIMIT:
                data = client.recv(1 << 16)
                if not data:
                    break
                dropped += len(data)
        return False

    def _exchange(self, req: _Head, client: socket.socket, upstream: socket.socket, pipe: _Pipe) -> bool:
        """Relay one request and its response; True when both sides keep the connection."""
        upstream.sendall(req.raw)
        expects = (req.header(b"expect") or b"").lower() == b"100-continue"
        has_body = req.chunked() or bool(req.body_length())
        resp: _Head | None = None
        if expects and has_body:
            # Whoever speaks first: rclone (100 Continue, or a final answer), or the client,
            # which sends its body anyway when no 100 comes soon (botocore waits 1 s). rclone
            # does not always answer before the body arrives: waiting only for it deadlocked.
            readable, _, _ = select.select([upstream, client], [], [])
            if upstream in readable:
                interim = _read_head(upstream)
                if interim is None:
                    raise _Closed("upstream closed")
                if interim.first[1] == b"100":
                    client.sendall(interim.raw)
                else:
                    resp = interim  # a final answer instead: the client may not send the body
        if resp is None:
            if has_body:
                _relay_body(req, client, upstream, pipe)
            resp = _read_head(upstream)
            while resp is not None and resp.first[1].startswith(b"1") and resp.first[1] != b"101":
                client.sendall(resp.raw)  # other interim answers pass through
                resp = _read_head(upstream)
            if resp is None:
                raise _Closed("upstream closed")
            keep = True
        else:
            keep = False
        raw = resp.raw
        if resp.first[1] == b"200" and req.header(b"range") is not None and resp.header(b"content-range"):
            # gofakes3 answers a ranged GET 200 + Content-Range; S3 (and object_store) say 206.
            raw = resp.first[0] + b" 206 Partial Content" + raw[raw.index(b"\r\n"):]
        client.sendall(raw)
        status = resp.first[1]
        no_body = req.first[0] == b"HEAD" or status in (b"204", b"304")
        if not no_body:
            if resp.chunked() or resp.body_length() is not None:
                _relay_body(resp, upstream, client, pipe)
            else:  # length given by EOF
                _splice(upstream, client, None, pipe)
                return False
        return keep and not req.wants_close() and not resp.wants_close()


def _peer_gone(sock: socket.socket) -> bool:
    """True when the peer closed (or reset) an idle connection; never blocks."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


