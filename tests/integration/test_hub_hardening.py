"""Hub hardening against one user hurting others: stalls, local readers, squatted ports.

Real hub processes with the local broker; raw sockets play the misbehaving clients.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.conftest import HubFactory, HubProcess
from tests.integration.slow_s3 import is_cut, open_held_put

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared(module_hub: HubFactory) -> tuple[HubProcess, str, str]:
    h = module_hub()
    return h, h.create_user("alice"), h.create_user("bob")


def _session(c: Any, owner: str, name: str) -> dict[str, Any]:
    r = c.post("/datasets", json={"name": name})
    assert r.status_code in (201, 409), r.text
    r = c.post(f"/datasets/{owner}/{name}/sessions", json={"concurrent": True})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_held_connection_does_not_stall_other_users(shared: tuple[HubProcess, str, str]) -> None:
    h, alice, bob = shared
    with h.client(alice) as ca, h.client(bob) as cb:
        held = [_session(ca, "alice", f"held{i}") for i in range(3)]
        socks = [open_held_put(s, "big.bin") for s in held]
        time.sleep(0.3)  # the PUTs are being read by the endpoints
        aborts: list[float] = []

        def abort(sid: str) -> None:
            t0 = time.monotonic()
            with h.client(alice) as c:
                assert c.delete(f"/sessions/{sid}").status_code == 204
            aborts.append(time.monotonic() - t0)

        threads = [threading.Thread(target=abort, args=(s["id"],)) for s in held]
        for t in threads:
            t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        assert cb.get("/whoami").status_code == 200
        _session(cb, "bob", "unrelated")
        other = time.monotonic() - t0
        for t in threads:
            t.join(30)
        # Before: bob waited ~10 s per held connection (rclone's shutdown deadline under a
        # global lock) and the aborts took 10-30 s.
        assert other < 3, f"another user's session open took {other:.1f} s"
        assert max(aborts) < 3, f"aborts took {aborts}"
        for s in socks:
            assert is_cut(s, 3), "the revoked endpoint kept the connection open"
            s.close()
