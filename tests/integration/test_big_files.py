"""Big files go in parts that survive interruptions; a re-run sends only missing parts.

Against a real hub (local broker: ``rclone serve s3`` endpoints on the hub's disk) with the
real CLI. Parts are 5 MiB (S3's minimum) on files of 16-26 MiB so the suite stays fast;
what was sent is counted from the parts folder of the session's staging area on the hub's
disk (each part is one object named by its offset and MD5) and from the CLI's JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HubFactory, HubProcess
from tests.integration.test_transfer_faults import Mounts
from tests.integration.transfer_util import User, child_rclones, new_user, wait_for

pytestmark = pytest.mark.integration

MIB = 2**20
PART = ["--part-size", "5M"]


@pytest.fixture(scope="module")
def hub1(module_hub: HubFactory) -> HubProcess:
    return module_hub()


@pytest.fixture(scope="module")
def carol(hub1: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> User:
    return new_user(hub1, "carol", tmp_path_factory.mktemp("carol"))


def _big(path: Path, mib: float, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(int(mib * MIB)))
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _parts_on_disk(hub: HubProcess, session_id: str) -> dict[str, int]:
    """Part name → size, of every part folder in the session's staging area."""
    found: dict[str, int] = {}
    for d in hub.data_dir.rglob(f"staging/{session_id}/.dshub-parts"):
        for p in d.rglob("p*"):
            if p.is_file():
                found[str(p.relative_to(d))] = p.stat().st_size
    return found


def _open_session(user: User, name: str) -> str:
    items = user.api().get(f"/datasets/{user.name}/{name}/sessions").json()["items"]
    assert len(items) == 1, items
    return str(items[0]["id"])


def _download_md5(user: User, name: str, rel: str, tmp: Path) -> str:
    dest = tmp / f"down-{name}"
    user.run_json("download", name, str(dest))
    return _md5(dest / rel)


def _kill_after_parts(user: User, hub: HubProcess, src: Path, name: str, parts: int, *extra: str) -> str:
    """Start an upload with a bandwidth limit, kill -9 it once ``parts`` parts are stored;
    return the session id."""
    proc = user.popen("upload", str(src), name, *PART, "--bwlimit", "4M", "--transfers", "2", *extra)
    children: set[int] = set()

    def stored() -> bool:
        children.update(child_rclones(proc.pid))
        return len(_all_parts(hub)) >= parts

    try:
        wait_for(stored, 120, f"{parts} parts to be stored")
    finally:
        children.update(child_rclones(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert children, "no rclone was seen sending parts"
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in children), 10, "rclone to die with dshub")
    return _open_session(user, name)


def _all_parts(hub: HubProcess) -> list[Path]:
    return [p for p in hub.data_dir.rglob(".dshub-parts/**/p*") if p.is_file()]


def test_big_file_goes_in_parts_and_is_one_object_in_the_version(carol: User, hub1: HubProcess, tmp_path: Path) -> None:
    src = _big(tmp_path / "one" / "big.bin", 16.5, 1)
    r = carol.run("upload", str(src.parent), "one", *PART, env=carol.env())
    assert r.returncode == 0, r.stderr.decode()
    res = carol.run_json("upload", str(src.parent), "one", *PART)
    assert res["status"] == "up_to_date"
    v1 = next(hub1.data_dir.rglob("datasets/*/v1"))
    assert sorted(p.name for p in v1.rglob("*")) == ["big.bin"]  # no parts folder published
    assert _md5(v1 / "big.bin") == _md5(src)
    assert _download_md5(carol, "one", "big.bin", tmp_path) == _md5(src)
    res2 = carol.run_json("upload", str(src.parent), "one-json", *PART)
    assert (res2["sent_parts"], res2["kept_parts"]) == (4, 0)  # 5 + 5 + 5 + 1.5 MiB


