"""The Python library against a real hub and its real S3 endpoints (issue 7).

One hub for the module (local broker: every read grant is its own ``rclone serve s3``
endpoint). Shown here: the lazy tree touches only the listing pages it needs (20,000
files), ranged reads return the right bytes, pandas and Dask (2 worker processes, token
via storage_options, no login) get the same numbers as from the local copy, and another
user's private dataset gives a one-line not-found error and no data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import blake3
import pandas as pd
import pytest

import dshub
from dshub.errors import NotFoundError, PathNotFoundError
from dshub.library.fs import DshubFileSystem
from dshub.library.tree import FileRef, Folder
from dshub.models import ManifestEntry, Visibility
from tests.conftest import REPO, HubFactory, HubProcess
from tests.integration.library_util import CountingTransport, make_csvs, publish

pytestmark = pytest.mark.integration

N_FLAT = 15_000
N_DIRS, N_PER_DIR = 10, 500  # + 5,000 = 20,000 files


@dataclass
class Env:
    hub: HubProcess
    alice: str
    bob: str
    taxi_dir: Path
    taxi_rels: list[str]
    blob: bytes


def _many_files(vdir: Path) -> list[ManifestEntry]:
    """20,000 small files straight on the broker's disk: flat/ (15,000) and d00..d09 (500 each)."""
    entries = []
    rels = [f"flat/f{i:05d}.txt" for i in range(N_FLAT)]
    rels += [f"d{d:02d}/f{i:04d}.txt" for d in range(N_DIRS) for i in range(N_PER_DIR)]
    for rel in rels:
        data = rel.encode()
        p = vdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        entries.append(ManifestEntry(path=rel, size=len(data), md5=hashlib.md5(data).hexdigest()))
    return entries


