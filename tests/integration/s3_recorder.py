"""A loopback TCP proxy that records every byte both ways, and an offline HTTP/1.1 parser.

Bytes pass through untouched, so SigV4 signatures stay valid. After the run,
:func:`requests_of` splits each connection's client → server bytes into requests.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Conn:
    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # unquoted
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def access_key(self) -> str | None:
        m = re.search(r"Credential=([^/,\s]+)/", self.headers.get("authorization", ""))
        if m:
            return m.group(1)
        cred = self.query.get("X-Amz-Credential", [""])[0]
        return cred.split("/")[0] or None


class RecordingProxy:
    """Listens on 127.0.0.1:<free port>, relays to ``upstream``, records every connection."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.conns: list[Conn] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            conn = Conn()
            with self._lock:
                self.conns.append(conn)
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, up, conn.up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, conn.down), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, log: bytearray) -> None:
        try:
            while data := src.recv(65536):
                log += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass


def requests_of(raw: bytes) -> list[Request]:
    """Parse pipelined HTTP/1.1 requests (Content-Length or chunked bodies)."""
    out: list[Request] = []
    i = 0
    while i < len(raw):
        end = raw.find(b"\r\n\r\n", i)
        if end < 0:
            break
        head = raw[i:end].decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        i = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                eol = raw.index(b"\r\n", i)
                size = int(raw[i:eol].split(b";")[0], 16)
                i = eol + 2
                body += raw[i : i + size]
                i += size + 2
                if size == 0:
                    break
        else:
            n = int(headers.get("content-length", "0") or 0)
            body = bytearray(raw[i : i + n])
            i += n
        u = urlsplit(target)
        out.append(Request(method, unquote(u.path), parse_qs(u.query, keep_blank_values=True), headers, bytes(body)))
    return out
