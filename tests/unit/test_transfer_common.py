"""HashCache: MD5s remembered across runs while files are unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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
    real = common.md5_file
    monkeypatch.setattr(common, "md5_file", lambda p, stop=None: calls.append(p) or real(p, stop))
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
    h = hash_in_background(str(root), [f"f{i}" for i in range(5)], HashCache(str(root)))
    try:
        got = h.result()
    finally:
        h.close()
    assert got == {f"f{i}": hashlib.md5(bytes([i]) * 1000).hexdigest() for i in range(5)}


def test_unwritable_cache_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHUB_CACHE_DIR", "/proc/no-such-dir")
    (tmp_path / "a").write_bytes(b"z")
    assert HashCache(str(tmp_path)).md5(str(tmp_path), "a") == hashlib.md5(b"z").hexdigest()


def test_sent_files_take_rclone_md5_and_the_rest_are_hashed(tmp_path: Path) -> None:
    from dshub.transfer.scan import scan
    from dshub.transfer.upload import _remember_verified, _sent_hashes

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