@pytest.fixture(scope="module")
def env(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    h = module_hub()
    alice, bob = h.create_user("alice"), h.create_user("bob")
    taxi = tmp_path_factory.mktemp("taxi")
    rels = make_csvs(taxi)
    publish(h.url, alice, "alice", "taxi-data", {r: (taxi / r).read_bytes() for r in rels})
    blob = random.Random(1).randbytes(3 * 2**20 + 12345)
    publish(h.url, alice, "alice", "blobs", {"bin/blob.bin": blob, "small.txt": b"hello\n"})
    publish(h.url, alice, "alice", "many", data_dir=h.data_dir, disk_writer=_many_files)
    yield Env(h, alice, bob, taxi, rels, blob)


@pytest.fixture(autouse=True)
def _no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Nothing may come from a stored login or the caller's environment.
    monkeypatch.setenv("DSHUB_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.delenv("DSHUB_TOKEN", raising=False)
    monkeypatch.delenv("DSHUB_HUB_URL", raising=False)


def _local_monthly(env: Env) -> pd.Series:
    df = pd.concat([pd.read_csv(env.taxi_dir / r, parse_dates=["tpep_pickup_datetime"]) for r in env.taxi_rels])
    return df.groupby(df.tpep_pickup_datetime.dt.to_period("M")).fare_amount.mean().sort_index()


# --- the lazy tree ----------------------------------------------------------------------


def test_tree_of_20000_files_fetches_only_the_pages_it_needs(env: Env) -> None:
    t = CountingTransport()
    c = dshub.Client(hub_url=env.hub.url, token=env.alice, transport=t)

    ds = c.dataset("alice/many@v1")
    assert t.count == 0, "opening a tree fetches nothing"

    files = ds.files()
    first = [next(files) for _ in range(1500)]
    assert [f.path for f in first[:2]] == ["d00/f0000.txt", "d00/f0001.txt"]
    assert len(t.file_requests()) == 2, "1,500 files = two pages of 1,000"
    assert t.count == 2

    t.reset()
    folder = ds["flat"]
    assert isinstance(folder, Folder) and t.count == 1
    f = ds["flat/f00007.txt"]
    assert isinstance(f, FileRef) and t.count == 2
    assert (f.size, f.md5) == (len(b"flat/f00007.txt"), hashlib.md5(b"flat/f00007.txt").hexdigest())
    assert folder["f00008.txt"].path == "flat/f00008.txt"
    assert t.count == 3, "size/md5 come from the listing; each lookup is one request of one entry"
    assert all(q["limit"] == ["1"] for q in t.file_requests())

    t.reset()
    text = repr(ds)
    assert t.count == 2, "repr = the version's totals + one page"
    assert text.splitlines()[0] == "alice/many@v1  (20000 files, 290.0 kB)"
    assert "├── d00/  (500 files" in text and "flat/  (15000 files" in text
    assert t.file_requests()[0]["limit"] == ["20"]

    t.reset()
    tree = folder.tree(limit=5)
    assert tree.splitlines()[1:] == [
        "├── f00000.txt  15 B", "├── f00001.txt  15 B", "├── f00002.txt  15 B",
        "├── f00003.txt  15 B", "├── f00004.txt  15 B", "└── …  (more entries: iterate, or .ls() for all)",
    ]
    assert t.count == 1 and t.file_requests()[0]["limit"] == ["5"]

    t.reset()
    top = ds.ls()
    assert [e.name for e in top] == [f"d{d:02d}" for d in range(N_DIRS)] + ["flat"]
    assert [e.file_count for e in top] == [N_PER_DIR] * N_DIRS + [N_FLAT]
    assert t.count == 1

    t.reset()
    assert sum(1 for _ in ds["d03"].files()) == N_PER_DIR and t.count == 2  # lookup + one page
    t.reset()
    assert sum(1 for _ in ds.files()) == 20_000
    reqs = t.file_requests()
    assert len(reqs) == 20 and t.count == 20, "paged: 20 requests of 1,000, nothing else"
    assert all(q["limit"] == ["1000"] and q["recursive"] == ["true"] for q in reqs)
    assert not any(p.endswith("/manifest") for _, p, _ in t.requests)


def test_tree_resolves_latest_once_and_missing_paths_are_clear(env: Env) -> None:
    t = CountingTransport()
    c = dshub.Client(hub_url=env.hub.url, token=env.alice, transport=t)
    ds = dshub.open_dataset("alice/blobs", client=c)
    assert t.count == 0
    assert ds.version == 1 and t.count == 1
    assert ds.version == 1 and t.count == 1
    assert ds["small.txt"].url == "dshub://alice/blobs@v1/small.txt"
    with pytest.raises(PathNotFoundError) as ei:
        ds["nope/x.csv"]
    assert isinstance(ei.value, FileNotFoundError) and isinstance(ei.value, NotFoundError)
    assert "'nope/x.csv'" in str(ei.value) and "\n" not in str(ei.value)
    assert "small.txt" in ds and "nope" not in ds


# --- ranged reads -----------------------------------------------------------------------


def test_ranged_reads_return_the_right_bytes(env: Env, tmp_path: Path) -> None:
    c = dshub.Client(hub_url=env.hub.url, token=env.alice)
    ref = c.dataset("alice/blobs@v1")["bin/blob.bin"]
    assert isinstance(ref, FileRef)
    src = env.blob
    assert ref.size == len(src) and ref.md5 == hashlib.md5(src).hexdigest()
    assert ref.blake3 == blake3.blake3(src).hexdigest()
    rng = random.Random(42)
    with ref.open("rb", block_size=64 * 1024) as fh:
        assert fh.seekable()
        for _ in range(60):
            off = rng.randrange(0, len(src))
            n = rng.choice([1, 17, 4096, 65_536, 200_000])
            fh.seek(off)
            assert fh.read(n) == src[off:off + n], (off, n)
            assert fh.tell() == min(off + n, len(src))
        fh.seek(-10, 2)
        assert fh.read() == src[-10:]
        assert fh.read(5) == b""
    fs = c.fs
    for _ in range(20):
        a = rng.randrange(0, len(src))
        b = a + rng.randrange(0, 300_000)
        assert fs.cat_file("alice/blobs@v1/bin/blob.bin", a, b) == src[a:b]
    assert fs.cat_file("dshub://alice/blobs/bin/blob.bin", start=-100) == src[-100:]
    assert ref.read_bytes() == src
    out = ref.download(tmp_path)
    assert Path(out) == tmp_path / "blob.bin" and Path(out).read_bytes() == src
    assert not list(tmp_path.glob(".dshub-*")), "no temporary file left behind"
    # A version committed without hashes gets the hub's own, both checked on download.
    old = c.dataset("alice/many@v1")["flat/f00007.txt"]
    assert old.blake3 and old.md5
    assert Path(old.download(tmp_path)).read_bytes() == b"flat/f00007.txt"


def test_fsspec_listing_and_glob_pin_the_version(env: Env) -> None:
    fs = DshubFileSystem(hub_url=env.hub.url, token=env.alice, skip_instance_cache=True)
    names = fs.glob("dshub://alice/taxi-data/*/*.csv")
    assert names == [f"alice/taxi-data@v1/{r}" for r in sorted(env.taxi_rels)]
    assert fs.glob("alice/taxi-data/**/02.csv") == ["alice/taxi-data@v1/2022/02.csv", "alice/taxi-data@v1/2023/02.csv"]
    assert fs.ls("alice/taxi-data", detail=False) == ["alice/taxi-data@v1/2022", "alice/taxi-data@v1/2023"]
    info = fs.info("dshub://alice/taxi-data/2022/01.csv")
    assert info["type"] == "file" and info["size"] == (env.taxi_dir / "2022/01.csv").stat().st_size
    assert fs.isdir("alice/taxi-data/2022") and not fs.exists("alice/taxi-data/2024")
    assert sorted(fs.ls("alice", detail=False)) == ["alice/blobs", "alice/many", "alice/taxi-data"]

    # A new version published now does not change what this filesystem reads.
    data = {r: (env.taxi_dir / r).read_bytes() for r in env.taxi_rels[:1]}
    publish(env.hub.url, env.alice, "alice", "taxi-data", {"2024/01.csv": data[env.taxi_rels[0]]})
    assert not fs.exists("alice/taxi-data/2024/01.csv")
    fresh = DshubFileSystem(hub_url=env.hub.url, token=env.alice, skip_instance_cache=True)
    assert fresh.exists("alice/taxi-data/2024/01.csv")
    assert fresh.canonical("alice/taxi-data/2024/01.csv") == "alice/taxi-data@v2/2024/01.csv"

    # Pickles carry the options and the pins, never clients or S3 keys.
    fs.cat_file("alice/taxi-data/2022/01.csv", 0, 10)
    blob = pickle.dumps(fs)
    grant = fs._grant_cache().get(fs.hub, "alice", "taxi-data", 1).grant
    assert grant.credentials.secret_access_key.encode() not in blob
    assert grant.credentials.access_key_id.encode() not in blob
    back = pickle.loads(blob)
    assert back._pins == {("alice", "taxi-data"): 1}
    assert env.alice not in repr(fs) and env.alice not in repr(c := dshub.Client(hub_url=env.hub.url, token=env.alice))
    assert env.alice not in repr(c.dataset("alice/blobs@v1"))


# --- pandas and Dask --------------------------------------------------------------------


def test_pandas_reads_like_the_local_copy_with_env_token(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHUB_HUB_URL", env.hub.url)
    monkeypatch.setenv("DSHUB_TOKEN", env.alice)
    for rel in env.taxi_rels[:2]:
        remote = pd.read_csv(f"dshub://alice/taxi-data@v1/{rel}")
        pd.testing.assert_frame_equal(remote, pd.read_csv(env.taxi_dir / rel))


def _example() -> ModuleType:
    """examples/taxi_dask.py, imported by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("taxi_dask_example", REPO / "examples" / "taxi_dask.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dask_on_two_worker_processes_matches_local(env: Env) -> None:
    """The example's computation on a 2-process LocalCluster equals pandas on the local files."""
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    expected = _local_monthly(env)
    c = dshub.Client(hub_url=env.hub.url, token=env.alice)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            DaskClient(cluster) as dc:
        # The workers have no login and no DSHUB_* variable naming a hub or a token (only
        # the test run's config and cache folders): the token travels in the pickle.
        env_seen = dc.run(lambda: sorted(k for k in __import__("os").environ if k.startswith("DSHUB_")))
        assert all(set(v) <= {"DSHUB_CONFIG_DIR", "DSHUB_CACHE_DIR"} for v in env_seen.values()), env_seen
        lazy = _example().monthly_fares("alice/taxi-data@v1", c)
        assert lazy.npartitions >= 1
        got = lazy.compute().sort_index()
        grants = dc.run(lambda: len(__import__("dshub.library.fs", fromlist=["x"])._CACHES))
    pd.testing.assert_series_equal(got, expected, check_names=False, check_index=False)
    assert list(got.index.astype(str)) == list(expected.index.astype(str))
    assert any(n >= 1 for n in grants.values()), "the workers read with their own read grants"


# --- another user's private dataset -----------------------------------------------------


def test_private_dataset_of_another_user_is_not_found(env: Env) -> None:
    bob = dshub.Client(hub_url=env.hub.url, token=env.bob)
    ds = bob.dataset("alice/taxi-data")
    with pytest.raises(NotFoundError) as ei:
        ds.files().__next__()
    msg = str(ei.value)
    assert "alice/taxi-data" in msg and "\n" not in msg and env.bob not in msg
    with pytest.raises(NotFoundError):
        bob.creds("alice/taxi-data")
    with pytest.raises(FileNotFoundError) as fe:
        pd.read_csv("dshub://alice/taxi-data@v1/2022/01.csv", storage_options={"hub_url": env.hub.url, "token": env.bob})
    assert "alice/taxi-data@v1" in str(fe.value) and "\n" not in str(fe.value)
    fs = DshubFileSystem(hub_url=env.hub.url, token=env.bob, skip_instance_cache=True)
    with pytest.raises(FileNotFoundError):
        fs.cat_file("alice/taxi-data@v1/2022/01.csv")
    assert fs.glob("alice/blobs@v1/*") == []


def test_public_dataset_is_readable_by_others(env: Env) -> None:
    publish(env.hub.url, env.alice, "alice", "open-data", {"a.txt": b"public bytes"}, visibility=Visibility.public)
    bob = dshub.Client(hub_url=env.hub.url, token=env.bob)
    assert bob.dataset("alice/open-data")["a.txt"].read_bytes() == b"public bytes"


# --- the CLI's operations through dshub.Client ------------------------------------------


def test_client_operations_and_transfers(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client wraps the hub API and the transfer engine (upload/download with rclone)."""
    from tests.conftest import find_rclone_bin

    rclone = find_rclone_bin()
    if not rclone:
        pytest.skip("rclone not installed")
    monkeypatch.setenv("DSHUB_RCLONE", rclone)
    c = dshub.Client(hub_url=env.hub.url, token=env.alice)
    events: list[object] = []
    up = c.upload(env.taxi_dir, "copy-of-taxi", description="taxi copy", on_event=events.append)
    assert (up.status, up.ref, up.files) == ("committed", "alice/copy-of-taxi@v1", len(env.taxi_rels))
    assert events, "progress goes to the callback"
    assert c.get_dataset("copy-of-taxi").description == "taxi copy"
    assert c.update_dataset("copy-of-taxi", tags=["taxi"]).tags == ["taxi"]
    assert [v.version for v in c.list_versions("copy-of-taxi")] == [1]
    assert [e.path for e in c.list_files("copy-of-taxi:2022")] == [r for r in env.taxi_rels if r.startswith("2022/")]
    assert "alice/copy-of-taxi" in [d.full_name for d in c.list_datasets(owner="alice")]
    down = c.download("copy-of-taxi@v1", tmp_path / "out")
    assert down.fetched_files == len(env.taxi_rels)
    for r in env.taxi_rels:
        assert (tmp_path / "out" / r).read_bytes() == (env.taxi_dir / r).read_bytes()
    grant = c.creds("copy-of-taxi")
    assert grant.version == 1 and grant.credentials.secret_access_key not in repr(grant)
    c.delete_dataset("copy-of-taxi")
    with pytest.raises(NotFoundError):
        c.get_dataset("copy-of-taxi")
