"""S3 clients and dataframe libraries no one here wrote, against a real hub (local broker).

One hub and one dataset for the module; every client gets its credentials from
``dshub creds`` (``--format env`` / ``--format aws``), read or write, exactly as a user
would paste them. Clients that read their settings once per process (pyarrow's S3, the AWS
CLI, polars' object_store, duckdb) run in a subprocess with that environment and a generous
timeout, so a client that hangs fails the test instead of the suite.

Each test carries ``@pytest.mark.compat(client, operation)``; the session writes the
outcomes to ``build/compat-results.json`` and ``scripts/compat_matrix.py`` renders
docs/compatibility.md from it.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shlex
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, HubFactory, HubProcess
from tests.integration.library_util import publish

pytestmark = pytest.mark.integration

BUCKET = "dshub"
# A parquet file of several row groups, so every reader issues ranged GETs.
ROWS = 60_000


def _parquet_bytes(table: pa.Table, row_group_size: int = 10_000) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


def _trips(n: int, year: int = 2022) -> pa.Table:
    return pa.table(
        {
            "trip_id": pa.array(range(n), pa.int64()),
            "year": pa.array([year] * n, pa.int32()),
            "fare": pa.array([round(3 + (i % 97) * 0.5, 2) for i in range(n)], pa.float64()),
        }
    )


@dataclass
class Creds:
    """What ``dshub creds --format env`` exported, and the parts tests need by name."""

    env: dict[str, str]

    @property
    def endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    @property
    def prefix(self) -> str:  # "dshub/datasets/<uuid>/vN/" → "datasets/<uuid>/vN/"
        path = self.env["_BUCKET_PATH"]
        return path.split("/", 1)[1]

    def boto3(self, read_timeout: int = 60):  # noqa: ANN201 - boto3 has no stubs here
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                read_timeout=read_timeout,
                request_checksum_calculation=self.env["AWS_REQUEST_CHECKSUM_CALCULATION"],
                response_checksum_validation=self.env["AWS_RESPONSE_CHECKSUM_VALIDATION"],
            ),
        )

    def s3fs(self):  # noqa: ANN201
        import s3fs

        return s3fs.S3FileSystem(
            key=self.env["AWS_ACCESS_KEY_ID"],
            secret=self.env["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=self.endpoint,
            client_kwargs={"region_name": self.env["AWS_REGION"]},
            config_kwargs={
                "s3": {"addressing_style": "path"},
                "retries": {"max_attempts": 1},
                # What `dshub creds` exported, as for boto3 above.
                "request_checksum_calculation": self.env["AWS_REQUEST_CHECKSUM_CALCULATION"],
                "response_checksum_validation": self.env["AWS_RESPONSE_CHECKSUM_VALIDATION"],
            },
            skip_instance_cache=True,
        )


def _client_env(creds: Creds, tmp: Path) -> dict[str, str]:
    """A clean environment plus what `dshub creds --format env` printed (not the harness's
    own ``_``-prefixed keys)."""
    return _clean_env(tmp) | {k: v for k, v in creds.env.items() if not k.startswith("_")}


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
    env["HOME"] = str(tmp)  # no ~/.aws of the developer's
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["RCLONE_CONFIG"] = os.devnull
    return env


def dshub_creds(h: HubProcess, token: str, ref: str, tmp: Path, *extra: str) -> Creds:
    """Run ``dshub creds REF --format env`` and evaluate its ``export`` lines like a shell."""
    env = _clean_env(tmp) | {"DSHUB_HUB_URL": h.url, "DSHUB_TOKEN": token, "DSHUB_CONFIG_DIR": str(tmp / "cfg")}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dshub"), "creds", ref, "--format", "env", *extra],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    exported: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            exported[key] = shlex.split(value)[0] if value else ""
        elif line.startswith("# then: rclone ls "):
            exported["_BUCKET_PATH"] = line.split(":", 2)[-1]
    return Creds(exported)


def run_py(code: str, creds: Creds, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet with the credentials' environment (and nothing else of ours)."""
    env = _client_env(creds, tmp)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _aws_exe() -> str | None:
    # awscli pins botocore to other versions than s3fs does: the Makefile gives it a venv
    # of its own (.venv/awscli), as users of both tools also do.
    own = REPO / ".venv" / "awscli" / "bin" / "aws"
    return str(own) if own.exists() else shutil.which("aws")


