"""Hub hardening against one user hurting others: stalls, local readers, squatted ports.

Real hub processes with the local broker; raw sockets play the misbehaving clients.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubFactory, HubProcess, free_port, run_rclone
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
        # global lock: 30 s for these three) and the aborts took 10-30 s. The bound leaves
        # room for a loaded machine (~1 s each when idle).
        assert other < 8, f"another user's session open took {other:.1f} s"
        assert max(aborts) < 8, f"aborts took {aborts}"
        for s in socks:
            assert is_cut(s, 3), "the revoked endpoint kept the connection open"
            s.close()


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
                          capture_output=True, timeout=30)


def test_data_dir_is_private_whatever_the_umask(rclone_bin: str, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to read files as user nobody")
    # A world-traversable parent, as a data dir under /srv or a home directory would have.
    base = Path(tempfile.mkdtemp(prefix="dshub-perm-", dir="/tmp"))
    base.chmod(0o755)
    h = HubProcess(base / "hub", [], rclone_bin)
    old = os.umask(0o022)
    try:
        h.start()
        token = h.create_user("alice")
        with h.client(token) as c:
            s = _session(c, "alice", "private-data")
            src = tmp_path / "secret.txt"
            src.write_bytes(b"private bytes\n")
            key = f"{s['location']['bucket']}/{s['location']['prefix']}secret.txt"
            assert run_rclone(rclone_bin, ["copyto", str(src), f"dsh:{key}"], s).returncode == 0
            r = c.post(f"/sessions/{s['id']}/commit", json={"files": [
                {"path": "secret.txt", "size": 14, "md5": hashlib.md5(b"private bytes\n").hexdigest()}]})
            assert r.status_code == 201, r.text
        files = [p for p in h.data_dir.rglob("*") if p.is_file()]
        names = {p.name for p in files}
        assert {"hub.db", "rcd.log", "secret.txt"} <= names, names
        assert stat.S_IMODE(h.data_dir.stat().st_mode) == 0o700
        loose = [f"{p} {stat.S_IMODE(p.stat().st_mode):o}" for p in [*files, *h.data_dir.rglob("*")]
                 if p.stat().st_mode & 0o077]
        assert not loose, loose
        for p in files:
            res = _as_nobody("cat", str(p))
            assert res.returncode != 0 and b"private" not in res.stdout, f"nobody could read {p}"
        assert _as_nobody("ls", str(h.data_dir)).returncode != 0
    finally:
        os.umask(old)
        try:
            h.stop()
        finally:
            h.kill()
            shutil.rmtree(base, ignore_errors=True)


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_session_keeps_its_address_across_renewals_and_never_advertises_a_squatted_one(hub: HubFactory) -> None:
    h = hub("--credential-ttl", "10")
    token = h.create_user("alice")
    with h.client(token) as c:
        s = _session(c, "alice", "moving")
        first = s["location"]["endpoint"]
        # Let the credentials lapse: the endpoint stops, then the client renews.
        deadline = time.monotonic() + 30
        while not _refused(_port(first)):
            assert time.monotonic() < deadline, "the expired endpoint kept listening"
            time.sleep(0.2)
        r = c.post(f"/sessions/{s['id']}/refresh")
        assert r.status_code == 200, r.text
        renewed = r.json()
        # A saved AWS profile or rclone remote names this address: it must stay.
        assert renewed["location"]["endpoint"] == first
        assert renewed["credentials"]["access_key_id"] != s["credentials"]["access_key_id"]

    h.stop()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", _port(first)))
    squatter.listen()
    try:
        h.start()
        with h.client(token) as c:
            got = c.get(f"/sessions/{s['id']}").json()["location"]["endpoint"]
            listed = c.get("/datasets/alice/moving/sessions").json()["items"][0]["location"]["endpoint"]
            r = c.post(f"/sessions/{s['id']}/refresh")
            assert r.status_code == 200, r.text
            after = r.json()["location"]["endpoint"]
        assert got != first and listed == got and after == got, (first, got, listed, after)
        assert not _refused(_port(got))
    finally:
        squatter.close()


def _raw_request(h: HubProcess, head: str, timeout: float = 5) -> bytes:
    """Send only a request's head (its body never comes); return what the hub answers."""
    with socket.create_connection(("127.0.0.1", h.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        sock.settimeout(timeout)
        out = b""
        try:
            while chunk := sock.recv(65536):  # the hub closes after answering
                out += chunk
        except TimeoutError:
            pass
        return out


def test_bodies_are_read_only_after_authentication_and_up_to_a_cap(shared: tuple[HubProcess, str, str]) -> None:
    h, alice, _bob = shared
    path = "/api/v1/sessions/x/commit"
    big = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 88000000\r\n"
    # No token, a wrong token: 401 at once, without waiting for (or parsing) 88 MB.
    for auth in ("", "Authorization: Bearer dshub_0123456789abcdef_wrongwrongwrongwrongwrong\r\n"):
        answer = _raw_request(h, big + auth + "\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    # A valid token and a declared size over the cap: 413 before the body.
    answer = _raw_request(h, big + f"Authorization: Bearer {alice}\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"too_large" in answer, answer[:300]
    # A streamed (chunked) body is cut at the cap too.
    def chunks() -> Any:
        yield b'{"name": "x", "description": "'
        for _ in range(200):
            yield b"a" * 1024
        yield b'"}'

    with h.client(alice) as c:
        r = c.post("/datasets", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "too_large" and "65,536" in r.json()["error"]["message"]
        # Ordinary bodies still pass.
        assert c.post("/datasets", json={"name": "small-body", "description": "ok"}).status_code == 201


def _publish(c: Any, rclone: str, owner: str, name: str, tmp: Path, data: bytes = b"some bytes\n") -> None:
    """Create ``owner/name`` with one committed file ``f.txt``."""
    s = _session(c, owner, name)
    src = tmp / f"{name}.txt"
    src.write_bytes(data)
    key = f"{s['location']['bucket']}/{s['location']['prefix']}f.txt"
    assert run_rclone(rclone, ["copyto", str(src), f"dsh:{key}"], s).returncode == 0
    r = c.post(f"/sessions/{s['id']}/commit",
               json={"files": [{"path": "f.txt", "size": len(data), "md5": hashlib.md5(data).hexdigest()}]})
    assert r.status_code == 201, r.text


def _cat(rclone: str, grant: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
    return run_rclone(rclone, ["cat", f"dsh:{grant['location']['bucket']}/{grant['location']['prefix']}f.txt"],
                      grant, timeout=30)


def _until(check: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_read_access_ends_with_permission(shared: tuple[HubProcess, str, str], rclone_bin: str,
                                          tmp_path: Path) -> None:
    h, alice, bob = shared
    with h.client(alice) as ca, h.client(bob) as cb:
        _publish(ca, rclone_bin, "alice", "turns-private", tmp_path)
        assert ca.patch("/datasets/alice/turns-private", json={"visibility": "public"}).status_code == 200
        grant = cb.post("/datasets/alice/turns-private/versions/latest/credentials").json()
        own = ca.post("/datasets/alice/turns-private/versions/latest/credentials").json()
        assert _cat(rclone_bin, grant).stdout == b"some bytes\n"
        assert ca.patch("/datasets/alice/turns-private", json={"visibility": "private"}).status_code == 200
        # Bob's grant stops at once (it lived on for its TTL); the owner's keeps working.
        assert _refused(_port(grant["location"]["endpoint"]))
        assert _cat(rclone_bin, grant).returncode != 0
        assert _cat(rclone_bin, own).stdout == b"some bytes\n"
        assert cb.post("/datasets/alice/turns-private/versions/latest/credentials").status_code == 404

        # A revoked token takes its read and write grants with it (revoked by another process).
        _publish(ca, rclone_bin, "alice", "stays-public", tmp_path)
        assert ca.patch("/datasets/alice/stays-public", json={"visibility": "public"}).status_code == 200
        second = h.create_token("bob")
        with h.client(second) as c2:
            read = c2.post("/datasets/alice/stays-public/versions/latest/credentials").json()
            assert _cat(rclone_bin, read).returncode == 0
            _session(c2, "bob", "by-second-token")
            write = c2.post("/datasets/bob/by-second-token/sessions", json={"resume": True}).json()
        other = cb.post("/datasets/alice/stays-public/versions/latest/credentials").json()
        assert other["credentials"]["access_key_id"] != read["credentials"]["access_key_id"]
        assert h.revoke_token(second).returncode == 0
        assert _until(lambda: _refused(_port(read["location"]["endpoint"]))), "read grant outlived its token"
        assert _until(lambda: _refused(_port(write["location"]["endpoint"]))), "write grant outlived its token"
        assert _cat(rclone_bin, other).returncode == 0  # bob's other token is not touched


def test_per_user_limits_and_failed_authentication(hub: HubFactory, rclone_bin: str, tmp_path: Path) -> None:
    h = hub("--max-sessions-per-user", "2", "--max-read-grants-per-user", "2", "--max-auth-failures", "5")
    alice = h.create_user("alice")
    with h.client(alice) as c:
        _publish(c, rclone_bin, "alice", "d0", tmp_path)
        _session(c, "alice", "d1")
        _session(c, "alice", "d2")
        c.post("/datasets", json={"name": "d3"})
        r = c.post("/datasets/alice/d3/sessions", json={})
        assert r.status_code == 429, r.text
        assert "limit is 2 per user" in r.json()["error"]["message"]
        tokens = [alice, h.create_token("alice"), h.create_token("alice")]
        codes = []
        for t in tokens:
            with h.client(t) as ct:
                codes.append(ct.post("/datasets/alice/d0/versions/latest/credentials"))
        assert [r.status_code for r in codes] == [200, 200, 429], [r.text for r in codes]
        assert "limit is 2 per user" in codes[2].json()["error"]["message"]
    with h.client("dshub_0123456789abcdef_wrongwrongwrongwrongwrong") as bad:
        assert [bad.get("/whoami").status_code for _ in range(5)] == [401] * 5
        r = bad.get("/whoami")
        assert r.status_code == 429 and r.headers.get("retry-after"), r.text
        assert bad.post("/datasets", json={"name": "x"}).status_code == 429
    with h.client(alice) as c:  # the address is blocked, whatever the token
        assert c.get("/whoami").status_code == 429


def test_restart_answers_before_every_endpoint_is_back(hub: HubFactory) -> None:
    h = hub("--max-sessions-per-user", "0")
    alice = h.create_user("alice")
    n = 50
    with h.client(alice) as c:
        sessions = [_session(c, "alice", f"many{i}") for i in range(n)]
    h.stop()
    h.start()
    # Re-arming takes ~0.15 s an endpoint: a hub that answers only once all are back would
    # show none still down here (measured by the ports, not by a clock: no load flakes it).
    down = sum(_refused(_port(s["location"]["endpoint"])) for s in sessions)
    assert down > 0, "the restarted hub answered only after re-arming every endpoint"
    with h.client(alice) as c:
        last = c.post(f"/sessions/{sessions[-1]['id']}/refresh").json()
    assert last["location"]["endpoint"] == sessions[-1]["location"]["endpoint"]
    assert last["credentials"]["access_key_id"] == sessions[-1]["credentials"]["access_key_id"]
    assert _until(lambda: all(not _refused(_port(s["location"]["endpoint"])) for s in sessions), 60), \
        "the endpoints were not all re-armed in the background"


@pytest.mark.parametrize(
    "field, value",
    [("description", "ok\x1b]8;;http://evil\x07link"), ("description", "nul\x00"), ("description", "csi\x9b31m"),
     ("license", "MIT\x1b[2J"), ("license", "MIT\n"), ("tags", ["osc\x9d"]), ("tags", ["del\x7f"])],
)
def test_control_characters_are_refused(shared: tuple[HubProcess, str, str], field: str, value: Any) -> None:
    h, alice, _bob = shared
    with h.client(alice) as c:
        r = c.post("/datasets", json={"name": "ctl-new", field: value})
        assert r.status_code == 422, r.text
        assert "\x1b" not in r.text and "\\u001b" not in r.text
        c.post("/datasets", json={"name": "ctl-edit"})
        r = c.patch("/datasets/alice/ctl-edit", json={field: value})
        assert r.status_code == 422, r.text
        ok = c.patch("/datasets/alice/ctl-edit", json={"description": "two\nlines\tand a tab"})
        assert ok.status_code == 200, ok.text


def _serve(h: HubProcess, data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    if h.rclone:
        env["DSHUB_RCLONE"] = h.rclone
    return subprocess.run(
        [sys.executable, "-m", "dshub.cli.main", "hub", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, capture_output=True, text=True, timeout=60,
    )


def test_second_hub_on_a_data_dir_or_a_port_in_use_is_refused(shared: tuple[HubProcess, str, str],
                                                              tmp_path: Path) -> None:
    h, _alice, _bob = shared
    same_dir = _serve(h, h.data_dir, free_port())
    assert same_dir.returncode == 1, same_dir.stderr
    assert "another hub is already serving" in same_dir.stderr and len(same_dir.stderr.strip().splitlines()) == 1
    busy = _serve(h, tmp_path / "other", h.port)
    assert busy.returncode == 1, busy.stderr
    assert f"port {h.port}" in busy.stderr and "already in use" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1, busy.stderr
    with h.client() as c:
        assert c.get("/info").status_code == 200  # the first hub is unharmed


def test_concurrent_edits_deletes_and_opens_never_answer_500(shared: tuple[HubProcess, str, str]) -> None:
    h, alice, _bob = shared
    statuses: list[int] = []
    lock = threading.Lock()

    def call(method: str, path: str, **kw: Any) -> None:
        with h.client(alice) as c:
            code = c.request(method, path, **kw).status_code
        with lock:
            statuses.append(code)

    for i in range(12):
        with h.client(alice) as c:
            assert c.post("/datasets", json={"name": f"race{i}"}).status_code == 201
        path = f"/datasets/alice/race{i}"
        threads = [
            threading.Thread(target=call, args=("PATCH", path), kwargs={"json": {"description": f"d{j}"}})
            for j in range(3)
        ] + [threading.Thread(target=call, args=("DELETE", path)),
             threading.Thread(target=call, args=("POST", path + "/sessions"), kwargs={"json": {}})]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert statuses and all(s < 500 for s in statuses), sorted(statuses)


def test_openapi_declares_the_name_rules_the_hub_enforces(shared: tuple[HubProcess, str, str]) -> None:
    h, _alice, _bob = shared
    doc = httpx.get(f"{h.api}/openapi.json").json()
    seen = 0
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path" and p["name"] in ("owner", "name", "v"):
                    assert "pattern" in p["schema"], (path, p)
                    seen += 1
    assert seen >= 11
    # The declared pattern is the rule: a name outside it is refused, one inside is not.
    with h.client(_alice) as c:
        assert c.get("/datasets/alice/UPPER").status_code == 422
        assert c.get("/datasets/alice/no-such.name_1").status_code == 404


def test_what_the_local_broker_verifies_at_commit(shared: tuple[HubProcess, str, str], rclone_bin: str,
                                                  tmp_path: Path) -> None:
    """docs/api.md, "What a commit verifies": sizes and content — a manifest lying about the
    hashes at the right sizes is refused; the true one is published."""
    import hashlib

    import blake3

    h, alice, _bob = shared
    with h.client(alice) as c:
        s = _session(c, "alice", "lying")
        src = tmp_path / "real.bin"
        src.write_bytes(b"real content")
        key = f"{s['location']['bucket']}/{s['location']['prefix']}f.bin"
        assert run_rclone(rclone_bin, ["copyto", str(src), f"dsh:{key}"], s).returncode == 0
        wrong_size = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "f.bin", "size": 13}]})
        assert wrong_size.status_code == 422 and wrong_size.json()["error"]["code"] == "manifest_mismatch"
        lie = {"path": "f.bin", "size": 12, "md5": "0" * 32, "blake3": "f" * 64}
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [lie]})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["problem"] == "blake3 differs", r.text
        truth = {"path": "f.bin", "size": 12, "md5": hashlib.md5(b"real content").hexdigest(),
                 "blake3": blake3.blake3(b"real content").hexdigest()}
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [truth]})
        assert r.status_code == 201, r.text
        entry = c.get("/datasets/alice/lying/versions/1/files").json()["items"][0]
        assert (entry["md5"], entry["blake3"]) == (truth["md5"], truth["blake3"])


def test_large_manifest_commits_as_streamed_ndjson(shared: tuple[HubProcess, str, str]) -> None:
    h, alice, _bob = shared
    n = 20_000
    with h.client(alice) as c:
        s = _session(c, "alice", "many-files")
        # Stand-in for an upload of n small files: written where the local store keeps them.
        root = h.data_dir / "objects" / s["location"]["bucket"] / s["location"]["prefix"]
        for i in range(n):
            d = root / f"d{i % 100}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}.txt").write_bytes(b"x" * (i % 7))
        lines = [json.dumps({"path": f"d{i % 100}/f{i}.txt", "size": i % 7}) for i in range(n)]
        bad = c.post(f"/sessions/{s['id']}/commit/ndjson", content="\n".join([lines[0], '{"path": 3}', *lines[1:]]),
                     headers={"Content-Type": "application/x-ndjson"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["path"] == "line 2", bad.text

        def body() -> Any:  # streamed (chunked), as a client sending a huge manifest would
            for i in range(0, n, 1000):
                yield ("\n".join(lines[i : i + 1000]) + "\n").encode()

        r = c.post(f"/sessions/{s['id']}/commit/ndjson", content=body(), headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        assert r.json()["file_count"] == n
        listing = c.get("/datasets/alice/many-files/versions/1/files", params={"prefix": "d7"}).json()
        assert len(listing["items"]) == n // 100
