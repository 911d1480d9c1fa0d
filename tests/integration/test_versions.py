"""A committed version never changes, and two jobs never share an upload session.

Against a real hub (local broker: `rclone serve s3` endpoints over the hub's disk), real
rclone and the real `dshub` command line.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HubFactory, run_rclone
from tests.integration.slow_s3 import open_held_put
from tests.integration.transfer_util import User, kill_while_uploading, new_user, tree_digest


@pytest.fixture(scope="module")
def alice(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> User:
    return new_user(module_hub(), "alice", tmp_path_factory.mktemp("versions"))


def _folder(root: Path, n: int, size: int, seed: bytes) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        p = root / f"part{i % 3}" / f"f{i:03d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(hashlib.sha256(seed + bytes([i % 256])).digest() * (size // 32))
    return root


def _put(rclone: str, grant: dict[str, Any], rel: str, data: bytes, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    src = tmp / f"src-{hashlib.md5(rel.encode()).hexdigest()}"
    src.write_bytes(data)
    key = f"{grant['location']['bucket']}/{grant['location']['prefix']}{rel}"
    return run_rclone(rclone, ["copyto", str(src), f"dsh:{key}"], grant)


def _finish_held(*socks: Any) -> None:
    """Send the rest of held PUT bodies (after a freeze: the connection may be cut) and close them."""
    for sock in socks:
        try:
            sock.sendall(b"x" * 2000)
            sock.recv(1000)
        except OSError:
            pass  # cut by the freeze: as it should be
        sock.close()


def _version_bytes(alice: User, name: str, v: int, dest: Path) -> dict[bytes, str]:
    r = alice.run("download", f"alice/{name}@v{v}", str(dest), "--json")
    assert r.returncode == 0, r.stderr.decode()
    return tree_digest(dest)


def test_two_jobs_racing_publish_two_whole_versions(alice: User, tmp_path: Path) -> None:
    """Two uploads of different folders (same paths, different bytes) to one dataset at
    once: each gets its own session, both publish, neither hangs, and each version holds
    exactly one folder's bytes."""
    a = _folder(tmp_path / "job-a", 60, 64 * 1024, b"a")
    b = _folder(tmp_path / "job-b", 60, 64 * 1024, b"b")
    alice.run_json("upload", str(_folder(tmp_path / "seed", 1, 32, b"s")), "race")  # the dataset exists
    procs = [alice.popen("upload", str(src), "race", "--json") for src in (a, b)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    import json

    results = [json.loads(out) for out, _err in outs]
    assert sorted(r["version"] for r in results) == [2, 3]
    assert results[0]["session_id"] != results[1]["session_id"]
    for src, res in zip((a, b), results):
        got = _version_bytes(alice, "race", res["version"], tmp_path / f"down-{res['version']}")
        assert got == tree_digest(src)


def test_a_write_held_open_across_commit_never_reaches_the_version(
    alice: User, rclone_bin: str, tmp_path: Path
) -> None:
    """A signed PUT started before the commit and finished after it cannot add a file to
    the version nor change one: readers get exactly the manifest's bytes."""
    with alice.api() as c:
        assert c.post("/datasets", json={"name": "held"}).status_code == 201
        s = c.post("/datasets/alice/held/sessions", json={}).json()
        data = b"twelve bytes"
        assert _put(rclone_bin, s, "f.txt", data, tmp_path).returncode == 0
        late = open_held_put(s, "late.bin", length=2000, first=10)
        again = open_held_put(s, "f.txt", length=len(data), first=5)  # a rewrite of f.txt, same size
        manifest = {"files": [{"path": "f.txt", "size": len(data), "md5": hashlib.md5(data).hexdigest()}]}
        r = c.post(f"/sessions/{s['id']}/commit", json=manifest)
        _finish_held(late, again)  # the rest of the bodies, after the commit answered
        assert r.status_code == 201, r.text
        v = r.json()
        g = c.post("/datasets/alice/held/versions/1/credentials").json()
    listed = run_rclone(rclone_bin, ["lsf", "-R", f"dsh:{g['location']['bucket']}/{v['prefix']}"], g)
    assert listed.stdout.decode().split() == ["f.txt"]
    got = run_rclone(rclone_bin, ["cat", f"dsh:{g['location']['bucket']}/{v['prefix']}f.txt"], g)
    assert got.stdout == data
    on_disk = alice.hub.data_dir / "objects" / "dshub" / v["prefix"]
    assert sorted(p.name for p in on_disk.rglob("*") if p.is_file()) == ["f.txt"]
    assert (on_disk / "f.txt").read_bytes() == data


def test_commit_checks_content_not_only_sizes(alice: User, rclone_bin: str, tmp_path: Path) -> None:
    """Bytes changed in staging behind the uploader's back (same size), or a manifest
    claiming other hashes at the right sizes: refused, nothing published, session kept."""
    with alice.api() as c:
        assert c.post("/datasets", json={"name": "tamper"}).status_code == 201
        s = c.post("/datasets/alice/tamper/sessions", json={}).json()
        data = b"the real bytes"
        assert _put(rclone_bin, s, "a.txt", data, tmp_path).returncode == 0
        import blake3

        good = {"path": "a.txt", "size": len(data), "md5": hashlib.md5(data).hexdigest(),
                "blake3": blake3.blake3(data).hexdigest()}
        lying = dict(good, md5="0" * 32, blake3="f" * 64)
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [lying]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "manifest_mismatch", r.text
        assert r.json()["error"]["details"][0]["problem"] == "blake3 differs"
        # Someone rewrites the staged object with other bytes of the same size.
        staged = alice.hub.data_dir / "objects" / "dshub" / s["location"]["prefix"] / "a.txt"
        staged.write_bytes(b"X" * len(data))
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [good]})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "a.txt", r.text
        only_md5 = {k: v for k, v in good.items() if k != "blake3"}
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [only_md5]})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["problem"] == "md5 differs", r.text
        assert c.get("/datasets/alice/tamper").json()["latest_version"] is None
        assert c.get(f"/sessions/{s['id']}").json()["state"] == "open"
        # The session is kept: with the right bytes back, the same manifest publishes.
        staged.write_bytes(data)
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [good]})
        assert r.status_code == 201, r.text
        # A manifest without hashes gets the hub's own (it hashed the bytes it published).
        listing = c.get("/datasets/alice/tamper/versions/1/files").json()["items"]
        assert listing[0]["md5"] == good["md5"]


