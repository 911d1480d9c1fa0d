"""Which digest decides whether a local file holds a manifest entry's content: BLAKE3
where the manifest has it, MD5 for versions committed before dshub recorded BLAKE3."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import blake3
import pytest

from dshub.models import ManifestEntry
from dshub.transfer import common
from dshub.transfer.common import HashCache
from dshub.transfer.download import _local_state, _Verifier
from dshub.transfer.scan import scan
from dshub.transfer.uptodate import _same_content

GOOD, BAD = b"the committed bytes", b"other bytes, same n"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHUB_CACHE_DIR", str(tmp_path / "cache"))


def _entry(path: str, data: bytes, *, md5: bool = True, b3: bool = True) -> ManifestEntry:
    return ManifestEntry(
        path=path,
        size=len(data),
        md5=hashlib.md5(data).hexdigest() if md5 else None,
        blake3=blake3.blake3(data).hexdigest() if b3 else None,
    )


def _hashing(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, bool]]:
    asked: list[dict[str, bool]] = []
    real = common.hash_file
    monkeypatch.setattr(common, "hash_file", lambda p, stop=None, **kw: asked.append(kw) or real(p, stop, **kw))
    return asked


def _verify_all(dest: Path, todo: list[ManifestEntry]) -> tuple[_Verifier, list]:
    """Submit every entry as rclone would report it, and collect the verdicts."""
    v = _Verifier(str(dest), HashCache(str(dest)), todo)
    try:
        for e in todo:
            v.submit(e.path)
        return v, v.finish()
    finally:
        v.close()


def test_verifier_checks_blake3_else_md5_and_removes_bad_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    for name in ("ok-b3", "bad-b3", "ok-md5", "bad-md5", "short"):
        (dest / name).write_bytes(BAD if name.startswith("bad") else GOOD)
    todo = [
        _entry("ok-b3", GOOD),
        _entry("bad-b3", GOOD),
        _entry("ok-md5", GOOD, b3=False),  # committed by an older client
        _entry("bad-md5", GOOD, b3=False),
        _entry("short", GOOD + b"!"),
    ]
    asked = _hashing(monkeypatch)
    v, bad = _verify_all(dest, todo)
    assert sorted((b.path, b.problem) for b in bad) == [
        ("bad-b3", "blake3 differs"),
        ("bad-md5", "md5 differs"),
        ("short", "size differs"),
    ]
    assert sorted(os.listdir(dest)) == ["ok-b3", "ok-md5"]  # the next run fetches the others again
    # Only the digest that decides is computed: no MD5 where the manifest has BLAKE3.
    assert sorted(map(str, asked)) == sorted(
        map(str, [{"md5": False, "blake3": True}] * 2 + [{"md5": True, "blake3": False}] * 2)
    )


def test_local_state_uses_the_manifest_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_bytes(GOOD)
    cache = HashCache(str(tmp_path))
    asked = _hashing(monkeypatch)
    assert _local_state(str(tmp_path), _entry("a", GOOD), cache) == "same"
    assert _local_state(str(tmp_path), _entry("a", BAD), cache) == "different"
    assert _local_state(str(tmp_path), _entry("a", GOOD, b3=False), cache) == "same"
    assert _local_state(str(tmp_path), _entry("a", BAD, b3=False), cache) == "different"
    assert _local_state(str(tmp_path), _entry("nope", GOOD), cache) == "missing"
    assert asked == [{"md5": False, "blake3": True}, {"md5": True, "blake3": False}]  # then cached


def test_upload_up_to_date_check_prefers_cached_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder just downloaded (BLAKE3 cached) is compared with the latest version
    without computing MD5; a folder uploaded from (MD5 cached) without reading at all."""
    (tmp_path / "a").write_bytes(GOOD)
    f = scan(tmp_path).by_path()["a"]
    cache = HashCache(str(tmp_path))
    asked = _hashing(monkeypatch)
    assert _same_content(cache, str(tmp_path), _entry("a", GOOD), f)
    assert asked == [{"md5": False, "blake3": True}]
    assert not _same_content(cache, str(tmp_path), _entry("a", BAD), f)
    assert _same_content(cache, str(tmp_path), _entry("a", GOOD, b3=False), f)  # an old version: MD5
    assert len(asked) == 2
    assert not _same_content(cache, str(tmp_path), _entry("a", BAD, b3=False), f)
    assert len(asked) == 2  # both digests cached now


def test_small_files_are_checked_on_one_thread_big_ones_on_several(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking a small file is mostly GIL-bound Python: several threads only fight over
    it. Big files hash with the GIL released, so they get a lane of their own threads."""
    from dshub.transfer import download

    monkeypatch.setattr(download.os, "cpu_count", lambda: 2)
    dest = tmp_path / "dest"
    dest.mkdir()
    big = os.urandom(download.BIG_FILE)
    todo = [_entry(f"s{i}", GOOD) for i in range(20)] + [_entry(f"b{i}", big) for i in range(4)]
    for e in todo:
        (dest / e.path).write_bytes(big if e.path.startswith("b") else GOOD)
    (dest / "b3").write_bytes(big[:-1] + b"\0" if big[-1:] != b"\0" else big[:-1] + b"\1")  # corrupt one big file
    threads: dict[str, str] = {}
    real = _Verifier._check

    def spy(self: _Verifier, e: ManifestEntry):  # type: ignore[no-untyped-def]
        import threading

        threads[e.path] = threading.current_thread().name
        return real(self, e)

    monkeypatch.setattr(_Verifier, "_check", spy)
    v, bad = _verify_all(dest, todo)
    assert [(b.path, b.problem) for b in bad] == [("b3", "blake3 differs")]
    assert {threads[f"s{i}"] for i in range(20)} == {"dshub-verify"}
    assert {threads[f"b{i}"] for i in range(4)} <= {"dshub-verify-big-0", "dshub-verify-big-1"}
    assert not any(t.is_alive() for _, t in v._lanes)
    # Only small files: no big lane at all.
    v = _Verifier(str(dest), HashCache(str(dest)), todo[:3])
    v.close()
    assert [t.name for _, t in v._lanes] == ["dshub-verify"]
