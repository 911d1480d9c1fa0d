"""A counting TCP proxy for HTTP/1.1: counts the requests and bytes each tool sends.

Why a proxy and not client-side logs: every tool then is counted the same way, at the
server's door, including requests a tool's own debug log would not show (retries, the
aws CLI's and s5cmd's internal calls). Why TCP-level and not a re-encoding HTTP proxy: the
bytes are passed on untouched, so SigV4 signatures (which cover the ``Host`` header) stay
valid and ``Expect: 100-continue`` works, while the client→server direction is parsed just
enough (request line, headers, ``Content-Length`` or chunked framing) to count requests.
The server→client direction is relayed raw and only its bytes are counted.

It runs only in the counting workloads (C's request counts, F's resent bytes): in timed
workloads every tool talks to the endpoint directly, so Python never sits in a data path
that is being timed.

The proxy listens on ``127.0.0.2:<port>`` in front of ``127.0.0.1:<port>``: the local hub
gives every session its own port and, with ``--s3-advertise-url http://127.0.0.2``,
advertises the session's port on that host, so dshub itself goes through the proxy too.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

_BUF = 1 << 20  # 1 MiB reads: few syscalls per GiB


@dataclass
class Counts:
    """What went through the proxy since the last reset."""

    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # list, head, get, put, post, delete, other
    request_body_bytes: int = 0  # payload the tools sent (uploads, parts, multi-delete bodies)
    upstream_bytes: int = 0  # every byte client → server, headers included
    downstream_bytes: int = 0  # every byte server → client
    connections: int = 0
    sample: list[str] = field(default_factory=list)  # first request lines, for debugging

    def copy(self) -> Counts:
        return Counts(
            self.requests,
            dict(self.by_kind),
            self.request_body_bytes,
            self.upstream_bytes,
            self.downstream_bytes,
            self.connections,
            list(self.sample),
        )


def classify(method: str, target: str) -> str:
    """Name an S3 request by what it does: a listing GET is not an object GET."""
    method = method.upper()
    if method == "GET":
        query = target.partition("?")[2]
        keys = {kv.partition("=")[0] for kv in query.split("&") if kv}
        if keys & {"list-type", "prefix", "delimiter", "marker", "continuation-token"}:
            return "list"
        # A GET of the bucket itself (``/bucket`` or ``/bucket/``) is a listing too.
        path = target.partition("?")[0].strip("/")
        return "list" if "/" not in path else "get"
    return {"HEAD": "head", "PUT": "put", "POST": "post", "DELETE": "delete"}.get(method, "other")


class _Reader:
    """Buffered reads from a socket, forwarding everything read to ``sink``."""

    def __init__(self, f: BinaryIO, sink: socket.socket, stats: CountingProxy) -> None:
        self.f = f
        self.sink = sink
        self.stats = stats

    def line(self) -> bytes:
        data = self.f.readline(65536)
        if data:
            self.sink.sendall(data)
            self.stats._add(upstream=len(data))
        return data

    def body(self, n: int) -> int:
        """Forward exactly ``n`` body bytes (fewer only at EOF); return how many."""
        done = 0
        while done < n:
            data = self.f.read1(min(_BUF, n - done))  # type: ignore[attr-defined]
            if not data:
                break
            self.sink.sendall(data)
            done += len(data)
            # Counted as it streams, not when the body ends: F kills a tool once half of
            # the bytes went through, and 8 parallel 128 MiB PUTs all end at about the same
            # moment (counted at the end, the kill landed when nearly everything was sent).
            self.stats._add(upstream=len(data), body=len(data))
        return done


class CountingProxy:
    """Listen on ``listen``; relay every connection to ``upstream``; count requests."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], sample: int = 20) -> None:
        self.listen = listen
        self.upstream = upstream
        self._sample_max = sample
        self._lock = threading.Lock()
        self._counts = Counts()
        self._sock: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    # --- counting -----------------------------------------------------------------------

    def _add(self, *, upstream: int = 0, body: int = 0, downstream: int = 0) -> None:
        with self._lock:
            self._counts.upstream_bytes += upstream
            self._counts.request_body_bytes += body
            self._counts.downstream_bytes += downstream

    def _request(self, method: str, target: str) -> None:
        kind = classify(method, target)
        with self._lock:
            c = self._counts
            c.requests += 1
            c.by_kind[kind] = c.by_kind.get(kind, 0) + 1
            if len(c.sample) < self._sample_max:
                c.sample.append(f"{method} {target.partition('?')[0][:80]}{'?…' if '?' in target else ''}")

    def snapshot(self) -> Counts:
        with self._lock:
            return self._counts.copy()

    def reset(self) -> Counts:
        """Return the counts so far and start again from zero."""
        with self._lock:
            old, self._counts = self._counts, Counts()
            return old

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> CountingProxy:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(self.listen)
        s.listen(512)
        self.listen = s.getsockname()[:2]
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, name="bench-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        s, self._sock = self._sock, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            conns = list(self._open)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.listen[0]}:{self.listen[1]}"

    # --- relaying -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while self._sock is not None:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        up.settimeout(None)
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._counts.connections += 1
            self._open.update((client, up))
        back = threading.Thread(target=self._downstream, args=(up, client), daemon=True)
        back.start()
        try:
            self._upstream(client, up)
        except OSError:
            pass
        finally:
            try:
                up.shutdown(socket.SHUT_WR)  # the client is done sending; let replies finish
            except OSError:
                pass
            back.join()
            with self._lock:
                self._open.discard(client)
                self._open.discard(up)
            client.close()
            up.close()

    def _downstream(self, up: socket.socket, client: socket.socket) -> None:
        buf = bytearray(_BUF)
        view = memoryview(buf)
        try:
            while True:
                n = up.recv_into(buf)
                if not n:
                    break
                client.sendall(view[:n])
                self._add(downstream=n)
        except OSError:
            pass
        finally:
            try:
                client.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _upstream(self, client: socket.socket, up: socket.socket) -> None:
        """Parse requests client → server one after the other, forwarding as we go."""
        f = client.makefile("rb", buffering=_BUF)
        r = _Reader(f, up, self)
        while True:
            line = r.line()
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue  # stray CRLF between requests is allowed by RFC 9112
            parts = line.decode("latin-1").split()
            method, target = (parts[0], parts[1]) if len(parts) >= 2 else (parts[0] if parts else "?", "")
            length = 0
            chunked = False
            while True:
                h = r.line()
                if not h or h in (b"\r\n", b"\n"):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip() or 0)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            self._request(method, target)
            if not h:
                return
            if chunked:
                self._chunked(r)
            elif length:
                if r.body(length) < length:
                    return

    @staticmethod
    def _chunked(r: _Reader) -> None:
        while True:
            size_line = r.line()
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    t = r.line()
                    if not t or t in (b"\r\n", b"\n"):
                        return
            if r.body(size) < size:
                return
            r.line()  # CRLF after the chunk data