def test_commit_without_hashes_records_the_hubs(alice: User, rclone_bin: str, tmp_path: Path) -> None:
    """Objects put there by another tool and committed with sizes only: the version
    records the MD5 and BLAKE3 the hub computed (downloads can check them)."""
    import blake3

    with alice.api() as c:
        assert c.post("/datasets", json={"name": "nohash"}).status_code == 201
        s = c.post("/datasets/alice/nohash/sessions", json={}).json()
        data = b"sizes only"
        assert _put(rclone_bin, s, "d/x.bin", data, tmp_path).returncode == 0
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "d/x.bin", "size": len(data)}]})
        assert r.status_code == 201, r.text
        m = c.get("/datasets/alice/nohash/versions/1/manifest").text.strip()
    assert hashlib.md5(data).hexdigest() in m and blake3.blake3(data).hexdigest() in m


def test_a_frozen_staging_area_is_recovered_after_a_hub_crash(
    hub: HubFactory, rclone_bin: str, tmp_path: Path
) -> None:
    """A hub killed while a commit had frozen the staging area (renamed aside) gives the
    files back to the still-open session when it is resumed."""
    h = hub()
    tok = h.create_user("carl")
    with h.client(tok) as c:
        assert c.post("/datasets", json={"name": "crash"}).status_code == 201
        s = c.post("/datasets/carl/crash/sessions", json={}).json()
        assert _put(rclone_bin, s, "a.txt", b"a", tmp_path).returncode == 0
    h.kill()
    staging = h.data_dir / "objects" / "dshub" / s["location"]["prefix"]
    sealing = staging.parent.parent / "sealing" / staging.name
    sealing.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, sealing)  # where the commit had put it when the hub died
    h.restart()
    with h.client(tok) as c:
        again = c.post(f"/sessions/{s['id']}/refresh")
        assert again.status_code == 200, again.text
        assert (staging / "a.txt").read_bytes() == b"a" and not sealing.exists()
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 1}]})
        assert r.status_code == 201, r.text


