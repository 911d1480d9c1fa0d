"""Shared test fixtures: real hub processes and raw rclone against their S3 endpoints.

Fixtures
--------
``hub``          function-scoped factory: ``h = hub("--credential-ttl", "30", env={...})`` starts a real
                 ``dshub hub serve`` subprocess on a free 127.0.0.1 port with a fresh data dir
                 and the given extra arguments; returns a :class:`HubProcess`. Every hub it
                 started is stopped at teardown, and the test fails if an rclone process of
                 that hub is left behind.
``module_hub``   the same factory, module-scoped (share one hub across a test module).
``rclone_bin``   path of the rclone binary ($DSHUB_RCLONE, beside python, or on PATH).
``moto_server``  module-scoped moto server (S3 + STS, no auth enforcement): its endpoint URL.
``pg_server``    session-scoped throwaway PostgreSQL cluster (:mod:`tests.pg_server`); skips
                 with one line when the server binaries are missing.
``hub_db``       which registry the hubs of a test use: "sqlite" unless the module sets
                 ``HUB_DATABASES = ("sqlite", "postgresql")``, which runs each of its tests
                 on both; on PostgreSQL every hub the factories start gets a fresh database
                 (``DSHUB_HUB_DATABASE_URL``, so ``create_user`` & co. use it too).

The hub subprocess gets the test's environment minus ``DSHUB_*``, ``AWS_*`` and
``RCLONE_*`` (plus ``DSHUB_RCLONE`` and what ``env=`` adds), so a developer's settings never
leak into a test.

:class:`HubProcess` has ``.url``, ``.api`` (``.url + "/api/v1"``), ``.data_dir``, ``.port``,
``.create_user(name, admin=False) -> token``, ``.create_token(name) -> token``,
``.client(token=None) -> httpx.Client`` (base URL = api root, bearer token set),
``.stop()`` (SIGTERM, wait, assert clean exit and no rclone left), ``.restart()`` (same data
dir and port), ``.log()`` (its combined stdout/stderr).

Raw rclone: :func:`rclone_env` turns a grant (the JSON of an ``UploadSession`` or
``ReadGrant``, or a Location + Credentials) into environment variables that define the
remote ``dsh:`` (nothing in argv, nothing on disk), and :func:`run_rclone` runs rclone
with them plus ``--s3-no-check-bucket --retries 1 --low-level-retries 1`` so denied
operations fail fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from dshub.models import Credentials, Location
from tests.pg_server import PgServer, find_pg_bin

# Outcomes of the compatibility suite, for docs/compatibility.md.
pytest_plugins = ["tests.compat_results"]

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

# The test run never reads or writes the user's real cache (MD5s of local files, the
# rclone version probe); tests that need their own set DSHUB_CACHE_DIR themselves.
os.environ.setdefault("DSHUB_CACHE_DIR", tempfile.mkdtemp(prefix="dshub-test-cache-"))


# --- rclone -----------------------------------------------------------------------------


def find_rclone_bin() -> str | None:
    """$DSHUB_RCLONE, else rclone beside the interpreter, else on PATH."""
    env = os.environ.get("DSHUB_RCLONE")
    if env:
        return env
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file():
        return str(beside)
    return shutil.which("rclone")


@pytest.fixture(scope="session")
def rclone_bin() -> str:
    """Path of the rclone binary; skips the test when there is none."""
    path = find_rclone_bin()
    if not path:
        pytest.skip("rclone not installed")
    return path


def rclone_env(
    grant: Mapping[str, Any] | None = None,
    *,
    location: Location | None = None,
    credentials: Credentials | None = None,
    remote: str = "dsh",
) -> dict[str, str]:
    """Environment defining rclone remote ``<remote>:`` from a grant's location and credentials."""
    if grant is not None:
        location = Location.model_validate(grant["location"])
        credentials = Credentials.model_validate(grant["credentials"])
    assert location is not None and credentials is not None
    r = f"RCLONE_CONFIG_{remote.upper()}_"
    env = {
        r + "TYPE": "s3",
        r + "PROVIDER": location.provider or "Other",
        r + "ACCESS_KEY_ID": credentials.access_key_id,
        r + "SECRET_ACCESS_KEY": credentials.secret_access_key,
        r + "REGION": location.region,
    }
    if credentials.session_token:
        env[r + "SESSION_TOKEN"] = credentials.session_token
    if location.endpoint:
        env[r + "ENDPOINT"] = location.endpoint
    return env


def run_rclone(
    rclone: str,
    args: list[str],
    grant: Mapping[str, Any] | None = None,
    *,
    location: Location | None = None,
    credentials: Credentials | None = None,
    timeout: float = 60,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``rclone ARGS`` with remote ``dsh:`` from the environment; never raises on failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env["RCLONE_CONFIG"] = os.devnull  # never read a user's rclone.conf
    env.update(rclone_env(grant, location=location, credentials=credentials))
    cmd = [rclone, *args, "--s3-no-check-bucket", "--retries", "1", "--low-level-retries", "1",
           "--contimeout", "5s", "--timeout", "20s"]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout, input=input)


