"""HashCache: digests (MD5, BLAKE3) remembered across runs while files are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import blake3
import pytest

from dshub.transfer import common
from dshub.transfer.common import HashCache, hash_in_background


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))


def test_cache_hit_miss_and_persistence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a").write_bytes(b"hello")
    want = hashlib.md5(b"hello").hexdigest()
    first = HashCache(str(root))
    assert first.md5(str(root), "a") == want
    assert not os.path.exists(first.path)  # batched: written on flush (or every 256)
    first.flush()

    calls: list[str] = []
    real = common.hash_file
    monkeypatch.setattr(common, "hash_file", lambda p, stop=None, **kw: calls.append(p) or real(p, stop, **kw))
    again = HashCache(str(root))  # a new run reads what the first one appended
    assert again.md5(str(root), "a") == want and calls == []
    assert again.md5(str(root), "a", fresh=True) == want and len(calls) == 1

    (root / "a").write_bytes(b"HELLO")  # same size, new mtime: must be hashed again
    os.utime(root / "a", ns=(1, 1))
    assert HashCache(str(root)).md5(str(root), "a") == hashlib.md5(b"HELLO").hexdigest()


def test_torn_line_and_compaction(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "x").write_bytes(b"1")
    c = HashCache(str(root))
    c.md5(str(root), "x")
    c.flush()
    with open(c.path, "a") as f:
        f.write('[1, 2]\n{"not": "a row"}\n\n["y", 1, 2')  # odd rows, then killed mid-write
    c2 = HashCache(str(root))
    assert c2.get("x", os.stat(root / "x")) is not None
    c2.compact()
    assert len(Path(c2.path).read_text().splitlines()) == 1


def test_compaction_rewrites_only_a_file_with_stale_rows(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    for name in "abc":
        (root / name).write_bytes(name.encode())
    c = HashCache(str(root))
    for name in "abc":
        c.md5(str(root), name)
    c.compact()  # nothing stale: the pending rows are appended, the file is not rewritten
    ino = os.stat(c.path).st_ino
    assert len(Path(c.path).read_text().splitlines()) == 3
    c2 = HashCache(str(root))
    c2.compact()
    assert os.stat(c2.path).st_ino == ino
    (root / "b").write_bytes(b"B2")  # b changes: a second row for it is appended
    c2.md5(str(root), "b")
    c2.flush()
    assert len(Path(c2.path).read_text().splitlines()) == 4
    c2.compact()  # now one row is stale: rewritten, one row per path
    rows = [json.loads(line) for line in Path(c2.path).read_text().splitlines()]
    assert os.stat(c2.path).st_ino != ino and sorted(r[0] for r in rows) == ["a", "b", "c"]
    assert HashCache(str(root)).md5(str(root), "b") == hashlib.md5(b"B2").hexdigest()


def test_cache_writes_in_batches(tmp_path: Path) -> None:
    c = HashCache(str(tmp_path))
    st = os.stat(tmp_path)
    for i in range(common._CACHE_BATCH - 1):
        c.put(f"f{i}", st, "0" * 32)
    assert not os.path.exists(c.path)
    c.put("last", st, "0" * 32)  # the batch is full: appended now
    assert len(Path(c.path).read_text().splitlines()) == common._CACHE_BATCH
    assert HashCache(str(tmp_path)).get("last", st) == "0" * 32


def test_background_hashing_uses_cache(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}").write_bytes(bytes([i]) * 1000)
    cache = HashCache(str(root))
    cache.md5(str(root), "f0")  # cached: f0's MD5 is not computed again, only its BLAKE3
    # f1's MD5 comes from rclone: only its BLAKE3 is computed.
    h = hash_in_background(str(root), [f"f{i}" for i in range(5)], cache, md5_known={"f1"})
    try:
        got = h.result()
    finally:
        h.close()
    want = {f"f{i}": _digests(bytes([i]) * 1000) for i in range(5)}
    want["f1"] = common.Digests(None, want["f1"].blake3)
    assert got == want


def test_background_hashing_reports_errors_and_stops_when_closed(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "a").write_bytes(b"a")
    h = hash_in_background(str(root), ["a", "gone"], HashCache(str(root)))
    with pytest.raises(FileNotFoundError):
        h.result()  # raised in the caller's thread, not lost in the worker
    h.close()
    # Closed early: the thread ends without reading the rest, and result() does not
    # pretend the digests are complete.
    for i in range(200):
        (root / f"f{i}").write_bytes(b"x" * 100)
    h = hash_in_background(str(root), [f"f{i}" for i in range(200)], HashCache(str(root)))
    h.close()
    assert not h._thread.is_alive()
    if len(h._done) < 200:
        with pytest.raises(common.Cancelled):
            h.result()


def test_unwritable_cache_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHUB_CACHE_DIR", "/proc/no-such-dir")
    (tmp_path / "a").write_bytes(b"z")
    assert HashCache(str(tmp_path)).md5(str(tmp_path), "a") == hashlib.md5(b"z").hexdigest()


def test_sent_files_take_rclone_md5_and_the_rest_are_hashed(tmp_path: Path) -> None:
    from dshub.transfer.scan import scan
    from dshub.transfer.session_run import _remember_verified, _sent_hashes

    root = tmp_path / "src"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 1000)
    (root / "b.bin").write_bytes(b"b" * 1000)
    sc = scan(root)
    cache = HashCache(sc.root)
    told = "0" * 32  # not a.bin's real MD5: shows rclone's value is taken, not recomputed
    out = _sent_hashes(sc, ["a.bin", "b.bin"], {"a.bin": told}, cache)
    assert out == {"a.bin": told, "b.bin": hashlib.md5(b"b" * 1000).hexdigest()}
    # What rclone reported is cached (a resumed or repeated run will not read the file
    # again), unless the file changed since the scan.
    (root / "b.bin").write_bytes(b"c" * 1001)
    _remember_verified(sc, {"a.bin": told, "b.bin": "1" * 32}, cache)
    a, b = sc.by_path()["a.bin"], sc.by_path()["b.bin"]
    assert cache.known("a.bin", a.size, a.mtime_ns, a.ino) == told
    assert cache.known("b.bin", b.size, b.mtime_ns, b.ino) != "1" * 32


def _digests(data: bytes) -> common.Digests:
    return common.Digests(hashlib.md5(data).hexdigest(), blake3.blake3(data).hexdigest())


def test_hash_file_reads_once_for_both_digests(tmp_path: Path) -> None:
    data = os.urandom(3 * common.HASH_CHUNK + 5)  # several chunks, the last one short
    (tmp_path / "f").write_bytes(data)
    p = str(tmp_path / "f")
    assert common.hash_file(p) == _digests(data)
    assert common.hash_file(p, md5=False) == common.Digests(None, _digests(data).blake3)
    assert common.hash_file(p, blake3=False) == common.Digests(hashlib.md5(data).hexdigest(), None)


def test_cache_computes_only_the_missing_digest_and_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "a").write_bytes(b"abc")
    c = HashCache(str(root))
    assert c.md5(str(root), "a") == hashlib.md5(b"abc").hexdigest()
    asked: list[dict[str, bool]] = []
    real = common.hash_file
    monkeypatch.setattr(common, "hash_file", lambda p, stop=None, **kw: asked.append(kw) or real(p, stop, **kw))
    assert c.digests(str(root), "a") == _digests(b"abc")
    assert asked == [{"md5": False, "blake3": True}]  # the cached MD5 was not recomputed
    c.flush()
    # Both digests are kept for the same state of the file, across runs.
    again = HashCache(str(root))
    assert again.digests(str(root), "a") == _digests(b"abc") and len(asked) == 1
    st = os.stat(root / "a")
    assert again.known_digests("a", st.st_size, st.st_mtime_ns, st.st_ino) == _digests(b"abc")
    assert again.known_digests("a", st.st_size, st.st_mtime_ns + 1, st.st_ino) == common.NO_DIGESTS


def test_cache_reads_rows_of_older_versions(tmp_path: Path) -> None:
    """Rows written before BLAKE3 was recorded ([path, size, mtime, inode, md5]) keep
    their MD5; rows with neither digest or bad values are ignored."""
    (tmp_path / "a").write_bytes(b"A")
    st = os.stat(tmp_path / "a")
    c = HashCache(str(tmp_path))
    os.makedirs(os.path.dirname(c.path))
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    rows = [["a", *stamp, "1" * 32], ["b", *stamp, None, None], ["c", *stamp, "short", "2" * 64], [7, *stamp, "3" * 32]]
    Path(c.path).write_text("\n".join(map(json.dumps, rows)) + "\n")
    c = HashCache(str(tmp_path))
    assert c.get_digests("a", st) == common.Digests("1" * 32, None)
    assert c.get_digests("b", st) == common.NO_DIGESTS
    assert c.get_digests("c", st) == common.Digests(None, "2" * 64)