def test_same_folder_resumes_its_own_session_and_session_flag_names_one(alice: User, tmp_path: Path) -> None:
    """A re-run of the same folder on the same machine resumes its own session; another
    folder opens its own; `--session ID` resumes a named one (a CI retry elsewhere)."""
    src = _folder(tmp_path / "own", 8, 200_000, b"o")
    kill_while_uploading(alice, "upload", str(src), "own", "--bwlimit", "400k", "--transfers", "1", after=1.5)
    with alice.api() as c:
        open_ = c.get("/datasets/alice/own/sessions").json()["items"]
    assert len(open_) == 1
    other = _folder(tmp_path / "other", 2, 1000, b"x")
    res = alice.run_json("upload", str(other), "own")
    assert res["session_id"] != open_[0]["id"] and res["resumed"] is False
    # A fresh machine (empty cache) names the session to resume it.
    fresh = alice.env(DSHUB_CACHE_DIR=str(tmp_path / "fresh-cache"))
    r = alice.run("upload", str(src), "own", "--session", open_[0]["id"], "--json", env=fresh)
    assert r.returncode == 0, r.stderr.decode()
    import json

    res = json.loads(r.stdout)
    assert res["session_id"] == open_[0]["id"] and res["resumed"] is True and res["skipped_files"] >= 1
    assert _version_bytes(alice, "own", res["version"], tmp_path / "own-down") == tree_digest(src)


