"""The gate's accept loop across a stop and a quick re-open (real sockets on loopback)."""

from __future__ import annotations

import socket

from dshub.hub.brokers.gate import Gate


def test_a_port_opened_right_after_close_all_still_accepts() -> None:
    """close_all tells the accept loop to stop; an open() before that loop has left must
    keep it (or a new one) accepting, else the new port would take no connection."""
    upstream = socket.create_server(("127.0.0.1", 0))
    upstream.settimeout(10)
    gate = Gate()
    try:
        for _ in range(20):  # the loop is mid-select(1 s) at each re-open
            gate.close_all()
            port = gate.open("127.0.0.1", None, upstream.getsockname(), read_only=True, owner="g")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"HEAD /dshub/x HTTP/1.1\r\nHost: h\r\n\r\n")
                relayed, _ = upstream.accept()  # the gate connected on to rclone's side
                relayed.close()
    finally:
        gate.close_all()
        upstream.close()