# --- hub processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rclone_pids_of(data_dir: Path) -> list[int]:
    """pids of rclone processes whose command line mentions ``data_dir`` (the local broker's)."""
    marker = str(data_dir)
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or b"rclone" not in Path(argv[0].decode(errors="replace")).name.encode():
            continue
        if any(marker in a.decode(errors="replace") for a in argv):
            found.append(int(entry.name))
    return found


def _wait_no_rclone(data_dir: Path, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = rclone_pids_of(data_dir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


class HubProcess:
    """A real ``dshub hub serve`` subprocess (see the module docstring)."""

    def __init__(
        self, data_dir: Path, extra_args: list[str], rclone: str | None, env: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.rclone = rclone
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
        if self.rclone:
            env["DSHUB_RCLONE"] = self.rclone
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def _cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "dshub.cli.main", "hub", *args, "--data-dir", str(self.data_dir)],
            env=self._env(), capture_output=True, text=True, timeout=60,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"dshub hub {args[0]} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def start(self) -> HubProcess:
        """Start the server and wait until ``GET /api/v1/info`` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self._log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dshub.cli.main", "hub", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra_args],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.api}/info", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"hub did not answer within {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def create_user(self, name: str, admin: bool = False) -> str:
        """Create a user with ``dshub hub create-user``; return its token (last stdout line)."""
        res = self._cli("create-user", name, *(["--admin"] if admin else []))
        return res.stdout.strip().splitlines()[-1]

    def create_token(self, name: str) -> str:
        return self._cli("create-token", name).stdout.strip().splitlines()[-1]

    def revoke_token(self, token_or_id: str) -> subprocess.CompletedProcess[str]:
        return self._cli("revoke-token", token_or_id, check=False)

    def client(self, token: str | None = None, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, wait; assert a clean exit and that no rclone of this hub is left."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"hub did not stop on SIGTERM:\n{self.log()[-3000:]}")
        assert proc.returncode == 0, f"hub exited with {proc.returncode}:\n{self.log()[-3000:]}"
        left = _wait_no_rclone(self.data_dir)
        assert not left, f"rclone processes left behind by the hub: {left}"

    def restart(self) -> HubProcess:
        """Stop (SIGTERM) and start again with the same data dir and port."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Hard stop for teardown: SIGKILL the hub's process group and its rclone children."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None
        for pid in rclone_pids_of(self.data_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class HubFactory:
    """Callable that starts hubs and cleans them all up in :meth:`close`."""

    def __init__(self, base: Path, rclone: str | None, pg: PgServer | None = None) -> None:
        self._base = base
        self._rclone = rclone
        self._pg = pg
        self._hubs: list[HubProcess] = []

    def __call__(self, *extra_args: str, env: Mapping[str, str] | None = None) -> HubProcess:
        """Start a hub with extra ``dshub hub serve`` arguments and extra environment variables."""
        env = dict(env or {})
        if self._pg is not None and "DSHUB_HUB_DATABASE_URL" not in env:
            env["DSHUB_HUB_DATABASE_URL"] = self._pg.create_database()
        h = HubProcess(self._base / f"hub{len(self._hubs)}", list(extra_args), self._rclone, env)
        self._hubs.append(h)
        return h.start()

    def close(self) -> None:
        errors: list[str] = []
        for h in self._hubs:
            try:
                h.stop()
            except AssertionError as e:
                errors.append(str(e))
            finally:
                h.kill()
            left = rclone_pids_of(h.data_dir)
            if left:
                errors.append(f"rclone left behind: {left}")
        if errors:
            pytest.fail("\n".join(errors))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL cluster for the whole run (see tests/pg_server.py)."""
    bindir = find_pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; `make test` does it as root)")
    server = PgServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only modules that ask are parametrised: the others keep their test ids unchanged.
    kinds = getattr(metafunc.module, "HUB_DATABASES", None)
    if kinds and "hub_db" in metafunc.fixturenames:
        metafunc.parametrize("hub_db", list(kinds), indirect=True, scope="module")


@pytest.fixture(scope="module")
def hub_db(request: pytest.FixtureRequest) -> PgServer | None:
    """None for SQLite (the hub's default), else the PostgreSQL server hubs get databases on."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return None
    assert kind == "postgresql", kind
    return request.getfixturevalue("pg_server")


@pytest.fixture
def hub(tmp_path: Path, hub_db: PgServer | None) -> Iterator[HubFactory]:
    """Start real hub processes: ``h = hub(*extra_serve_args)``; all stopped at teardown."""
    factory = HubFactory(tmp_path, find_rclone_bin(), hub_db)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_hub(tmp_path_factory: pytest.TempPathFactory, hub_db: PgServer | None) -> Iterator[HubFactory]:
    """Like ``hub`` but shared by a test module."""
    factory = HubFactory(tmp_path_factory.mktemp("hubs"), find_rclone_bin(), hub_db)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server (S3, STS, …) on a free loopback port; yields its endpoint URL."""
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.skip("moto[server] not installed")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