def aws_cli(args: list[str], creds: Creds, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The AWS CLI with the exported credentials (skips when it is not installed)."""
    exe = _aws_exe()
    if exe is None:
        pytest.skip("the AWS CLI is not installed (make install puts it in .venv/awscli)")
    env = _client_env(creds, tmp)
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout)


# What each client needs beyond the test extra (the compat extra; `make install` has it).
_NEEDS = {"s3fs": ("s3fs",), "polars": ("polars",), "duckdb": ("duckdb", "duckdb_ext"), "dask": ("s3fs",)}


@pytest.fixture(autouse=True)
def _client_installed(request: pytest.FixtureRequest) -> None:
    mark = request.node.get_closest_marker("compat")
    for module in _NEEDS.get(mark.args[0] if mark else "", ()):
        pytest.importorskip(module, reason=f"{module} missing: pip install -e '.[compat]' (make install does)")


@dataclass
class Env:
    hub: HubProcess
    token: str
    read: Creds
    files: dict[str, bytes]
    tmp: Path

    def key(self, rel: str) -> str:
        return self.read.prefix + rel

    def write(self, name: str) -> Creds:
        """Credentials of a fresh upload session of ``alice/<name>``."""
        return dshub_creds(self.hub, self.token, f"alice/{name}", self.tmp, "--write")


@pytest.fixture(scope="module")
def env(module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    h = module_hub()
    token = h.create_user("alice")
    tmp = tmp_path_factory.mktemp("compat")
    files = {
        "data/trips.parquet": _parquet_bytes(_trips(ROWS)),
        "data/trips.csv": b"trip_id,fare\n" + b"".join(f"{i},{i % 50}.5\n".encode() for i in range(1000)),
        "hive/year=2022/part-0.parquet": _parquet_bytes(_trips(1000, 2022).drop(["year"])),
        "hive/year=2023/part-0.parquet": _parquet_bytes(_trips(500, 2023).drop(["year"])),
        "notes/readme.txt": b"hello from dshub\n",
    }
    publish(h.url, token, "alice", "compat", files)
    yield Env(h, token, dshub_creds(h, token, "alice/compat", tmp), files, tmp)


# --- boto3 --------------------------------------------------------------------------------


@pytest.mark.compat("boto3", "list objects")
def test_boto3_list(env: Env) -> None:
    s3 = env.read.boto3()
    got = s3.list_objects_v2(Bucket=BUCKET, Prefix=env.read.prefix)
    keys = sorted(o["Key"][len(env.read.prefix):] for o in got["Contents"])
    assert keys == sorted(env.files)


@pytest.mark.compat("boto3", "ranged get (206)")
def test_boto3_ranged_get_answers_206(env: Env) -> None:
    s3 = env.read.boto3()
    resp = s3.get_object(Bucket=BUCKET, Key=env.key("data/trips.parquet"), Range="bytes=4-1003")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    size = len(env.files["data/trips.parquet"])
    assert resp["ContentRange"] == f"bytes 4-1003/{size}"
    assert resp["Body"].read() == env.files["data/trips.parquet"][4:1004]
    whole = s3.get_object(Bucket=BUCKET, Key=env.key("notes/readme.txt"))
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 200 and whole["Body"].read() == env.files["notes/readme.txt"]


@pytest.mark.compat("boto3", "put + multipart upload (write creds)")
def test_boto3_put_and_multipart(env: Env) -> None:
    w = env.write("boto3-up")
    s3 = w.boto3()
    s3.put_object(Bucket=BUCKET, Key=w.prefix + "small.txt", Body=b"small")
    part = os.urandom(5 * 2**20)
    mp = s3.create_multipart_upload(Bucket=BUCKET, Key=w.prefix + "big.bin")
    etags = []
    for n, body in enumerate((part, b"tail"), start=1):
        r = s3.upload_part(Bucket=BUCKET, Key=w.prefix + "big.bin", UploadId=mp["UploadId"], PartNumber=n, Body=body)
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=BUCKET, Key=w.prefix + "big.bin", UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": etags})
    got = s3.get_object(Bucket=BUCKET, Key=w.prefix + "big.bin")["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(part + b"tail").hexdigest()


@pytest.mark.compat("boto3", "write with read creds → 403")
def test_boto3_write_with_read_creds_is_403(env: Env) -> None:
    from botocore.exceptions import ClientError

    s3 = env.read.boto3()
    for call in (
        lambda: s3.put_object(Bucket=BUCKET, Key=env.key("data/x.txt"), Body=b"nope"),
        lambda: s3.delete_object(Bucket=BUCKET, Key=env.key("data/trips.csv")),
        lambda: s3.create_multipart_upload(Bucket=BUCKET, Key=env.key("data/y.bin")),
    ):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert ei.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.get_object(Bucket=BUCKET, Key=env.key("data/trips.csv"))["Body"].read() == env.files["data/trips.csv"]


def _signed_put_head(creds: Creds, key: str, body_len: int) -> tuple[tuple[str, int], bytes]:
    """A SigV4-signed PUT head with ``Expect: 100-continue`` (body unsigned), as SDKs send it."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    url = f"{creds.endpoint}/{BUCKET}/{key}"
    req = AWSRequest("PUT", url, headers={"Host": creds.endpoint.removeprefix("http://"), "Content-Length": str(body_len), "Expect": "100-continue",
                                          "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(BotoCredentials(creds.env["AWS_ACCESS_KEY_ID"], creds.env["AWS_SECRET_ACCESS_KEY"]),
                "s3", creds.env["AWS_REGION"]).add_auth(req)
    host, port = creds.endpoint.removeprefix("http://").rsplit(":", 1)
    lines = [f"PUT /{BUCKET}/{key} HTTP/1.1"] + [f"{k}: {v}" for k, v in req.headers.items()]
    return (host, int(port)), ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.compat("HTTP", "PUT with Expect: 100-continue on read creds → 403 at once")
def test_read_grant_answers_expect_continue_with_403(env: Env) -> None:
    # The client sends the head and waits for "100 Continue" before any body byte: rclone
    # alone never answered (s3fs waited forever), the gate refuses at once.
    addr, head = _signed_put_head(env.read, env.key("x.bin"), 10 * 2**20)
    answer = b""
    with socket.create_connection(addr, timeout=20) as sock:
        sock.sendall(head)
        while b"</Error>" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"<Code>AccessDenied</Code>" in answer and b"100 Continue" not in answer


@pytest.mark.compat("boto3", "put refused by the server before its body (Expect: 100-continue)")
def test_boto3_put_refused_before_body_gets_an_answer(env: Env) -> None:
    from botocore.exceptions import ClientError

    # rclone answers this key only once the body has arrived, and sends no 100 Continue:
    # the gate must relay the body botocore sends after waiting, not wait for rclone.
    w = env.write("refused-key")
    s3 = w.boto3(read_timeout=20)  # a hang shows as ReadTimeoutError, not as this test's timeout
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=BUCKET, Key=w.prefix + "a/../b.txt", Body=b"x" * 100)
    assert ei.value.response["Error"]["Code"] == "InvalidArgument"


# --- directory markers --------------------------------------------------------------------


@pytest.mark.compat("boto3", "directory marker PUT (key/)")
def test_directory_markers_store_nothing_and_break_nothing(env: Env) -> None:
    from botocore.exceptions import ClientError

    w = env.write("markers")
    s3 = w.boto3()
    s3.put_object(Bucket=BUCKET, Key=w.prefix + "n/x.txt", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=w.prefix + "m/", Body=b"")  # 200, nothing stored
    s3.put_object(Bucket=BUCKET, Key=w.prefix + "m/x.txt", Body=b"below the marker")
    with pytest.raises(ClientError) as ei:  # a "marker" with content is refused, cleanly
        s3.put_object(Bucket=BUCKET, Key=w.prefix + "n/", Body=b"content")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    s3.delete_object(Bucket=BUCKET, Key=w.prefix + "n/")  # deletes nothing
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=w.prefix)
    keys = sorted(o["Key"][len(w.prefix):] for o in listed.get("Contents", []))
    assert keys == ["m/x.txt", "n/x.txt"]
    assert s3.get_object(Bucket=BUCKET, Key=w.prefix + "m/x.txt")["Body"].read() == b"below the marker"


