"""Helpers for the transfer integration tests: run the real `dshub` CLI against a real hub."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import HubProcess

DSHUB = [sys.executable, "-m", "dshub.cli.main"]


@dataclass
class User:
    hub: HubProcess
    name: str
    token: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
        env.update(
            DSHUB_HUB_URL=self.hub.url,
            DSHUB_TOKEN=self.token,
            DSHUB_CONFIG_DIR=str(self.home),
            DSHUB_CACHE_DIR=str(self.home / "cache"),
            PYTHONUNBUFFERED="1",
            NO_COLOR="1",
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*DSHUB, *args], env=env or self.env(), capture_output=True, timeout=timeout, **kw
        )

    def run_json(self, *args: str, **kw: Any) -> dict[str, Any]:
        r = self.run(*args, "--json", **kw)
        assert r.returncode == 0, (
            f"dshub {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
        )
        return json.loads(r.stdout)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*DSHUB, *args],
            env=env or self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def api(self) -> Any:
        return self.hub.client(self.token)


def new_user(hub: HubProcess, name: str, tmp: Path) -> User:
    home = tmp / f"home-{name}"
    home.mkdir(parents=True, exist_ok=True)
    return User(hub, name, hub.create_user(name), home)


def kill_while_uploading(user: User, *args: str, after: float = 0.0) -> None:
    """Run ``dshub ARGS``, and kill -9 it ``after`` seconds once rclone started sending."""
    import time

    proc = user.popen(*args)
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Uploading" in line:
            break
    time.sleep(after)
    proc.kill()
    proc.wait(timeout=30)


def tree_digest(root: Path) -> dict[bytes, str]:
    """Relative path (raw bytes: NFC and NFD must stay distinct) → md5 of content."""
    out: dict[bytes, str] = {}
    broot = os.fsencode(root)
    for dirpath, _dirs, files in os.walk(broot):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                continue
            rel = os.path.relpath(p, broot)
            out[rel] = hashlib.md5(Path(os.fsdecode(p)).read_bytes()).hexdigest()
    return out


def copied(log: Path) -> list[str]:
    """Files rclone reported as sent (``Copied …``) in a DSHUB_RCLONE_LOG file."""
    if not log.exists():
        return []
    names = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        msg = str(obj.get("msg", "")).removeprefix("Multi-thread ")  # above rclone's multi-thread cutoff
        if obj.get("level") == "info" and msg.startswith("Copied") and obj.get("object"):
            names.append(obj["object"])
    return names


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def child_rclones(pid: int) -> list[int]:
    """pids of rclone processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and cmd.endswith(b"rclone"):
            found.append(int(entry.name))
    return found


def rclones_mentioning(marker: str) -> list[int]:
    """pids of rclone processes with ``marker`` in their argv (orphan detection)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"rclone") and any(marker.encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def iter_lines(stream: Any) -> Iterator[str]:
    for raw in stream:
        yield raw.decode("utf-8", "replace")
