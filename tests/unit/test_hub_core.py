"""Unit tests of the hub's pure parts: tokens, settings, manifest checks, keyset listings."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from dshub.hub.brokers.factory import load_or_create_secret
from dshub.hub.db import (
    DatasetRow, FileRow, SessionRow, UserRow, create_tables, make_engine, make_sessionmaker, utcnow,
)
from dshub.hub.errors import HubError
from dshub.hub.security import authenticate, create_token, hash_secret, parse_token, parse_token_or_public_id, revoke_token
from dshub.hub.service import DatasetCtx, list_files
from dshub.hub.publish import Published
from dshub.hub.sessions import _publish, _validate_manifest
from dshub.hub.settings import HubSettings
from dshub.hub.brokers.base import StorageAccess
from dshub.hub.storage import ObjectInfo, Storage
from dshub.models import CommitRequest, ManifestEntry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> Session:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    create_tables(engine)
    with make_sessionmaker(engine)() as s:
        yield s


# --- tokens -----------------------------------------------------------------------------


def test_token_roundtrip_and_revoke(db: Session) -> None:
    u = UserRow(name="alice")
    db.add(u)
    db.flush()
    tok = create_token(db, u)
    db.commit()
    parsed = parse_token(tok)
    assert parsed is not None and tok.startswith(f"dshub_{parsed.public_id}_")
    assert parsed.secret not in repr(parsed)
    # Only the hash is stored.
    from dshub.hub.db import TokenRow

    row = db.query(TokenRow).one()
    assert row.secret_hash == hash_secret(parsed.secret) and parsed.secret not in row.secret_hash
    assert authenticate(db, tok).name == "alice"
    assert row.last_used_at is not None
    assert authenticate(db, tok[:-1] + ("A" if tok[-1] != "A" else "B")) is None
    assert authenticate(db, "dshub_" + "0" * 16 + "_" + parsed.secret) is None
    assert authenticate(db, "garbage") is None
    assert parse_token_or_public_id(tok) == parsed.public_id == parse_token_or_public_id(parsed.public_id)
    assert parse_token_or_public_id("nope") is None
    assert revoke_token(db, parsed.public_id) is True
    db.commit()
    assert revoke_token(db, parsed.public_id) is False
    assert authenticate(db, tok) is None


# --- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_clamps(tmp_path: Path) -> None:
    s = HubSettings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'hub.db'}"
    assert s.effective_credential_ttl == 3600 and s.session_ttl == 86400
    assert HubSettings(data_dir=tmp_path, credential_ttl=30).effective_credential_ttl == 30
    sts = HubSettings(data_dir=tmp_path, broker="sts", role_arn="arn:aws:iam::1:role/x", credential_ttl=30)
    assert sts.effective_credential_ttl == 900
    sts.credential_ttl = 10**6
    assert sts.effective_credential_ttl == 43200
    assert "secret" not in repr(HubSettings(data_dir=tmp_path, aws_secret_access_key="secret"))
    for bad in ({"broker": "nope"}, {"credential_ttl": 5}, {"port": 0}, {"broker": "sts"}):
        with pytest.raises(ValueError):
            HubSettings(data_dir=tmp_path, **bad)


def test_hub_secret_is_private_and_stable(tmp_path: Path) -> None:
    a = load_or_create_secret(tmp_path / "d")
    assert len(a) == 32 and load_or_create_secret(tmp_path / "d") == a
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "hub.secret").st_mode) == 0o600


def test_plain_md5_etag_only() -> None:
    assert ObjectInfo("k", 1, '"0cc175b9c0f1b6a831c399e269772661"').md5 == "0cc175b9c0f1b6a831c399e269772661"
    assert ObjectInfo("k", 1, '"0cc175b9c0f1b6a831c399e269772661-3"').md5 is None
    assert ObjectInfo("k", 1, None).md5 is None


# --- manifest validation ----------------------------------------------------------------


def _disk_store(root: Path | None) -> Storage:
    return Storage(StorageAccess(endpoint="http://127.0.0.1:9", bucket="b", region="us-east-1",
                                 access_key_id="k", secret_access_key="s", local_root=root))


def test_commit_check_on_disk(tmp_path: Path) -> None:
    """The local store's commit check hashes the frozen staging folder: an exact match
    passes; a size, a missing file, a stray or other bytes of the same size are refused;
    an abandoned multipart upload's hidden file is no object."""
    import hashlib

    from dshub.hub.publish import LocalPublisher, Mismatch
    from dshub.models import ManifestEntry

    pre = tmp_path / "datasets" / "u" / "staging" / "s1"
    (pre / "d").mkdir(parents=True)
    (pre / "a.txt").write_bytes(b"12345")
    (pre / "d" / "b.bin").write_bytes(b"x" * 10)
    (pre / "d" / ".rclone_multipart_upload_123").write_bytes(b"part")
    (pre / ".rclone_temp_multipart_456").write_bytes(b"part")  # rclone 1.75's name
    (pre / "d" / ".rclone_temp_put_789").write_bytes(b"cut off")  # a PUT a killed rclone left
    want = [ManifestEntry(path="a.txt", size=5, md5=hashlib.md5(b"12345").hexdigest()),
            ManifestEntry(path="d/b.bin", size=10)]
    pub = LocalPublisher(_disk_store(tmp_path), None)
    got = pub.verify(pre, "datasets/u/staging/s1/", want, {})
    assert got.md5s == {"a.txt": hashlib.md5(b"12345").hexdigest(), "d/b.bin": hashlib.md5(b"x" * 10).hexdigest()}
    assert got.verified == {"a.txt", "d/b.bin"} and len(got.blake3s["a.txt"] or "") == 64

    def problems(manifest: list[ManifestEntry]) -> list[tuple[str | None, str]]:
        with pytest.raises(Mismatch) as ei:
            pub.verify(pre, "datasets/u/staging/s1/", manifest, {})
        return [(d.path, d.problem) for d in ei.value.details]

    assert problems([want[0].model_copy(update={"size": 6}), want[1]]) == [("a.txt", "size differs")]
    assert problems([*want, ManifestEntry(path="c.txt", size=1)]) == [("c.txt", "missing in storage")]
    assert problems([want[0]]) == [("d/b.bin", "in storage but not in the manifest")]
    (pre / "a.txt").write_bytes(b"54321")
    assert problems(want) == [("a.txt", "md5 differs")]