# --- the dshub:// fsspec filesystem -------------------------------------------------------


@pytest.fixture
def dfs(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    from dshub.library.fs import DshubFileSystem

    monkeypatch.setenv("DSHUB_CONFIG_DIR", str(tmp_path / "no-config"))
    return DshubFileSystem(hub_url=env.hub.url, token=env.token, skip_instance_cache=True)


@pytest.mark.compat("fsspec (dshub://)", "owner, folder and root details")
def test_fs_owner_folder_and_root_details(env: Env, dfs) -> None:  # noqa: ANN001
    assert dfs.exists("alice") and dfs.isdir("alice") and not dfs.isfile("alice")
    assert dfs.info("alice")["type"] == "directory"
    assert "alice/compat" in dfs.ls("alice", detail=False)
    assert not dfs.exists("nobody-here")
    listed = {o["name"].rsplit("/", 1)[1]: o for o in dfs.ls("alice/compat")}
    hive = dfs.info("alice/compat/hive")
    assert hive["type"] == "directory" and hive["size"] == listed["hive"]["size"] > 0
    assert hive["size"] == len(env.files["hive/year=2022/part-0.parquet"]) + len(env.files["hive/year=2023/part-0.parquet"])
    found = dfs.find("alice/compat", withdirs=True)
    root = dfs.canonical("alice/compat")
    dirs = {posixpath.dirname(rel) for rel in env.files}
    dirs |= {posixpath.dirname(d) for d in dirs}
    want = {root} | {f"{root}/{rel}" for rel in env.files} | {f"{root}/{d}" for d in dirs if d}
    assert set(found) == want
    with env.hub.client(env.token) as c:
        published = datetime.fromisoformat(c.get("/datasets/alice/compat/versions/latest").json()["created_at"])
    assert dfs.modified("alice/compat/data/trips.csv") == dfs.modified("alice/compat") == published
    with pytest.raises(FileNotFoundError):
        dfs.modified("alice/compat/no-such.csv")


@pytest.mark.compat("fsspec (dshub://)", "writes refused with PermissionError")
def test_fs_writes_are_permission_errors(dfs, tmp_path: Path) -> None:  # noqa: ANN001
    src = "alice/compat/notes/readme.txt"
    for call in (
        lambda: dfs.cp(src, "alice/compat/notes/copy.txt"),
        lambda: dfs.mv(src, "alice/compat/notes/moved.txt"),
        lambda: dfs.makedirs("alice/compat/new-dir"),
        lambda: dfs.mkdir("alice/compat/new-dir"),
        lambda: dfs.rmdir("alice/compat/notes"),
        lambda: dfs.rm(src),
        lambda: dfs.pipe("alice/compat/x.txt", b"x"),
        lambda: dfs.touch("alice/compat/x.txt"),
        lambda: dfs.put(str(tmp_path), "alice/compat/up", recursive=True),
    ):
        with pytest.raises(PermissionError, match="read-only"):
            call()
    assert dfs.cat(src) == b"hello from dshub\n"


@pytest.mark.compat("fsspec (dshub://)", "cat of a folder / missing path: honest errors")
def test_fs_cat_of_folder_or_missing_path(dfs) -> None:  # noqa: ANN001
    with pytest.raises(IsADirectoryError, match="folder"):
        dfs.cat_file("alice/compat/notes")
    with pytest.raises(FileNotFoundError) as ei:
        dfs.cat_file("alice/compat/notes/absent.txt")
    assert "missing in storage" not in str(ei.value)


@pytest.mark.compat("fsspec (dshub://)", "unpinned ref: pinned per instance, invalidate_cache() refreshes")
def test_fs_unpinned_ref_refreshes_on_invalidate(env: Env, dfs) -> None:  # noqa: ANN001
    publish(env.hub.url, env.token, "alice", "moving", {"a.txt": b"one"})
    assert dfs.cat("alice/moving/a.txt") == b"one"
    publish(env.hub.url, env.token, "alice", "moving", {"a.txt": b"two"})
    assert dfs.cat("alice/moving/a.txt") == b"one"  # the same instance stays on what it saw
    assert dfs.cat("alice/moving@v2/a.txt") == b"two"
    dfs.invalidate_cache("alice/moving")
    assert dfs.cat("alice/moving/a.txt") == b"two"
    publish(env.hub.url, env.token, "alice", "moving", {"a.txt": b"three"})
    dfs.invalidate_cache()
    assert dfs.ls("alice/moving", detail=False) == ["alice/moving@v3/a.txt"]


# The scenarios fsspec's abstract tests build with touch/pipe, published once instead.
_SCENARIOS = {
    "fsspec-bulk": ["file1", "file2", "subdir/subfile1", "subdir/subfile2", "subdir/nesteddir/nestedfile"],
    "fsspec-glob": ["file1", "file2"] + [f"subdir{i}/{f}" for i in range(2)
                                         for f in ("subfile1", "subfile2", "nesteddir/nestedfile")],
    "fsspec-prefix": ["subdir.txt", "subdir/subfile.txt"],
}


@pytest.fixture(scope="module")
def scenarios(env: Env) -> dict[str, str]:
    for name, rels in _SCENARIOS.items():
        publish(env.hub.url, env.token, "alice", name, {f"source/{r}": b"" for r in rels})
    hashed = {f"source/{hashlib.md5(str(i).encode()).hexdigest()}.txt": str(i).encode() for i in range(10)}
    publish(env.hub.url, env.token, "alice", "fsspec-hashed", hashed)
    publish(env.hub.url, env.token, "alice", "fsspec-src", {"src/file": b""})
    return {n: f"alice/{n}@v1/source" for n in [*_SCENARIOS, "fsspec-hashed"]}


from fsspec.tests.abstract import AbstractFixtures  # noqa: E402
from fsspec.tests.abstract.get import AbstractGetTests  # noqa: E402


@pytest.mark.compat("fsspec (dshub://)", "fsspec AbstractGetTests")
class TestFsspecAbstractGet(AbstractFixtures, AbstractGetTests):
    """fsspec's own ``get`` tests (the ones that apply to a read-only filesystem)."""

    @pytest.fixture
    def fs(self, dfs):  # noqa: ANN001, ANN201 - fsspec's tests ask for ``fs``
        return dfs

    @pytest.fixture
    def fs_join(self):  # noqa: ANN201
        return lambda *parts: "/".join(p.rstrip("/") for p in parts)

    @pytest.fixture
    def fs_path(self) -> str:
        return "alice/compat@v1"

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, scenarios: dict[str, str]) -> str:
        return scenarios["fsspec-bulk"]

    @pytest.fixture
    def fs_glob_edge_cases_files(self, scenarios: dict[str, str]) -> str:
        return scenarios["fsspec-glob"]

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, scenarios: dict[str, str]) -> str:
        return scenarios["fsspec-prefix"]

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, scenarios: dict[str, str]) -> str:
        return scenarios["fsspec-hashed"]

    def test_get_directory_recursive(self, fs, fs_join, fs_path, local_fs, local_join, local_target,  # noqa: ANN001
                                     scenarios: dict[str, str]) -> None:
        # fsspec's version makes its source with mkdir + touch; here it is published, and
        # those two calls only check that it is there.
        fs.mkdir = lambda path, *a, **k: None
        fs.touch = lambda path, *a, **k: None if fs.isfile(path) else pytest.fail(f"{path} not published")
        super().test_get_directory_recursive(fs, fs_join, "alice/fsspec-src@v1", local_fs, local_join, local_target)