def test_parallel_commits_of_one_dataset_number_in_commit_order(alice: User, rclone_bin: str, tmp_path: Path) -> None:
    """Sessions opened in one order and committed in another get numbers in commit order,
    without gaps or duplicates, even when their commits run at the same moment."""
    with alice.api() as c:
        assert c.post("/datasets", json={"name": "order"}).status_code == 201
        sessions = [c.post("/datasets/alice/order/sessions", json={"resume": False}).json() for _ in range(4)]
        for i, s in enumerate(sessions):
            assert _put(rclone_bin, s, "n.txt", str(i).encode(), tmp_path).returncode == 0
    got: dict[int, int] = {}

    def commit(i: int) -> None:
        with alice.api() as c:
            r = c.post(f"/sessions/{sessions[i]['id']}/commit", json={"files": [{"path": "n.txt", "size": 1}]})
            assert r.status_code == 201, r.text
            got[i] = r.json()["version"]

    threads = [threading.Thread(target=commit, args=(i,)) for i in (3, 2, 1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got.values()) == [1, 2, 3, 4]
    with alice.api() as c:
        for i, v in got.items():
            g = c.post(f"/datasets/alice/order/versions/{v}/credentials").json()
            out = run_rclone(rclone_bin, ["cat", f"dsh:{g['location']['bucket']}/{g['location']['prefix']}n.txt"], g)
            assert out.stdout == str(i).encode()


def _stored_bytes(root: Path) -> int:
    """Bytes the hub's store holds on disk, each inode once (hard links share bytes)."""
    seen: set[int] = set()
    total = 0
    for p in root.rglob("*"):
        st = p.lstat()
        if p.is_file() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_size
    return total


def test_a_new_version_sends_only_what_changed(alice: User, tmp_path: Path) -> None:
    """v2 of a folder in which one file was rewritten, one added, one renamed and one
    deleted: only the rewritten and the new file go over the wire; the hub fills the rest
    from v1 (renames included) without copying bytes; v2 reads back whole; deleting
    nothing of v1."""
    src = _folder(tmp_path / "carry", 20, 50_000, b"c")
    v1 = alice.run_json("upload", str(src), "carry")
    assert v1["carried_files"] == 0 and v1["sent_files"] == 20
    store = alice.hub.data_dir / "objects"
    before = _stored_bytes(store)
    files = sorted(p for p in src.rglob("*.bin"))
    files[0].write_bytes(os.urandom(50_000))          # rewritten
    files[1].unlink()                                  # deleted
    files[2].rename(files[2].with_name("renamed.bin")) # renamed: same bytes, new path
    (src / "new.bin").write_bytes(os.urandom(30_000))  # added
    v2 = alice.run_json("upload", str(src), "carry")
    assert v2["version"] == 2
    assert (v2["sent_files"], v2["carried_files"]) == (2, 18), v2
    assert v2["sent_bytes"] == 80_000
    assert v2["carried_bytes"] == sum(p.stat().st_size for p in src.rglob("*.bin")) - 80_000
    grew = _stored_bytes(store) - before
    assert grew <= 1.05 * 80_000, grew
    assert _version_bytes(alice, "carry", 2, tmp_path / "v2") == tree_digest(src)
    with alice.api() as c:
        versions = {v["version"]: v for v in c.get("/datasets/alice/carry/versions").json()["items"]}
    assert versions[2]["new_bytes"] == 80_000 and versions[1]["new_bytes"] == v1["bytes"]
    # A re-run resumes nothing and carries nothing twice: it is up to date.
    assert alice.run_json("upload", str(src), "carry")["status"] == "up_to_date"


def test_carrying_never_leaves_the_dataset(module_hub: HubFactory, alice: User, rclone_bin: str, tmp_path: Path) -> None:
    """A manifest naming the size and hashes of another user's file, or of content the
    dataset never had: nothing is carried, the file must be uploaded."""
    import blake3

    bob = new_user(alice.hub, "bob", tmp_path)
    secret = b"bob's private bytes"
    bob.run_json("upload", str(_write_one(tmp_path / "bob", "s.txt", secret)), "private")
    claim = {"path": "s.txt", "size": len(secret), "md5": hashlib.md5(secret).hexdigest(),
             "blake3": blake3.blake3(secret).hexdigest()}
    never = {"path": "n.txt", "size": 5, "md5": "1" * 32, "blake3": "2" * 64}
    with alice.api() as c:
        assert c.post("/datasets", json={"name": "thief"}).status_code == 201
        s = c.post("/datasets/alice/thief/sessions", json={}).json()
        plan = c.post(f"/sessions/{s['id']}/carry", json={"files": [claim, never]})
        assert plan.status_code == 200, plan.text
        assert plan.json()["carried"] == [] and plan.json()["carried_bytes"] == 0
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [claim]})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["problem"] == "missing in storage"


def _write_one(root: Path, name: str, data: bytes) -> Path:
    root.mkdir(parents=True)
    (root / name).write_bytes(data)
    return root


def test_a_session_filled_by_another_tool_is_published_as_it_stands(
    alice: User, rclone_bin: str, tmp_path: Path
) -> None:
    """Objects put into a session with raw rclone (no manifest): the staging listing shows
    them; a commit `from_staging` publishes exactly them with the hub's own hashes."""
    import blake3

    with alice.api() as c:
        assert c.post("/datasets", json={"name": "bytool"}).status_code == 201
        s = c.post("/datasets/alice/bytool/sessions", json={}).json()
        files = {"x/a.csv": b"a,b\n1,2\n", "b.bin": os.urandom(3000)}
        for rel, data in files.items():
            assert _put(rclone_bin, s, rel, data, tmp_path).returncode == 0
        staged = c.get(f"/sessions/{s['id']}/staged").json()
        assert sorted((o["path"], o["size"]) for o in staged["items"]) == sorted((p, len(d)) for p, d in files.items())
        assert staged["files"] == 2 and staged["bytes"] == sum(len(d) for d in files.values())
        r = c.post(f"/sessions/{s['id']}/commit", json={"from_staging": True, "files": [{"path": "b.bin", "size": 1}]})
        assert r.status_code == 422  # one or the other
        r = c.post(f"/sessions/{s['id']}/commit", json={"from_staging": True})
        assert r.status_code == 201 and r.json()["file_count"] == 2, r.text
        entries = [e for e in c.get("/datasets/alice/bytool/versions/1/manifest").text.splitlines()]
    import json

    got = {e["path"]: (e["md5"], e["blake3"]) for e in map(json.loads, entries)}
    assert got == {p: (hashlib.md5(d).hexdigest(), blake3.blake3(d).hexdigest()) for p, d in files.items()}


