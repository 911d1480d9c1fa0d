"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temp folder.

``PgServer.start()`` runs ``initdb`` and ``pg_ctl start`` from ``/usr/lib/postgresql/*/bin``
(or ``$DSHUB_TEST_PG_BIN``) with the data directory and the unix socket in a fresh temp
folder outside the checkout, listening on 127.0.0.1 on a free port, trust auth on
loopback only. Run as root, the cluster belongs to the ``postgres`` user (initdb refuses
root) and the folder is handed to it; the checkout is never read by that user, so it may
sit in a folder only root can enter. ``create_database()`` gives each hub its own database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb (or $DSHUB_TEST_PG_BIN)."""
    env = os.environ.get("DSHUB_TEST_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One cluster; ``url(db)`` is a ``postgresql://`` URL (the form the README shows)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="dshub-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # cwd "/": the postgres user may not be allowed into the test's working directory.
        res = subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=timeout,
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
        if res.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
        return res

    def start(self) -> PgServer:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        # Durability buys nothing in a throwaway cluster; these make it ~3x quicker to write.
        opts = (f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", opts, "-w",
                  "-t", "60", "start")
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"hub_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            self._started = False
            shutil.rmtree(self.root, ignore_errors=True)