# --- s3fs ---------------------------------------------------------------------------------


@pytest.mark.compat("s3fs", "ls, ranged cat")
def test_s3fs_reads(env: Env) -> None:
    fs = env.read.s3fs()
    root = f"{BUCKET}/{env.read.prefix}"
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(root + "data")) == ["trips.csv", "trips.parquet"]
    assert fs.cat_file(root + "data/trips.parquet", start=10, end=2010) == env.files["data/trips.parquet"][10:2010]
    assert fs.cat(root + "notes/readme.txt") == env.files["notes/readme.txt"]


@pytest.mark.compat("s3fs", "pipe (write creds)")
def test_s3fs_write(env: Env) -> None:
    w = env.write("s3fs-up")
    fs = w.s3fs()
    fs.pipe(f"{BUCKET}/{w.prefix}s3fs/one.txt", b"from s3fs")
    assert fs.cat(f"{BUCKET}/{w.prefix}s3fs/one.txt") == b"from s3fs"


@pytest.mark.compat("s3fs", "pipe with read creds → 403, no hang")
def test_s3fs_refused_write_fails_fast(env: Env) -> None:
    # In a subprocess: before the gate, this call never returned.
    r = run_py(f"""
        import s3fs
        fs = s3fs.S3FileSystem(endpoint_url={env.read.endpoint!r}, config_kwargs={{"retries": {{"max_attempts": 1}}}})
        try:
            fs.pipe("{BUCKET}/{env.key('data/new.bin')}", b"x" * 1_000_000)
        except PermissionError as e:
            print("refused:", e)
        """, env.read, env.tmp, timeout=120)
    assert r.returncode == 0 and "refused: Access Denied" in r.stdout, r.stdout + r.stderr