def test_two_sessions_carry_from_the_same_source(alice: User, rclone_bin: str, tmp_path: Path) -> None:
    data = b"shared bytes" * 100
    with alice.api() as c:
        assert c.post("/datasets", json={"name": "twocarry"}).status_code == 201
        s1 = c.post("/datasets/alice/twocarry/sessions", json={}).json()
        assert _put(rclone_bin, s1, "a.bin", data, tmp_path).returncode == 0
        entry = {"path": "a.bin", "size": len(data), "md5": hashlib.md5(data).hexdigest()}
        assert c.post(f"/sessions/{s1['id']}/commit", json={"files": [entry]}).status_code == 201
        s2, s3 = (c.post("/datasets/alice/twocarry/sessions", json={"resume": False}).json() for _ in range(2))
        import blake3

        entry["blake3"] = blake3.blake3(data).hexdigest()
        for s, path in ((s2, "copy2/a.bin"), (s3, "copy3/a.bin")):
            plan = c.post(f"/sessions/{s['id']}/carry", json={"files": [dict(entry, path=path)]}).json()
            assert plan["carried_files"] == 1
        for s, path in ((s3, "copy3/a.bin"), (s2, "copy2/a.bin")):
            r = c.post(f"/sessions/{s['id']}/commit", json={"files": [dict(entry, path=path)]})
            assert r.status_code == 201 and r.json()["new_bytes"] == 0, r.text
        prefixes = {v: c.get(f"/datasets/alice/twocarry/versions/{v}").json()["prefix"] for v in (1, 2, 3)}
    root = alice.hub.data_dir / "objects" / "dshub"
    inodes = {(root / prefixes[1] / "a.bin").stat().st_ino, (root / prefixes[2] / "copy3/a.bin").stat().st_ino,
              (root / prefixes[3] / "copy2/a.bin").stat().st_ino}
    assert len(inodes) == 1  # one copy of the bytes on disk, three versions


def test_a_write_held_open_across_abort_or_delete_reaches_nothing(
    alice: User, rclone_bin: str, tmp_path: Path
) -> None:
    """Abort and dataset delete cut a held PUT too: nothing of it is left anywhere."""
    root = alice.hub.data_dir / "objects" / "dshub"
    with alice.api() as c:
        for end in ("abort", "delete"):
            name = f"held-{end}"
            assert c.post("/datasets", json={"name": name}).status_code == 201
            s = c.post(f"/datasets/alice/{name}/sessions", json={}).json()
            sock = open_held_put(s, "late.bin", length=2000, first=10)
            if end == "abort":
                assert c.delete(f"/sessions/{s['id']}").status_code == 204
            else:
                assert c.delete(f"/datasets/alice/{name}").status_code == 204
            _finish_held(sock)
            time.sleep(0.5)
            assert not list((root / "datasets" / s["dataset_id"]).rglob("late.bin")), end