def test_kill9_then_rerun_sends_only_missing_parts(carol: User, hub1: HubProcess, tmp_path: Path) -> None:
    src = _big(tmp_path / "k" / "big.bin", 26, 2)  # 6 parts
    sid = _kill_after_parts(carol, hub1, src, "killed", 2)
    before = _parts_on_disk(hub1, sid)
    assert 2 <= len(before) < 6, before
    res = carol.run_json("upload", str(src), "killed", *PART)
    assert res["status"] == "committed" and res["resumed"] is True
    # Every part finished before the kill is kept; only the others went over the wire.
    assert res["kept_parts"] == len(before)
    assert res["sent_parts"] == 6 - len(before)
    assert res["sent_bytes"] == src.stat().st_size - sum(before.values())
    assert not any(hub1.data_dir.rglob(".dshub-parts"))  # joined, then removed
    assert _download_md5(carol, "killed", "big.bin", tmp_path) == _md5(src)


def test_file_changed_between_runs_reuses_no_part(carol: User, hub1: HubProcess, tmp_path: Path) -> None:
    src = _big(tmp_path / "c" / "big.bin", 21, 3)
    st = src.stat()
    sid = _kill_after_parts(carol, hub1, src, "changed", 2)
    old = _parts_on_disk(hub1, sid)
    assert old
    _big(src, 21, 4)  # same size, new bytes, and the old timestamps put back
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = carol.run_json("upload", str(src), "changed", *PART)
    assert res["status"] == "committed"
    assert res["kept_parts"] == 0 and res["sent_parts"] == 5
    assert _download_md5(carol, "changed", "big.bin", tmp_path) == _md5(src)


def test_part_damaged_in_storage_is_refused_at_commit_then_resent(
    carol: User, hub1: HubProcess, rclone_bin: str, tmp_path: Path
) -> None:
    """Parts put by raw rclone under honest names, one of them then damaged on the hub's
    disk: the commit refuses (the joined file's BLAKE3 differs), publishes nothing and
    keeps the session; `dshub upload --session` re-sends exactly that part."""
    import blake3

    from tests.conftest import run_rclone

    src = _big(tmp_path / "d" / "big.bin", 12, 5)  # parts of 5, 5, 2 MiB
    data = src.read_bytes()
    api = carol.api()
    assert api.post("/datasets", json={"name": "damaged"}).status_code == 201
    opened = api.post(f"/datasets/{carol.name}/damaged/sessions", json={"resume": False}).json()
    prefix = opened["location"]["prefix"]
    bucket = opened["location"]["bucket"]
    for off in range(0, len(data), 5 * MIB):
        chunk = data[off : off + 5 * MIB]
        key = f"{bucket}/{prefix}.dshub-parts/big.bin/p{off:015d}-{hashlib.md5(chunk).hexdigest()}"
        r = run_rclone(rclone_bin, ["rcat", f"dsh:{key}"], opened, input=chunk)
        assert r.returncode == 0, r.stderr.decode()
    victim = next(p for p in hub1.data_dir.rglob(f"staging/{opened['id']}/.dshub-parts/big.bin/p000000005242880-*"))
    with open(victim, "r+b") as f:  # one byte flipped, size unchanged
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    manifest = [{"path": "big.bin", "size": len(data), "md5": hashlib.md5(data).hexdigest(),
                 "blake3": blake3.blake3(data).hexdigest()}]
    r = api.post(f"/sessions/{opened['id']}/commit", json={"files": manifest})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "manifest_mismatch"
    assert "blake3 differs" in r.text
    assert api.get(f"/datasets/{carol.name}/damaged").json()["latest_version"] in (None, 0)
    assert len(_parts_on_disk(hub1, opened["id"])) == 3  # the session keeps its parts
    res = carol.run_json("upload", str(src), "damaged", *PART, "--session", opened["id"], "--yes")
    assert res["status"] == "committed" and res["version"] == 1
    assert (res["kept_parts"], res["sent_parts"]) == (2, 1)
    assert _download_md5(carol, "damaged", "big.bin", tmp_path) == _md5(src)


def test_hub_restart_between_parts(hub: HubFactory, tmp_path: Path) -> None:
    h = hub()
    user = new_user(h, "dave", tmp_path)
    src = _big(tmp_path / "r" / "big.bin", 16, 6)
    sid = _kill_after_parts(user, h, src, "restarted", 1)
    before = _parts_on_disk(h, sid)
    h.restart()  # rclone serve s3 keeps no state across it; finished parts are files
    res = user.run_json("upload", str(src), "restarted", *PART)
    assert res["status"] == "committed"
    assert res["kept_parts"] == len(before) >= 1
    assert _download_md5(user, "restarted", "big.bin", tmp_path) == _md5(src)


