"""The S3 side: a local dshub hub (the real thing) or a plain ``rclone serve s3`` (fallback).

Every tool-run gets a :class:`Target` — endpoint, bucket, prefix and credentials — from
the same server. With the hub, targets come from ``dshub creds OWNER/NAME --write --format
json`` (an upload session: a fresh dataset per tool-run, so no run can skip another's
data, and each run pays the same fresh-endpoint start-up) or ``dshub creds OWNER/NAME@vN
--format json`` (read grant). The plain server exists so the harness can be developed and
checked without the hub; results from it are labelled as such.

Secrets never go into argv: the hub's token goes to dshub by environment, rclone serve's
key pair by ``RCLONE_AUTH_KEY``, the tools' keys by ``AWS_*``/``RCLONE_CONFIG_*``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit



def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual small race applies)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The harness's environment without anything that could steer a tool differently.

    A developer's AWS profile, RCLONE_* flags or DSHUB_* login must not change what a tool
    does here, so all of them are dropped before the harness adds its own.
    """
    drop = ("AWS_", "RCLONE_", "DSHUB_", "S3_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass(frozen=True)
class Target:
    """Where one tool-run writes or reads: an S3 prefix and credentials valid for it."""

    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    prefix: str  # "" or ends with "/"
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    ref: str | None = None  # OWNER/NAME when the target is a dshub dataset
    version: int | None = None
    # The upload session these credentials belong to (write grants of a dshub hub).
    session_id: str | None = None

    def sub(self, name: str) -> Target:
        """A sub-prefix (the scoped credentials allow anything below the session prefix)."""
        return replace(self, prefix=f"{self.prefix}{name.strip('/')}/")

    def via(self, host: str) -> Target:
        """The same endpoint port on another host (used to route through the counting proxy)."""
        u = urlsplit(self.endpoint)
        return replace(self, endpoint=f"{u.scheme}://{host}:{u.port}")

    @property
    def port(self) -> int:
        return int(urlsplit(self.endpoint).port or 80)

    @property
    def s3_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def rclone_path(self, remote: str = "bench") -> str:
        return f"{remote}:{self.bucket}/{self.prefix}"

    def aws_env(self) -> dict[str, str]:
        """Credentials for aws and s5cmd, by environment only."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def rclone_env(self, remote: str = "bench") -> dict[str, str]:
        """An rclone remote defined by ``RCLONE_CONFIG_<REMOTE>_*`` variables."""
        p = f"RCLONE_CONFIG_{remote.upper()}_"
        env = {
            p + "TYPE": "s3",
            p + "PROVIDER": "Other",
            p + "ENDPOINT": self.endpoint,
            p + "REGION": self.region,
            p + "ACCESS_KEY_ID": self.access_key_id,
            p + "SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            env[p + "SESSION_TOKEN"] = self.session_token
        return env


def target_from_grant(doc: dict, ref: str | None = None) -> Target:
    """Build a Target from ``dshub creds --format json`` (UploadSession or ReadGrant)."""
    loc, cred = doc["location"], doc["credentials"]
    return Target(
        endpoint=loc["endpoint"],
        bucket=loc["bucket"],
        prefix=loc["prefix"],
        region=loc.get("region") or "us-east-1",
        access_key_id=cred["access_key_id"],
        secret_access_key=cred["secret_access_key"],
        session_token=cred.get("session_token"),
        ref=ref,
        version=doc.get("version"),
        session_id=doc.get("id") if "client_key" in doc or "state" in doc else None,
    )


def _wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}; see {log}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {host}:{port} within {timeout:.0f} s; see {log}")


def wait_for_hub(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until the hub at ``url`` answers ``GET /api/v1/info`` with 200; raise
    RuntimeError (with the end of its log) if it exits or does not answer in time."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({proc.returncode}); its log:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the hub did not answer within {timeout:.0f} s; see {log}")


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (from /proc), for the server's share of the CPU."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


class Server:
    """What the workloads need from a server; two implementations below."""

    kind = "abstract"
    owner = "bench"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env: dict[str, str] = {}  # extra environment for dshub commands

    def start(self) -> Server:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def open_session(self, name: str) -> Target:
        """Write credentials for a fresh destination called ``name``."""
        raise NotImplementedError

    def read_grant(self, name: str, version: int | None = None) -> Target:
        """Read credentials for what was published under ``name``."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        """Drop ``name`` and its stored objects (keeps the disk small between runs)."""
        raise NotImplementedError

    def local_dir(self, t: Target) -> Path | None:
        """The folder on this machine holding ``t``'s objects, to verify uploads cheaply."""
        return None

    def cpu_seconds(self) -> float:
        """CPU time used so far by the process(es) serving S3."""
        return 0.0


class PlainServer(Server):
    """``rclone serve s3`` on one folder: one bucket, one key pair, sub-prefixes per run."""

    kind = "rclone-serve-s3"

    def __init__(self, workdir: Path, rclone: str) -> None:
        super().__init__(workdir)
        self.rclone = rclone
        self.root = workdir / "s3"
        self.bucket = "bench"
        self.key = "BENCH" + secrets.token_hex(8).upper()
        self.secret = secrets.token_hex(20)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> PlainServer:
        (self.root / self.bucket).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = clean_env()
        env["RCLONE_AUTH_KEY"] = f"{self.key},{self.secret}"  # env, never argv
        env["RCLONE_CONFIG"] = str(self.workdir / "rclone.conf")
        log = self.workdir / "serve-s3.log"
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [self.rclone, "serve", "s3", "--addr", f"127.0.0.1:{self.port}", str(self.root)],
                stdout=f, stderr=f, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        _wait_port("127.0.0.1", self.port, self.proc, 15, log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _target(self, name: str) -> Target:
        return Target(
            endpoint=f"http://127.0.0.1:{self.port}", bucket=self.bucket, prefix=f"{name}/",
            region="us-east-1", access_key_id=self.key, secret_access_key=self.secret,
        )

    def open_session(self, name: str) -> Target:
        return self._target(name)

    def read_grant(self, name: str, version: int | None = None) -> Target:
        return self._target(name)

    def delete(self, name: str) -> None:
        shutil.rmtree(self.root / self.bucket / name, ignore_errors=True)

    def local_dir(self, t: Target) -> Path | None:
        return self.root / t.bucket / t.prefix

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.proc.pid) if self.proc else 0.0


class HubServer(Server):
    """A real local hub: ``dshub hub serve`` plus a user whose token the tools use."""

    kind = "dshub-hub"

    def __init__(self, workdir: Path, dshub: str, advertise_host: str | None = None) -> None:
        super().__init__(workdir)
        self.dshub = dshub
        self.advertise_host = advertise_host
        self.data_dir = workdir / "hub-data"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._objects_root: Path | None = None

    def start(self) -> HubServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        base = clean_env()
        log = self.workdir / "hub.log"
        argv = [self.dshub, "hub", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.advertise_host:
            argv += ["--s3-advertise-url", f"http://{self.advertise_host}"]
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                argv, stdout=f, stderr=f, stdin=subprocess.DEVNULL, env=base, start_new_session=True
            )
        _wait_port("127.0.0.1", self.port, self.proc, 30, log)
        out = subprocess.run(
            [self.dshub, "hub", "create-user", self.owner, "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, env=base, check=True,
        )
        token = out.stdout.strip().splitlines()[-1].strip()
        config = self.workdir / "dshub-config"
        config.mkdir(exist_ok=True)
        self.env = {
            "DSHUB_HUB_URL": f"http://127.0.0.1:{self.port}",
            "DSHUB_TOKEN": token,
            "DSHUB_CONFIG_DIR": str(config),
            "NO_COLOR": "1",
        }
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the hub stops its rclone rcd itself
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _dshub_json(self, *args: str) -> dict:
        env = {**clean_env(), **self.env}
        out = subprocess.run([self.dshub, *args], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"dshub {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        return json.loads(out.stdout)

    def open_session(self, name: str) -> Target:
        ref = f"{self.owner}/{name}"
        return target_from_grant(self._dshub_json("creds", ref, "--write", "--format", "json"), ref)

    def read_grant(self, name: str, version: int | None = None) -> Target:
        ref = f"{self.owner}/{name}" + (f"@v{version}" if version else "")
        return target_from_grant(self._dshub_json("creds", ref, "--format", "json"), f"{self.owner}/{name}")

    def delete(self, name: str) -> None:
        import httpx  # the project's own dependency; only the harness's housekeeping uses it

        r = httpx.delete(
            f"{self.env['DSHUB_HUB_URL']}/api/v1/datasets/{self.owner}/{name}",
            headers={"Authorization": f"Bearer {self.env['DSHUB_TOKEN']}"},
            timeout=120,
        )
        if r.status_code not in (204, 404):
            raise RuntimeError(f"deleting {name}: HTTP {r.status_code}")

    def delete_versions_after(self, name: str, keep: int) -> None:
        """Delete every committed version of ``name`` numbered above ``keep``."""
        import httpx

        url = f"{self.env['DSHUB_HUB_URL']}/api/v1/datasets/{self.owner}/{name}/versions"
        headers = {"Authorization": f"Bearer {self.env['DSHUB_TOKEN']}"}
        for v in httpx.get(url, headers=headers, timeout=60).json()["items"]:
            if v["version"] > keep:
                r = httpx.delete(f"{url}/{v['version']}", headers=headers, timeout=120)
                if r.status_code not in (204, 404):
                    raise RuntimeError(f"deleting {name}@v{v['version']}: HTTP {r.status_code}")

    def local_dir(self, t: Target) -> Path | None:
        # The local broker keeps objects under the data dir as <...>/<bucket>/<key>; find
        # that root once (by the first prefix that exists) and reuse it.
        if self._objects_root is None:
            for cand in self.data_dir.rglob(t.bucket):
                if (cand / t.prefix).is_dir():
                    self._objects_root = cand.parent
                    break
        return self._objects_root / t.bucket / t.prefix if self._objects_root else None

    def cpu_seconds(self) -> float:
        # The hub process and everything it started (rclone rcd serving every endpoint).
        if self.proc is None:
            return 0.0
        pids, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            todo += _children(p)
        return sum(_proc_cpu_seconds(p) for p in pids)