def test_killed_between_carrying_and_commit_resumes_and_publishes(alice: User, tmp_path: Path) -> None:
    """kill -9 after the hub planned its carries and while rclone sends the rest: the
    re-run resumes its own session, plans once more and publishes a whole version."""
    src = _folder(tmp_path / "killcarry", 12, 100_000, b"k")
    alice.run_json("upload", str(src), "killcarry")
    for p in sorted(src.rglob("*.bin"))[:4]:
        p.write_bytes(os.urandom(200_000))
    kill_while_uploading(alice, "upload", str(src), "killcarry", "--bwlimit", "200k", "--transfers", "1", after=1.0)
    res = alice.run_json("upload", str(src), "killcarry")
    assert res["resumed"] is True and res["version"] == 2
    assert res["carried_files"] == 8 and res["sent_files"] + res["skipped_files"] == 4, res
    assert _version_bytes(alice, "killcarry", 2, tmp_path / "kc-down") == tree_digest(src)


def test_dshub_commit_publishes_what_another_tool_uploaded(alice: User, rclone_bin: str, tmp_path: Path) -> None:
    """The workflow dshub comes from: write credentials (`dshub creds --write`), an upload
    with any S3 tool, then `dshub commit` (`--dry-run` first) publishes the session."""
    import json

    r = alice.run("creds", "alice/handmade", "--write", "--format", "json")
    assert r.returncode == 0, r.stderr.decode()
    grant = json.loads(r.stdout)
    files = {"a.csv": b"x,y\n1,2\n", "deep/b.bin": os.urandom(5000)}
    for rel, data in files.items():
        assert _put(rclone_bin, grant, rel, data, tmp_path).returncode == 0
    dry = alice.run_json("commit", "handmade", "--dry-run")
    assert dry["files"] == 2 and {o["path"] for o in dry["items"]} == set(files)
    with alice.api() as c:
        assert c.get("/datasets/alice/handmade").json()["latest_version"] is None  # dry run
    v = alice.run_json("commit", "alice/handmade")
    assert (v["version"], v["file_count"]) == (1, 2)
    down = tmp_path / "handmade-down"
    alice.run_json("download", "alice/handmade@v1", str(down))
    assert {p.relative_to(down).as_posix(): p.read_bytes() for p in down.rglob("*") if p.is_file()} == files
    r = alice.run("commit", "handmade")
    assert r.returncode == 4 and b"no open upload session" in r.stderr


def test_a_carried_source_version_deleted_while_the_session_is_open(alice: User, tmp_path: Path) -> None:
    """v1 is deleted after the hub planned to fill v2 from it and while rclone sends the
    rest: the commit finds the carried files gone, the uploader re-sends exactly those,
    and v2 is whole."""
    src = _folder(tmp_path / "gone", 9, 100_000, b"g")
    alice.run_json("upload", str(src), "gone")
    (src / "part0" / "f000.bin").write_bytes(os.urandom(300_000))
    proc = alice.popen("upload", str(src), "gone", "--bwlimit", "150k")
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Uploading" in line:
            break
    with alice.api() as c:
        assert c.delete("/datasets/alice/gone/versions/1").status_code == 204
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"re-sending 8 file(s)" in err, err.decode()
    summary = next(ln for ln in err.decode().splitlines() if "sent " in ln and " at " in ln)
    assert "carried" not in summary and "sent 9 files" in summary, summary
    with alice.api() as c:
        assert c.get("/datasets/alice/gone").json()["latest_version"] == 2
        assert c.get("/datasets/alice/gone/versions/1/files").status_code == 404
    assert _version_bytes(alice, "gone", 2, tmp_path / "gone-down") == tree_digest(src)


