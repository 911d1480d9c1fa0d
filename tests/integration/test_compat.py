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
import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import HubFactory, HubProcess
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

    def boto3(self):  # noqa: ANN201 - boto3 has no stubs here
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
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            },
            skip_instance_cache=True,
        )


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
    env = _clean_env(tmp) | {k: v for k, v in creds.env.items() if not k.startswith("_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def aws_cli(args: list[str], creds: Creds, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The AWS CLI (awscli from PyPI, in this environment) with the exported credentials."""
    env = _clean_env(tmp) | {k: v for k, v in creds.env.items() if not k.startswith("_")}
    return subprocess.run([sys.executable, "-m", "awscli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


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
    assert root in found and f"{root}/hive/year=2022" in found
    assert dfs.find("alice/compat", withdirs=True) == sorted(dfs.find("alice/compat", withdirs=True))
    assert dfs.modified("alice/compat/data/trips.csv") == dfs.modified("alice/compat")
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
    def fs(self, env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
        from dshub.library.fs import DshubFileSystem

        monkeypatch.setenv("DSHUB_CONFIG_DIR", str(tmp_path / "no-config"))
        return DshubFileSystem(hub_url=env.hub.url, token=env.token, skip_instance_cache=True)

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
