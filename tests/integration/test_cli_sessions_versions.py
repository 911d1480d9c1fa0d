"""`dshub sessions`, `dshub abort`, `dshub info` with an open session, and `dshub rm REF@vN`.

A real hub (`dshub hub serve`, local broker), real rclone, the real `dshub` command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dshub.models import SessionList, UploadSession, Version


class Cli:
    def __init__(self, hub: Any, token: str, tmp: Path, rclone: str) -> None:
        self.hub, self.token, self.tmp, self.rclone = hub, token, tmp, rclone

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSHUB_", "AWS_", "RCLONE_"))}
        env.update(DSHUB_CONFIG_DIR=str(self.tmp / "cfg"), DSHUB_HUB_URL=self.hub.url, DSHUB_TOKEN=self.token,
                   PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", DSHUB_RCLONE=self.rclone,
                   HOME=str(self.tmp))
        env.update(extra)
        return env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dshub.cli.main", *args], env=self.env(**env),
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        res = self.run(*args, **env)
        assert res.returncode == 0, f"dshub {' '.join(args)} → {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "--json", **env).stdout)

    def upload(self, name: str, files: dict[str, bytes]) -> int:
        src = self.tmp / f"src-{name}-{len(list(self.tmp.glob('src-*')))}"
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        return int(self.json("upload", str(src), name)["version"])


@pytest.fixture(scope="module")
def cli(module_hub, tmp_path_factory, rclone_bin) -> Cli:
    h = module_hub()
    c = Cli(h, h.create_user("alice"), tmp_path_factory.mktemp("sess"), rclone_bin)
    c.bob = h.create_user("bob")  # type: ignore[attr-defined]
    return c


def version_dirs(cli: Cli, dataset_id: str) -> list[str]:
    root = next(cli.hub.data_dir.rglob(f"datasets/{dataset_id}"), None)
    # Only the versions' folders (beside them: sessions' staging areas).
    return sorted(p.name for p in root.iterdir() if p.name.startswith("v")) if root else []


def test_rm_one_version(cli: Cli) -> None:
    for i in (1, 2, 3):
        assert cli.upload("vers", {"a.txt": f"v{i} a".encode(), f"only{i}.txt": b"x" * i}) == i
    ds_id = cli.json("info", "vers")["dataset"]["id"]
    assert version_dirs(cli, ds_id) == ["v1", "v2", "v3"]

    res = cli.run("rm", "vers@v2")  # no terminal, no --yes: refused, nothing deleted
    assert res.returncode == 2 and "--yes" in res.stderr
    gone = Version.model_validate(cli.json("rm", "alice/vers@v2", "--yes"))
    assert gone.version == 2
    info = cli.json("info", "vers")
    assert [v["version"] for v in info["versions"]] == [3, 1] and info["dataset"]["latest_version"] == 3
    assert version_dirs(cli, ds_id) == ["v1", "v3"]  # its stored objects are gone
    # Readers of the other versions are unaffected; the deleted one is not found.
    assert cli.ok("cat", "vers@v1:a.txt").stdout == "v1 a"
    assert cli.ok("cat", "vers@v3:only3.txt").stdout == "xxx"
    assert cli.run("cat", "vers@v2:a.txt").returncode == 4
    assert cli.run("rm", "vers@v2", "--yes").returncode == 4

    # Someone else cannot delete a version: not found while private, refused once public.
    bob = cli.bob  # type: ignore[attr-defined]
    assert cli.run("rm", "alice/vers@v1", "--yes", DSHUB_TOKEN=bob).returncode == 4
    cli.ok("edit", "vers", "--public")
    res = cli.run("rm", "alice/vers@v1", "--yes", DSHUB_TOKEN=bob)
    assert res.returncode == 1 and "permission denied" in res.stderr
    assert cli.ok("cat", "alice/vers@v1:a.txt", DSHUB_TOKEN=bob).stdout == "v1 a"

    # Deleting the latest: the newest remaining one is the latest; numbers are never reused.
    assert cli.json("rm", "vers@latest", "--yes")["version"] == 3
    assert cli.json("info", "vers")["dataset"]["latest_version"] == 1
    assert cli.ok("cat", "vers:a.txt").stdout == "v1 a"
    assert cli.upload("vers", {"a.txt": b"v4 a"}) == 4
    assert version_dirs(cli, ds_id) == ["v1", "v4"]


def open_session_with_files(cli: Cli, name: str, files: dict[str, bytes]) -> UploadSession:
    """An open upload session holding ``files``, sent by rclone with `dshub creds --write` credentials."""
    sess = UploadSession.model_validate(cli.json("creds", name, "--write"))
    env_text = cli.ok("creds", name, "--write", "--format", "env").stdout
    env_vars = dict(line.removeprefix("export ").split("=", 1) for line in env_text.splitlines() if "=" in line)
    env_vars = {k: v.strip("'\"") for k, v in env_vars.items()}
    src = cli.tmp / f"partial-{name}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dest = f"dshub:{sess.location.bucket}/{sess.location.prefix.strip('/')}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(env_vars, RCLONE_CONFIG=os.devnull)
    up = subprocess.run([cli.rclone, "copy", str(src), dest], env=env, capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    return sess


def test_sessions_info_and_abort(cli: Cli) -> None:
    assert SessionList.model_validate(cli.json("sessions")).items == []
    assert "No open upload sessions" in cli.ok("sessions").stderr
    cli.upload("half", {"done.txt": b"v1"})
    sess = open_session_with_files(cli, "half", {"a.bin": b"a" * 1000, "sub/b.bin": b"b" * 500})
    other = open_session_with_files(cli, "other", {"c.bin": b"c"})

    listed = SessionList.model_validate(cli.json("sessions")).items
    assert {(s.name, s.version) for s in listed} == {("half", None), ("other", None)}  # numbered at commit
    mine = next(s for s in listed if s.id == sess.id)
    assert (mine.stored_files, mine.stored_bytes) == (2, 1500) and mine.credentials is None
    only = SessionList.model_validate(cli.json("sessions", "half")).items
    assert [s.id for s in only] == [sess.id]
    table = cli.ok("sessions").stdout
    row = next(ln for ln in table.splitlines() if "alice/half" in ln and sess.id in ln)
    assert sess.id in row and "2 files, 1.5 kB" in row and "0h 0" in row

    info = cli.ok("info", "half").stdout
    assert "Open upload sessions" in info and sess.id in info
    assert cli.json("info", "half")["sessions"][0]["id"] == sess.id
    assert "Open upload sessions" not in cli.ok("info", "vers").stdout

    res = cli.run("abort", "half")  # off a terminal without --yes: refused, nothing dropped
    assert res.returncode == 2 and "--yes" in res.stderr
    assert len(SessionList.model_validate(cli.json("sessions")).items) == 2
    aborted = UploadSession.model_validate(cli.json("abort", "half", "--yes"))
    assert aborted.id == sess.id
    left = SessionList.model_validate(cli.json("sessions")).items
    assert [s.id for s in left] == [other.id]
    assert "Aborted upload session" in cli.ok("abort", other.id, "--yes").stderr  # by id
    assert SessionList.model_validate(cli.json("sessions")).items == []

    res = cli.run("abort", "half", "--yes")
    assert res.returncode == 4 and "no open upload session" in res.stderr and "dshub sessions" in res.stderr
    res = cli.run("abort", sess.id, "--yes")
    assert res.returncode == 4 and f"upload session {sess.id} is aborted, not open" in res.stderr
    # The aborted session's objects are gone; the next upload publishes v2 with only its own files.
    assert cli.upload("half", {"new.txt": b"n"}) == 2
    assert cli.run("cat", "half@v2:a.bin").returncode == 4
    assert cli.run("abort", sess.id, "--yes", DSHUB_TOKEN=cli.bob).returncode == 4  # type: ignore[attr-defined]