def test_a_write_held_open_across_expiry_never_reaches_the_version(
    hub: HubFactory, rclone_bin: str, tmp_path: Path
) -> None:
    """Credentials that expire while a PUT is held open: the endpoint dies with its
    connections, the late bytes land nowhere, and the session, renewed, publishes exactly
    its manifest."""
    h = hub("--credential-ttl", "10")
    tok = h.create_user("erin")
    data = b"twelve bytes"
    with h.client(tok) as c:
        assert c.post("/datasets", json={"name": "expiry"}).status_code == 201
        s = c.post("/datasets/erin/expiry/sessions", json={}).json()
        assert _put(rclone_bin, s, "f.txt", data, tmp_path).returncode == 0
        late = open_held_put(s, "late.bin", length=2000, first=10)
        again = open_held_put(s, "f.txt", length=len(data), first=5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the endpoint stops at expiry: new connections fail
            if run_rclone(rclone_bin, ["lsf", f"dsh:{s['location']['bucket']}/{s['location']['prefix']}"], s).returncode:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the grant's endpoint still answered 30 s after its credentials expired")
        _finish_held(late, again)
        renewed = c.post(f"/sessions/{s['id']}/refresh")
        assert renewed.status_code == 200, renewed.text
        manifest = {"files": [{"path": "f.txt", "size": len(data), "md5": hashlib.md5(data).hexdigest()}]}
        r = c.post(f"/sessions/{s['id']}/commit", json=manifest)
        assert r.status_code == 201, r.text
    on_disk = h.data_dir / "objects" / "dshub" / r.json()["prefix"]
    assert sorted(p.name for p in on_disk.rglob("*") if p.is_file()) == ["f.txt"]
    assert (on_disk / "f.txt").read_bytes() == data
    assert not list((h.data_dir / "objects").rglob("late.bin"))


@pytest.mark.parametrize("step", [
    b"Scanning", b"Preparing", b"upload session", b"Asking the hub", b"Checking what",
    b"Uploading", b"Verifying", b"Committing",
])
def test_killed_at_any_step_the_rerun_publishes_one_whole_version(alice: User, tmp_path: Path, step: bytes) -> None:
    """kill -9 of `dshub upload` right as it starts each phase, then the same command
    again: exactly one new version, byte-identical to the folder; nothing half-published."""
    name = "kill-" + step.decode().split()[0].lower()
    src = _folder(tmp_path / name, 6, 100_000, b"s" + step)
    alice.run_json("upload", str(src), name)
    for p in sorted(src.rglob("*.bin"))[:2]:
        p.write_bytes(os.urandom(150_000))
    proc = alice.popen("upload", str(src), name, "--bwlimit", "300k", "--transfers", "1")
    assert proc.stderr is not None
    seen = b""
    for line in proc.stderr:
        seen += line
        if step in line:
            proc.kill()
            break
    proc.wait(timeout=30)
    assert step in seen, seen.decode()
    res = alice.run_json("upload", str(src), name)
    assert res["version"] == 2, res
    with alice.api() as c:
        assert c.get(f"/datasets/alice/{name}").json()["latest_version"] == 2
        assert c.get(f"/datasets/alice/{name}/versions/3/files").status_code == 404
    assert _version_bytes(alice, name, 2, tmp_path / f"{name}-down") == tree_digest(src)
    assert _version_bytes(alice, name, 1, tmp_path / f"{name}-v1") != tree_digest(src)


def test_large_manifests_plan_carrying_and_commit(alice: User, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A manifest far above the hub's small-body cap (1,500 entries): `dshub upload` plans
    its carries and commits; the NDJSON routes the client uses for the largest manifests
    carry and publish the same."""
    from dshub.api import client as api
    from dshub.models import SessionOpen

    src = tmp_path / "many"
    for i in range(1500):
        p = src / f"d{i // 500}" / f"f{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n")
    alice.run_json("upload", str(src), "many")
    (src / "d0" / "f00000.txt").write_text("changed\n")
    v2 = alice.run_json("upload", str(src), "many")
    assert (v2["version"], v2["carried_files"], v2["sent_files"]) == (2, 1499, 1), v2
    monkeypatch.setattr(api, "NDJSON_ABOVE", 100)
    with api.HubClient(alice.hub.url, alice.token) as hc:
        entries = list(hc.iter_manifest("alice", "many", 2))
        s = hc.open_session("alice", "many", SessionOpen(resume=False))
        plan = hc.carry_session(s.id, entries)
        assert plan.carried_files == 1500
        v3 = hc.commit_session(s.id, entries)
    assert (v3.version, v3.file_count, v3.new_bytes) == (3, 1500, 0)
    assert _version_bytes(alice, "many", 3, tmp_path / "many-down") == tree_digest(src)