# --- pyarrow ------------------------------------------------------------------------------


def _pa_fs(creds: Creds):  # noqa: ANN202
    import pyarrow.fs as pafs

    host = creds.endpoint.removeprefix("http://")
    return pafs.S3FileSystem(access_key=creds.env["AWS_ACCESS_KEY_ID"], secret_key=creds.env["AWS_SECRET_ACCESS_KEY"],
                             endpoint_override=host, scheme="http", region=creds.env["AWS_REGION"])


@pytest.mark.compat("pyarrow", "S3FileSystem: read parquet")
def test_pyarrow_reads_parquet(env: Env) -> None:
    t = pq.read_table(f"{BUCKET}/{env.key('data/trips.parquet')}", filesystem=_pa_fs(env.read))
    assert t.num_rows == ROWS and t.column("trip_id").to_pylist()[-1] == ROWS - 1


@pytest.mark.compat("pyarrow", "hive-partitioned dataset")
def test_pyarrow_hive_dataset(env: Env) -> None:
    import pyarrow.dataset as ds

    d = ds.dataset(f"{BUCKET}/{env.key('hive')}", filesystem=_pa_fs(env.read), format="parquet", partitioning="hive")
    t = d.to_table()
    assert t.num_rows == 1500
    assert sorted(set(t.column("year").to_pylist())) == [2022, 2023]
    assert d.to_table(filter=ds.field("year") == 2023).num_rows == 500