@pytest.mark.parametrize("bad", ["4M", "4194304", "6G", "0", "abc", "-5M"])
def test_part_size_bad_values_exit_2(carol: User, tmp_path: Path, bad: str) -> None:
    src = _big(tmp_path / "b" / "small.bin", 0.01, 7)
    r = carol.run("upload", str(src), "never-made", "--part-size", bad)
    assert r.returncode == 2, r.stderr.decode()
    err = r.stderr.decode().strip()
    assert "--part-size" in err and len(err.splitlines()) == 1, err
    assert carol.api().get(f"/datasets/{carol.name}/never-made").status_code == 404


def test_credentials_expiring_mid_part(hub: HubFactory, tmp_path: Path) -> None:
    """30-second credentials, parts that take ~35 s each: the hub retires an endpoint whose
    grant lapsed (cutting a PUT in flight), so the upload finishes only because the engine
    renews the grant while parts are in flight."""
    h = hub("--credential-ttl", "30")
    user = new_user(h, "erin", tmp_path)
    src = _big(tmp_path / "e" / "big.bin", 10.5, 8)  # 5 + 5 + 0.5 MiB
    t0 = time.monotonic()
    res = user.run_json("upload", str(src), "slow-parts", *PART, "--bwlimit", "150k", "--transfers", "3", timeout=150)
    took = time.monotonic() - t0
    assert res["status"] == "committed"
    assert took > 33, f"the upload took {took:.0f}s; the test needs parts longer than a credential lifetime"
    assert (res["sent_parts"], res["sent_bytes"]) == (3, src.stat().st_size)
    assert _download_md5(user, "slow-parts", "big.bin", tmp_path) == _md5(src)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    if os.geteuid() != 0 or not (shutil.which("mount") and shutil.which("umount")):
        pytest.skip("a full disk is made with a tmpfs mount(8), which needs root")
    m = Mounts()
    yield m
    m.close()


def test_disk_full_while_joining(carol: User, hub1: HubProcess, mounts: Mounts, tmp_path: Path) -> None:
    """The dataset's folder on the hub is a 24 MiB tmpfs: 16 MiB of parts fit, joining
    them needs 16 MiB more. The commit fails with a clear error (exit 5), publishes
    nothing and keeps the parts; with room made, a re-run sends nothing and publishes."""
    tiny = _big(tmp_path / "w" / "tiny.bin", 0.01, 9)
    carol.run_json("upload", str(tiny), "warm-up")  # makes the hub's datasets folder
    created = carol.api().post("/datasets", json={"name": "full"}).json()
    datasets = next(hub1.data_dir.rglob("datasets"))
    point = mounts.tmpfs(datasets / created["id"], size="24m")
    src = _big(tmp_path / "f" / "big.bin", 16, 10)
    r = carol.run("upload", str(src), "full", *PART)
    err = r.stderr.decode()
    assert r.returncode == 5, err
    assert "disk is full" in err and "session is kept" in err, err
    assert carol.api().get(f"/datasets/{carol.name}/full").json()["latest_version"] in (None, 0)
    sid = _open_session(carol, "full")
    assert len(_parts_on_disk(hub1, sid)) == 4
    assert not list(point.rglob(".joining"))
    subprocess.run(["mount", "-o", "remount,size=48m", str(point)], check=True)
    res = carol.run_json("upload", str(src), "full", *PART)
    assert res["status"] == "committed" and (res["kept_parts"], res["sent_parts"]) == (4, 0)
    assert _download_md5(carol, "full", "big.bin", tmp_path) == _md5(src)


# --- the sts broker (moto: S3 and STS) -----------------------------------------------------


