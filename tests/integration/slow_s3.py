"""A signed S3 PUT whose body is sent slowly: a client holding an endpoint's connection open."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def open_held_put(grant: dict[str, Any], name: str, length: int = 10**8, first: int = 1000) -> socket.socket:
    """Start ``PUT <prefix><name>`` with the grant's keys, send ``first`` bytes of ``length``; return the socket."""
    loc, cred = grant["location"], grant["credentials"]
    endpoint = loc["endpoint"]
    host = urlsplit(endpoint).netloc
    path = f"/{loc['bucket']}/{loc['prefix']}{name}"
    req = AWSRequest(
        method="PUT", url=endpoint + path,
        headers={"Host": host, "Content-Length": str(length), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
    )
    S3SigV4Auth(Credentials(cred["access_key_id"], cred["secret_access_key"]), "s3", loc["region"]).add_auth(req)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
    hostname, port = host.rsplit(":", 1)
    sock = socket.create_connection((hostname, int(port)), timeout=5)
    sock.sendall(head.encode() + b"a" * min(first, length - 1))
    return sock


def is_cut(sock: socket.socket, timeout: float) -> bool:
    """True when the server ends the connection within ``timeout`` seconds (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionError, OSError) as e:
        return not isinstance(e, socket.timeout)