@pytest.mark.compat("pyarrow", "write_table + write_to_dataset (write creds)")
def test_pyarrow_writes(env: Env) -> None:
    w = env.write("pyarrow-up")
    # pyarrow's S3 settings are read once per process: a subprocess gets exactly the
    # environment `dshub creds --format env` exported.
    r = run_py(f"""
        import os, pyarrow as pa, pyarrow.fs as pafs, pyarrow.parquet as pq
        s3 = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"].removeprefix("http://"), scheme="http")
        t = pa.table({{"x": list(range(300_000)), "year": [2022, 2023] * 150_000}})
        pq.write_table(t, "{BUCKET}/{w.prefix}pa/table.parquet", filesystem=s3)
        pq.write_to_dataset(t, "{BUCKET}/{w.prefix}pa/by-year", partition_cols=["year"], filesystem=s3)
        print(pq.read_table("{BUCKET}/{w.prefix}pa/table.parquet", filesystem=s3).num_rows)
        """, w, env.tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["300000"]
    keys = [o["Key"][len(w.prefix):] for o in w.boto3().list_objects_v2(Bucket=BUCKET, Prefix=w.prefix)["Contents"]]
    assert "pa/table.parquet" in keys and sum(k.startswith("pa/by-year/year=") for k in keys) == 2, keys


# --- polars -------------------------------------------------------------------------------


@pytest.mark.compat("polars", "read_parquet s3:// (object_store, ranged GETs)")
def test_polars_reads_s3(env: Env) -> None:
    r = run_py(f"""
        import polars as pl
        df = pl.read_parquet("s3://{BUCKET}/{env.key('data/trips.parquet')}")
        print(df.height, df["trip_id"].max())
        lf = pl.scan_parquet("s3://{BUCKET}/{env.key('hive')}/**/*.parquet", hive_partitioning=True)
        print(lf.select(pl.len()).collect().item())
        """, env.read, env.tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == [str(ROWS), str(ROWS - 1), "1500"]


@pytest.mark.compat("polars", "read_parquet of a dshub:// file object (fs.open)")
def test_polars_reads_dshub(env: Env, dfs) -> None:  # noqa: ANN001
    import polars as pl

    # polars takes only its own URL schemes as strings (a dshub:// string is a local path
    # to it); a file object from the fsspec filesystem works, ranged reads included.
    with dfs.open("alice/compat/data/trips.parquet") as f:
        df = pl.read_parquet(f)
    assert df.height == ROWS and df["trip_id"].max() == ROWS - 1
    with dfs.open("alice/compat/data/trips.csv") as f:
        assert pl.read_csv(f).height == 1000


# --- duckdb -------------------------------------------------------------------------------


@pytest.mark.compat("duckdb", "read_parquet via the fsspec filesystem (dshub://)")
def test_duckdb_reads_through_fsspec(env: Env, dfs) -> None:  # noqa: ANN001
    import duckdb

    con = duckdb.connect()
    con.register_filesystem(dfs)
    n = con.sql("select count(*), max(trip_id) from read_parquet('dshub://alice/compat/data/trips.parquet')").fetchone()
    assert n == (ROWS, ROWS - 1)
    assert con.sql("select count(*) from read_csv('dshub://alice/compat/data/trips.csv')").fetchone() == (1000,)
    hive = con.sql("select year, count(*) from read_parquet('dshub://alice/compat/hive/*/*.parquet', "
                   "hive_partitioning=true) group by year order by year").fetchall()
    assert [(int(y), c) for y, c in hive] == [(2022, 1000), (2023, 500)]


@pytest.mark.compat("duckdb", "httpfs: read_parquet s3:// (ranged GETs, glob)")
def test_duckdb_httpfs(env: Env) -> None:
    import duckdb_ext

    ext_dir = Path(duckdb_ext.__path__[0]) / "extensions"
    host = env.read.endpoint.removeprefix("http://")
    r = run_py(f"""
        import duckdb, os
        con = duckdb.connect(config={{"extension_directory": {str(ext_dir)!r}, "autoinstall_known_extensions": False}})
        con.sql("LOAD httpfs")
        con.sql(f"CREATE SECRET (TYPE s3, KEY_ID '{{os.environ['AWS_ACCESS_KEY_ID']}}', "
                f"SECRET '{{os.environ['AWS_SECRET_ACCESS_KEY']}}', ENDPOINT '{host}', URL_STYLE 'path', "
                f"USE_SSL false, REGION '{{os.environ['AWS_REGION']}}')")
        print(*con.sql("select count(*) from read_parquet('s3://{BUCKET}/{env.key('data/trips.parquet')}')").fetchone())
        print(*con.sql("select count(*) from read_parquet('s3://{BUCKET}/{env.key('hive')}/*/*.parquet', "
                       "hive_partitioning=true) where year = 2023").fetchone())
        """, env.read, env.tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == [str(ROWS), "500"], r.stdout + r.stderr[-3000:]


# --- Dask ---------------------------------------------------------------------------------


@pytest.mark.compat("dask", "read_parquet dshub:// + read_csv s3:// (s3fs)")
def test_dask_reads(env: Env) -> None:
    import dask
    import dask.dataframe as dd

    opts = {"hub_url": env.hub.url, "token": env.token}
    with dask.config.set(scheduler="threads"):
        df = dd.read_parquet("dshub://alice/compat/data/trips.parquet", storage_options=opts)
        s3opts = {"key": env.read.env["AWS_ACCESS_KEY_ID"], "secret": env.read.env["AWS_SECRET_ACCESS_KEY"],
                  "endpoint_url": env.read.endpoint, "config_kwargs": {"s3": {"addressing_style": "path"}}}
        csv = dd.read_csv(f"s3://{BUCKET}/{env.key('data/trips.csv')}", storage_options=s3opts)
        rows, top, csv_rows = dask.compute(df.shape[0], df["trip_id"].max(), csv.shape[0])
    assert (rows, int(top), csv_rows) == (ROWS, ROWS - 1, 1000)


# --- the AWS CLI --------------------------------------------------------------------------


@pytest.mark.compat("AWS CLI", "s3 ls, s3 cp down")
def test_aws_cli_reads(env: Env, tmp_path: Path) -> None:
    ls = aws_cli(["s3", "ls", f"s3://{BUCKET}/{env.key('data/')}"], env.read, env.tmp)
    assert ls.returncode == 0, ls.stderr
    assert "trips.parquet" in ls.stdout and "trips.csv" in ls.stdout
    cp = aws_cli(["s3", "cp", f"s3://{BUCKET}/{env.key('data/trips.parquet')}", str(tmp_path / "t.parquet")],
                 env.read, env.tmp)
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "t.parquet").read_bytes() == env.files["data/trips.parquet"]


@pytest.mark.compat("AWS CLI", "s3 cp up, multipart (write creds)")
def test_aws_cli_writes(env: Env, tmp_path: Path) -> None:
    w = env.write("awscli-up")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 2**20))  # above the CLI's 8 MiB multipart threshold
    cp = aws_cli(["s3", "cp", str(big), f"s3://{BUCKET}/{w.prefix}big.bin"], w, env.tmp)
    assert cp.returncode == 0, cp.stderr
    got = w.boto3().get_object(Bucket=BUCKET, Key=w.prefix + "big.bin")["Body"].read()
    assert got == big.read_bytes()