def test_local_store_needs_no_boto3_to_start_or_check_a_commit(tmp_path: Path) -> None:
    """boto3 (~0.4 s to import and load its S3 model) is built on the first S3 call: a local
    hub's bucket is a directory and its commit check reads the disk."""
    code = f"""
import sys
from pathlib import Path
from dshub.hub.brokers.base import StorageAccess
from dshub.hub.storage import Storage
root = Path({str(tmp_path)!r}) / "bucket"
store = Storage(StorageAccess(endpoint="http://127.0.0.1:9", bucket="b", region="us-east-1",
                              access_key_id="k", secret_access_key="s", local_root=root))
store.ensure_bucket()
(root / "p").mkdir()
(root / "p" / "a").write_bytes(b"abc")
from dshub.hub.publish import LocalPublisher
from dshub.models import ManifestEntry
LocalPublisher(store, None).verify(root / "p", "p/", [ManifestEntry(path="a", size=3)], {{}})
print("boto3" in sys.modules, root.is_dir())
store._client  # the first S3 operation builds the client
print("boto3" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ([], "empty_manifest"),
        ([{"path": "../a", "size": 1}], "invalid"),
        ([{"path": "/a", "size": 1}], "invalid"),
        ([{"path": "a\x00", "size": 1}], "invalid"),
        ([{"path": "a", "size": 1}, {"path": "a", "size": 2}], "invalid"),
        ([{"path": "a", "size": 1}, {"path": "a/b", "size": 2}], "invalid"),
        ([{"path": "a", "size": 1, "md5": "xyz"}], "invalid"),
        ([{"path": "a", "size": 1, "blake3": "0" * 32}], "invalid"),
        ([{"path": "a", "size": 1, "blake3": "g" * 64}], "invalid"),
        # the pattern must not accept what `$` or Unicode digits would let through
        ([{"path": "a", "size": 1, "md5": "0" * 31 + "\n"}], "invalid"),
        ([{"path": "a", "size": 1, "md5": "0" * 31 + "\u0663"}], "invalid"),
        ([{"path": "a", "size": 10**20}], "invalid"),
    ],
)
def test_manifest_validation(files: list[dict[str, object]], code: str) -> None:
    with pytest.raises(HubError) as e:
        _validate_manifest(CommitRequest.model_validate({"files": files}))
    assert e.value.code == code and e.value.status == 422


def test_manifest_problems_name_the_bad_digest() -> None:
    body = CommitRequest.model_validate({"files": [{"path": "a", "size": 1, "md5": "0" * 32, "blake3": "0" * 63}]})
    with pytest.raises(HubError) as e:
        _validate_manifest(body)
    assert [(d.path, d.problem) for d in e.value.details] == [("a", "blake3 is not 64 hex digits")]


def test_older_database_gets_the_added_columns(tmp_path: Path) -> None:
    """A hub started on a database made before ``files.blake3`` existed adds the column;
    versions already stored keep their rows (blake3 NULL: downloads check MD5)."""
    from sqlalchemy import inspect, text

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    create_tables(engine)
    with make_sessionmaker(engine)() as db:
        _version(db, ["a.txt"])  # defined below, with the listing tests
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE files DROP COLUMN blake3"))  # as the first schema had it
        conn.execute(text(f"UPDATE files SET md5 = '{'1' * 32}'"))
    assert "blake3" not in {c["name"] for c in inspect(engine).get_columns("files")}
    create_tables(engine)
    create_tables(engine)  # and again: nothing to add the second time
    assert "blake3" in {c["name"] for c in inspect(engine).get_columns("files")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT path, md5, blake3 FROM files")).all() == [("a.txt", "1" * 32, None)]


def test_manifest_stream_lines_are_the_models_json(db: Session) -> None:
    """The hub writes manifest lines from plain dicts: they must be exactly what
    ManifestEntry would write (names, order, escaping, nulls), across batch boundaries."""
    from types import SimpleNamespace

    from dshub.hub.service import iter_manifest

    paths = ["a.txt", 'quote"and\\back.txt', "日本語/データ.bin", "z/ü-nfc", "tab\tin name"]
    v = _version(db, paths)
    with db.get_bind().begin() as conn:  # one row with both digests, the others with none
        conn.execute(FileRow.__table__.update().where(FileRow.path == "a.txt").values(md5="0" * 32, blake3="f" * 64))
    runtime = SimpleNamespace(sessionmaker=lambda: Session(db.get_bind()))
    got = b"".join(iter_manifest(runtime, v.id, batch=2)).splitlines()  # type: ignore[arg-type]
    want = [
        ManifestEntry(path=p, size=len(p), md5="0" * 32 if p == "a.txt" else None,
                      blake3="f" * 64 if p == "a.txt" else None).model_dump_json().encode()
        for p in sorted(paths)
    ]
    assert got == want


# --- keyset listings --------------------------------------------------------------------


def _version(db: Session, paths: list[str]) -> int:
    u = UserRow(name="u")
    db.add(u)
    db.flush()
    ds = DatasetRow(owner_id=u.id, name="d")
    db.add(ds)
    db.flush()
    s = SessionRow(dataset_id=ds.id, version=1, expires_at=utcnow() + timedelta(days=1), uploader="u", prefix="p/")
    db.add(s)
    db.commit()
    body = CommitRequest.model_validate({"files": [{"path": p, "size": len(p)} for p in paths]})
    return _publish(db, s, DatasetCtx(row=ds, owner="u"), body, Published({}, {}), 1, "p/v1/")


def _walk(db: Session, v: object, **kw: object) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = list_files(db, v, cursor=cursor, **kw)  # type: ignore[arg-type]
        out.extend(e.path + ("/" if e.is_dir else "") for e in page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 100])
def test_level_listing_pages_across_dirs_and_files(db: Session, limit: int) -> None:
    v = _version(db, ["b/x", "a/y/z", "c", "a0", "a/q", "é/1", "z"])
    assert _walk(db, v, prefix="", recursive=False, limit=limit) == ["a/", "b/", "é/", "a0", "c", "z"]
    assert _walk(db, v, prefix="a", recursive=False, limit=limit) == ["a/y/", "a/q"]
    assert _walk(db, v, prefix="", recursive=True, limit=limit) == sorted(
        ["b/x", "a/y/z", "c", "a0", "a/q", "é/1", "z"]
    )
    # "a0" sorts right after "a/…" and must not leak into a recursive listing of "a".
    assert _walk(db, v, prefix="a", recursive=True, limit=limit) == ["a/q", "a/y/z"]


def test_dir_stats(db: Session) -> None:
    v = _version(db, ["a/b/c", "a/d", "e"])
    page = list_files(db, v, prefix="", recursive=False, limit=10, cursor=None)
    a = page.items[0]
    assert (a.path, a.is_dir, a.file_count, a.size) == ("a", True, 2, len("a/b/c") + len("a/d"))


def test_bad_cursor_and_prefix(db: Session) -> None:
    v = _version(db, ["a/b"])
    for kw in ({"cursor": "!!"}, {"cursor": "eyJ4Ijp9"}, {"prefix": "../a"}):
        with pytest.raises(HubError) as e:
            list_files(db, v, **{"prefix": "", "recursive": False, "limit": 5, "cursor": None, **kw})  # type: ignore[arg-type]
        assert e.value.status == 422
    with pytest.raises(HubError) as e:
        list_files(db, v, prefix="nope", recursive=False, limit=5, cursor=None)
    assert e.value.status == 404


# --- dataset listing --------------------------------------------------------------------


def test_dataset_listing_pages_in_the_database_with_each_latest_version(db: Session) -> None:
    """Pages come from the database (count + offset/limit) and each dataset's newest
    version comes from one grouped query: every page must still show the right one."""
    from dshub.hub.db import VersionRow
    from dshub.hub.service import list_datasets

    alice, bob = UserRow(name="alice"), UserRow(name="bob")
    db.add_all([alice, bob])
    db.flush()
    base = utcnow()
    want: dict[str, int | None] = {}
    for i in range(7):
        owner = alice if i % 2 == 0 else bob
        ds = DatasetRow(owner_id=owner.id, name=f"d{i}", visibility="public" if i != 5 else "private",
                        tags=["even"] if i % 2 == 0 else [], updated_at=base + timedelta(seconds=i))
        db.add(ds)
        db.flush()
        for n in range(1, i % 4 + 1):  # 0 to 3 versions, numbers in order
            db.add(VersionRow(dataset_id=ds.id, number=n, size=100 * i + n, file_count=n, uploader=owner.name, prefix="p/"))
        want[f"{owner.name}/d{i}"] = (i % 4) or None
    db.commit()

    def names(page: int, size: int, tag: str | None = None) -> tuple[int, list[tuple[str, int | None, int]]]:
        got = list_datasets(db, alice, owner=None, q=None, tag=tag, page=page, page_size=size)
        return got.total, [(d.full_name, d.latest_version, d.size) for d in got.items]

    # bob's d5 is private: alice sees 6, newest update first, over pages of 4.
    total, first = names(1, 4)
    _, second = names(2, 4)
    assert total == 6 and [n for n, _, _ in first + second] == ["alice/d6", "alice/d4", "bob/d3", "alice/d2", "bob/d1", "alice/d0"]
    for name, latest, size in first + second:
        i = int(name.rsplit("d", 1)[1])
        assert latest == want[name] and size == (100 * i + latest if latest else 0)
    assert names(3, 4) == (6, [])
    # A tag filter still pages (in Python) and keeps the totals right.
    assert names(2, 2, tag="even") == (4, [("alice/d2", 2, 202), ("alice/d0", None, 0)])


# --- packaging rules --------------------------------------------------------------------


def test_hub_cli_imports_only_typer() -> None:
    code = (
        "import sys; import dshub.hub.cli; "
        "bad = [m for m in ('fastapi', 'uvicorn', 'sqlalchemy', 'boto3') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_hub_never_imports_client_side() -> None:
    for path in (REPO / "src" / "dshub" / "hub").rglob("*.py"):
        text = path.read_text()
        for mod in ("dshub.client", "dshub.transfer", "dshub.cli"):
            assert f"from {mod}" not in text and f"import {mod}" not in text, (path, mod)


def test_checked_in_openapi_matches_the_app() -> None:
    from dshub.hub.openapi import openapi_json

    generated = openapi_json()
    checked_in = (REPO / "docs" / "openapi.json").read_text()
    assert json.loads(checked_in) == json.loads(generated), "run `make openapi` and commit docs/openapi.json"


def test_deleting_a_prefix_another_process_is_emptying_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A revoked endpoint's rclone may still remove the folders of its last deletes while
    the hub deletes the dataset: entries gone meanwhile are no error (it was a 500)."""
    import os as os_mod

    store = _disk_store(tmp_path)
    root = tmp_path / "datasets" / "u1"
    for rel in ("v1/d000/a.bin", "v1/d000/b.bin", "v2/x.bin"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"1")
    real_rmdir = os_mod.rmdir

    def racing_rmdir(path: str, *, dir_fd: int | None = None) -> None:
        if path == "d000":  # the other remover got there first
            real_rmdir(path, dir_fd=dir_fd)
        real_rmdir(path, dir_fd=dir_fd)

    monkeypatch.setattr(os_mod, "rmdir", racing_rmdir)
    assert store.delete_prefix("datasets/u1/") == 3
    assert not root.exists()
    monkeypatch.setattr(os_mod, "rmdir", real_rmdir)

    from dshub.hub.storage import _gone_is_fine

    busy = OSError(16, "Device or resource busy")
    with pytest.raises(OSError) as ei:  # any other failure still surfaces
        _gone_is_fine(os_mod.rmdir, "x", (OSError, busy, None))
    assert ei.value is busy