def _put_parts(rclone_bin: str, opened: dict, data: bytes, rel: str, offsets: list[int], lie_at: int | None = None) -> None:
    """Put parts of ``data`` with raw rclone under honest names (as an earlier, killed run
    would have), except the one at ``lie_at``, whose bytes are not those its name promises."""
    from tests.conftest import run_rclone

    loc = opened["location"]
    for off in offsets:
        chunk = data[off : off + 5 * MIB]
        name = f"p{off:015d}-{hashlib.md5(chunk).hexdigest()}"
        body = bytes(len(chunk)) if off == lie_at else chunk
        key = f"dsh:{loc['bucket']}/{loc['prefix']}.dshub-parts/{rel}/{name}"
        r = run_rclone(rclone_bin, ["rcat", key, "--size", str(len(body)), "--s3-upload-cutoff", "5G"], opened, input=body)
        assert r.returncode == 0, r.stderr.decode()


def test_sts_parts_resume_and_damage(hub: HubFactory, moto_server: str, rclone_bin: str, tmp_path: Path) -> None:
    """On S3 the hub joins parts server-side (UploadPartCopy) and checks each copied part's
    MD5 against its name; a re-run keeps the parts an earlier run stored."""
    import blake3

    h = hub(
        "--broker", "sts", "--sts-endpoint-url", moto_server, "--s3-endpoint-url", moto_server,
        "--role-arn", "arn:aws:iam::123456789012:role/dshub-uploader", "--credential-ttl", "900",
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    user = new_user(h, "sam", tmp_path)
    src = _big(tmp_path / "s" / "big.bin", 12, 11)  # 5 + 5 + 2 MiB
    data = src.read_bytes()
    api = user.api()
    assert api.post("/datasets", json={"name": "cloud-big"}).status_code == 201
    opened = api.post(f"/datasets/{user.name}/cloud-big/sessions", json={"resume": False}).json()
    _put_parts(rclone_bin, opened, data, "big.bin", [0, 5 * MIB, 10 * MIB], lie_at=5 * MIB)
    manifest = [{"path": "big.bin", "size": len(data), "md5": hashlib.md5(data).hexdigest(),
                 "blake3": blake3.blake3(data).hexdigest()}]
    r = api.post(f"/sessions/{opened['id']}/commit", json={"files": manifest})
    assert r.status_code == 422, r.text
    assert "differs from what was sent" in r.text
    assert api.get(f"/datasets/{user.name}/cloud-big").json()["latest_version"] in (None, 0)
    res = user.run_json("upload", str(src), "cloud-big", *PART, "--session", opened["id"], "--yes")
    assert res["status"] == "committed"
    assert (res["kept_parts"], res["sent_parts"]) == (2, 1)  # the damaged one only
    assert _download_md5(user, "cloud-big", "big.bin", tmp_path) == _md5(src)
    # The version holds one ordinary object (a multipart ETag: no parts folder).
    g = api.post(f"/datasets/{user.name}/cloud-big/versions/1/credentials").json()
    from tests.conftest import run_rclone

    listed = run_rclone(rclone_bin, ["lsf", "-R", f"dsh:{g['location']['bucket']}/{g['location']['prefix']}"], g)
    assert listed.stdout.decode().split() == ["big.bin"]


# --- downloads ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(carol: User, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 21 MiB file published as carol/down-big (5 ranges of 5 MiB on the way down)."""
    src = _big(tmp_path_factory.mktemp("down") / "big.bin", 21, 12)
    carol.run_json("upload", str(src), "down-big", *PART)
    return src


def test_download_in_ranges(carol: User, published: Path, tmp_path: Path) -> None:
    res = carol.run_json("download", "down-big", str(tmp_path / "d"), *PART)
    assert (res["fetched_parts"], res["kept_parts"], res["fetched_files"]) == (5, 0, 1)
    assert _md5(tmp_path / "d" / "big.bin") == _md5(published)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["big.bin"]  # no partial, no sidecar


def test_killed_download_fetches_only_missing_ranges(carol: User, published: Path, tmp_path: Path) -> None:
    dest = tmp_path / "k"
    sidecar = dest / "big.bin.dshub.partial.json"
    proc = carol.popen("download", "down-big", str(dest), *PART, "--bwlimit", "4M", "--transfers", "2")

    def ranges_done() -> int:
        try:
            return len(json.loads(sidecar.read_text())["done"])
        except (OSError, ValueError):
            return 0

    try:
        wait_for(lambda: ranges_done() >= 2, 120, "two ranges to be fetched")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = ranges_done()
    assert 2 <= done < 5 and not (dest / "big.bin").exists()
    res = carol.run_json("download", "down-big", str(dest), *PART)
    assert (res["kept_parts"], res["fetched_parts"]) == (done, 5 - done)
    assert _md5(dest / "big.bin") == _md5(published)
    assert not sidecar.exists() and not (dest / "big.bin.dshub.partial").exists()


def test_damaged_partial_is_caught_by_the_whole_file_check(carol: User, published: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bad"
    dest.mkdir()
    data = published.read_bytes()
    (dest / "big.bin.dshub.partial").write_bytes(data[:5 * MIB] + bytes(len(data) - 5 * MIB))
    manifest = carol.api().get(f"/datasets/{carol.name}/down-big/versions/1/files").json()["items"][0]
    # A sidecar claiming every range is done, for this very content: only the check can tell.
    (dest / "big.bin.dshub.partial.json").write_text(json.dumps({
        "file": {"size": len(data), "blake3": manifest["blake3"], "md5": manifest["md5"], "part_size": 5 * MIB},
        "done": [i * 5 * MIB for i in range(5)],
    }))
    r = carol.run("download", "down-big", str(dest), *PART)
    assert r.returncode == 5, r.stderr.decode()
    assert "do not match the manifest" in r.stderr.decode()
    assert not (dest / "big.bin").exists() and not (dest / "big.bin.dshub.partial").exists()
    res = carol.run_json("download", "down-big", str(dest), *PART)
    assert res["fetched_parts"] == 5
    assert _md5(dest / "big.bin") == _md5(published)


# --- names with the characters rclone's encodings use ------------------------------------


def test_big_file_named_with_fullwidth_slash_and_dot_goes_in_parts(carol: User, tmp_path: Path) -> None:
    """The characters rclone's local backend uses to encode names on disk (the hub checks
    such small files through the S3 API): a big file of that name is joined at its path
    and its whole-file BLAKE3 checked like any other."""
    name = "full\uff0fwidth dot\uff0e.bin"
    src = _big(tmp_path / "enc" / name, 11, 21)
    res = carol.run_json("upload", str(src.parent), "enc-big", *PART)
    assert res["status"] == "committed" and res["sent_parts"] == 3
    down = tmp_path / "down"
    assert carol.run_json("download", "enc-big", str(down), *PART)["fetched_parts"] == 3
    assert _md5(down / name) == _md5(src)


def test_name_with_rclones_escape_character_is_refused_before_sending(carol: User, tmp_path: Path) -> None:
    src = _big(tmp_path / "q" / "quote\u201b.bin", 11, 22)
    r = carol.run("upload", str(src.parent), "quote-big", *PART)
    assert r.returncode == 2, r.stderr.decode()
    err = r.stderr.decode()
    assert "cannot be uploaded; nothing was sent" in err and "rename it" in err
    assert carol.api().get(f"/datasets/{carol.name}/quote-big").status_code == 404


def test_dshub_commit_of_a_session_holding_parts_says_to_rerun_the_upload(
    carol: User, hub1: HubProcess, tmp_path: Path
) -> None:
    """`dshub commit` publishes what a session holds as it stands; parts of a big file are
    not a file yet: the hub refuses (nothing published, the parts kept), and the re-run
    of the upload finishes the file from the parts already there."""
    src = _big(tmp_path / "pc" / "big.bin", 26, 31)
    sid = _kill_after_parts(carol, hub1, src, "pending", 2)
    before = _parts_on_disk(hub1, sid)
    r = carol.run("commit", sid)
    err = r.stderr.decode()
    assert r.returncode == 2, err  # the wrong command for this session, as a usage error
    assert "only `dshub upload` can finish" in err and len(err.strip().splitlines()) == 1
    assert carol.api().get(f"/datasets/{carol.name}/pending").json()["latest_version"] is None
    assert _parts_on_disk(hub1, sid) == before  # nothing lost
    res = carol.run_json("upload", str(src), "pending", *PART)
    assert res["status"] == "committed" and res["kept_parts"] == len(before)
    assert _download_md5(carol, "pending", "big.bin", tmp_path) == _md5(src)