@pytest.mark.compat("AWS CLI", "s3 cp up with read creds → 403, no retries")
def test_aws_cli_refused_write_fails_fast(env: Env, tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"x" * 100_000)
    cp = aws_cli(["s3", "cp", str(f), f"s3://{BUCKET}/{env.key('x.bin')}"], env.read, env.tmp, timeout=120)
    assert cp.returncode != 0
    assert "AccessDenied" in cp.stderr and "InternalError" not in cp.stderr, cp.stderr


# --- rclone -------------------------------------------------------------------------------


def _rclone(args: list[str], creds: Creds, tmp: Path, rclone_bin: str) -> subprocess.CompletedProcess[str]:
    env = _client_env(creds, tmp)
    return subprocess.run([rclone_bin, *args, "--retries", "1", "--low-level-retries", "1"], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.compat("rclone", "ls, cat, copyto up (write creds), refused write")
def test_rclone(env: Env, rclone_bin: str, tmp_path: Path) -> None:
    path = env.read.env["_BUCKET_PATH"]
    ls = _rclone(["ls", f"dshub:{path}"], env.read, env.tmp, rclone_bin)
    assert ls.returncode == 0, ls.stderr
    assert sorted(line.split()[1] for line in ls.stdout.splitlines()) == sorted(env.files)
    cat = _rclone(["cat", f"dshub:{path}notes/readme.txt"], env.read, env.tmp, rclone_bin)
    assert cat.stdout == env.files["notes/readme.txt"].decode()
    src = tmp_path / "up.txt"
    src.write_text("by rclone")
    w = env.write("rclone-up")
    up = _rclone(["copyto", str(src), f"dshub:{w.env['_BUCKET_PATH']}up.txt"], w, env.tmp, rclone_bin)
    assert up.returncode == 0, up.stderr
    denied = _rclone(["copyto", str(src), f"dshub:{path}up.txt"], env.read, env.tmp, rclone_bin)
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
