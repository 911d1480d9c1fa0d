"""Workload G: a new version of a dataset in which a few files changed.

Set-up (untimed except dshub's first upload): the data set is copied to a working folder
and dshub publishes it as v1 — that upload is timed, it is the "own first upload" the
target compares with. Then a few files are renamed and a few deleted, once. Each round
rewrites ~1 % of the files with fresh bytes (same sizes) and writes ~1 % new ones, so
every round has the same amount of new content, and every tool uploads that same state:

* dshub: ``dshub upload`` of the folder to its dataset (v1 on the hub; the previous
  round's new version deleted first, so each round carries from v1 only). Its digest
  cache is the one its v1 upload left, as on the machine that uploaded v1.
* ``aws s3 sync`` and tuned rclone, each to a new prefix (``v2-<round>/``): what a user of
  plain S3 does for an immutable new version.
* tuned rclone with ``--copy-dest <v1 prefix>``: rclone's own server-side carry (by path
  and modification time — renamed files are sent again). ``--size-only`` is dropped for it:
  with it, a rewritten file of the same size would be copied from v1, old bytes and all.

Bytes on the wire are counted for dshub in one more run on the counting hub (whose
endpoints are advertised on the proxy's address): S3 request bodies at the grant's
endpoint plus request bodies to the hub's API (the manifests). Store growth is the bytes
of new inodes in the hub's store after the run (hard links count once), from the disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks import datagen
from benchmarks.config import Shape
from benchmarks.peers import Toolbox
from benchmarks.proxy import CountingProxy
from benchmarks.results import Sample
from benchmarks.runner import run
from benchmarks.servers import HubServer, Target
from benchmarks.tools import RCLONE_TUNED_UPLOAD, Cmd, Dshub, Rclone, Tool
from benchmarks.workloads import PROXY_HOST, Bench

WL = "G_versions"


@dataclass(frozen=True)
class Changes:
    """Which files of the shape change between v1 and v2 (indices into its file list)."""

    rewritten: tuple[int, ...]
    renamed: tuple[int, ...]
    deleted: tuple[int, ...]
    new: int

    @classmethod
    def of(cls, shape: Shape) -> Changes:
        one_pct = max(1, shape.count // 100)
        few = max(1, shape.count // 200)
        step = shape.count // (one_pct + 2 * few) or 1
        picks = [i * step for i in range(one_pct + 2 * few)]
        return cls(tuple(picks[:one_pct]), tuple(picks[one_pct:one_pct + few]),
                    tuple(picks[one_pct + few:]), one_pct)

    def changed_bytes(self, shape: Shape) -> int:
        return (len(self.rewritten) + self.new) * shape.size


class CopyDest(Rclone):
    """Tuned rclone writing the new version with ``--copy-dest`` at the previous one."""

    def __init__(self, tb: Toolbox, previous: Target) -> None:
        flags = [f for f in RCLONE_TUNED_UPLOAD if f != "--size-only"]
        super().__init__(tb, "rclone-copy-dest", "rclone --copy-dest v1 (tuned)",
                         [*flags, "--copy-dest", previous.rclone_path()], [])


def _unique_bytes(root: Path) -> int:
    """Bytes of the files below ``root``, each inode once (hard links share their bytes)."""
    seen: set[int] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def _digest(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


class VersionsWorkload:
    """Runs G inside a :class:`Bench` (its servers, tools, samples and log)."""

    def __init__(self, bench: Bench, shape: Shape) -> None:
        self.b = bench
        self.shape = shape
        self.changes = Changes.of(shape)
        self.src = bench.workdir / "g-data"
        self.paths = datagen.file_paths(shape, self.src)
        self.changed = self.changes.changed_bytes(shape)
        self.datasets: list[str] = []  # on the timed hub: deleted at the end

    def _dataset(self, tool: str) -> str:
        name = self.b._name("g", tool)
        self.datasets.append(name)
        return name

    # --- the folder ------------------------------------------------------------------------

    def _prepare_v1(self) -> None:
        shutil.copytree(datagen.ensure(self.shape), self.src, copy_function=shutil.copy2)

    def _make_v2_layout(self) -> None:
        """Renames and deletes: once, they do not change between rounds."""
        for i in self.changes.renamed:
            self.paths[i].rename(self.paths[i].with_name(f"renamed-{self.paths[i].name}"))
        for i in self.changes.deleted:
            self.paths[i].unlink()

    def _new_content(self) -> dict[Path, str]:
        """Fresh bytes for the rewritten files and the new ones; their MD5s by path."""
        out: dict[Path, str] = {}
        new_dir = self.src / "new"
        new_dir.mkdir(exist_ok=True)
        targets = [self.paths[i] for i in self.changes.rewritten]
        targets += [new_dir / f"n{k:04d}.bin" for k in range(self.changes.new)]
        for p in targets:
            p.unlink(missing_ok=True)  # a new inode, as an editor's save makes
            data = os.urandom(self.shape.size)
            p.write_bytes(data)
            out[p] = hashlib.md5(data).hexdigest()
        return out

    def _expected(self) -> tuple[int, int]:
        return datagen.tree_bytes(self.src)

    # --- checks ----------------------------------------------------------------------------

    def _check(self, where: Path | None, fresh: dict[Path, str]) -> str | None:
        if where is None or not where.is_dir():
            return "cannot find the uploaded objects on disk"
        got, want = datagen.tree_bytes(where), self._expected()
        if got != want:
            return f"stored {got[0]} files / {got[1]} B, want {want[0]} / {want[1]}"
        for p, md5 in fresh.items():
            stored = where / p.relative_to(self.src)
            if not stored.is_file() or _digest(stored) != md5:
                return f"{p.relative_to(self.src)} holds other bytes than the new version's"
        return None

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        b, shape = self.b, self.shape
        if b.dshub is None:
            return
        b.log(f"G: new version of {shape.count} × {shape.size} B: {len(self.changes.rewritten)} rewritten, "
              f"{self.changes.new} new, {len(self.changes.renamed)} renamed, {len(self.changes.deleted)} deleted; "
              f"{b.mode.runs} run(s)")
        self._prepare_v1()
        datagen.warm(self.src)
        b._warm_hub()
        b.extra_tools.append(_FIRST)
        name = self._dataset("dshub")
        cache = b._cache_env("g-" + name)
        first = b.dshub.upload(self.src, b._dest(b.server, b.dshub, name))
        first.env.update(cache)
        res, scpu = b._timed(b.server, first, b._logfile(WL, "dshub-first"))
        err = None if not res.ok else self._check(b.server.local_dir(b.server.read_grant(name)), {})
        b._record(WL, _FIRST, 0, res, scpu, err, shape)
        if err is not None:
            return
        peers = self._peer_destinations()
        counted = self._counted_v1()
        self._make_v2_layout()
        dataset_dir = b.server.local_dir(b.server.read_grant(name))
        assert dataset_dir is not None
        dataset_dir = dataset_dir.parent  # datasets/<uuid>/
        for r in range(b.mode.runs):
            fresh = self._new_content()
            order: list[Tool] = [b.dshub, *peers]
            if r % 2:
                order.reverse()
            for tool in order:
                if tool is b.dshub:
                    self._dshub_round(name, cache, dataset_dir, fresh, r)
                else:
                    self._peer_round(tool, peers[tool], fresh, r)
        if counted is not None:
            self._counted_v2(*counted)
        for n in self.datasets:
            b.server.delete(n)

    def _peer_destinations(self) -> dict[Tool, Target]:
        """One session per peer; the copy-dest peer's v1 filled by tuned rclone (untimed)."""
        b = self.b
        by_name = {t.name: t for t in b.peers}
        dests: dict[Tool, Target] = {}
        tuned = by_name.get("rclone-tuned")
        if tuned is not None:
            t = b.server.open_session(self._dataset("copy-dest"))
            previous = t.sub("v1")
            res = setup_run(tuned.upload(self.src, previous), b._logfile(WL, "copy-dest-setup"))
            if res is None:
                copy_dest = CopyDest(b.tb, previous)
                b.extra_tools.append(copy_dest)
                dests[copy_dest] = t
            else:
                b.log(f"  copy-dest set-up failed: {res}")
        for key in ("aws", "rclone-tuned"):
            if key in by_name:
                dests[by_name[key]] = b.server.open_session(self._dataset(key))
        return dests

    def _dshub_round(self, name: str, cache: dict[str, str], dataset_dir: Path, fresh: dict[Path, str], r: int) -> None:
        b = self.b
        assert b.dshub is not None and isinstance(b.server, HubServer)
        b.server.delete_versions_after(name, 1)
        before = _unique_bytes(dataset_dir)
        cmd = b.dshub.upload(self.src, b._dest(b.server, b.dshub, name))
        cmd.env.update(cache)
        res, scpu = b._timed(b.server, cmd, b._logfile(WL, "dshub"))
        err = None
        growth = None
        if res.ok:
            grant = b.server.read_grant(name)
            err = self._check(b.server.local_dir(grant), fresh)
            growth = _unique_bytes(dataset_dir) - before
        b._record(WL, b.dshub, r, res, scpu, err, self.shape, changed_bytes=self.changed, growth_bytes=growth)

    def _peer_round(self, tool: Tool, t: Target, fresh: dict[Path, str], r: int) -> None:
        b = self.b
        dest = t.sub(f"v2-{r}")
        cmd = tool.rerun(self.src, dest) if tool.name == "aws" else tool.upload(self.src, dest)
        res, scpu = b._timed(b.server, cmd, b._logfile(WL, tool.name))
        where = b.server.local_dir(dest)
        err = None if not res.ok else self._check(where, fresh)
        growth = _unique_bytes(where) if where is not None and where.is_dir() else None
        b._record(WL, tool, r, res, scpu, err, self.shape, changed_bytes=self.changed, growth_bytes=growth)
        if where is not None:
            shutil.rmtree(where, ignore_errors=True)

    # --- bytes on the wire (counting hub) ------------------------------------------------------

    def _counted_v1(self) -> tuple[str, dict[str, str]] | None:
        """dshub's v1 on the counting hub, through its proxy (untimed)."""
        b = self.b
        server = b.counter
        if not isinstance(server, HubServer) or b.dshub is None:
            return None
        name = b._name("g", "dshub-counted")
        cache = b._cache_env("g-" + name)
        t = server.open_session(name)
        tool = Dshub(b.tb, server.env)
        with CountingProxy((PROXY_HOST, t.port), ("127.0.0.1", t.port)):
            cmd = tool.upload(self.src, t)
            cmd.env.update(cache)
            res = setup_run(cmd, b._logfile(WL, "dshub-counted-v1"))
        if res is not None:
            b.log(f"  counted v1 failed: {res}")
            return None
        return name, cache

    def _counted_v2(self, name: str, cache: dict[str, str]) -> None:
        b = self.b
        server = b.counter
        assert isinstance(server, HubServer)
        t = server.open_session(name)
        hub_proxy = CountingProxy((PROXY_HOST, server.port), ("127.0.0.1", server.port)).start()
        env = {**server.env, "DSHUB_HUB_URL": f"http://{PROXY_HOST}:{server.port}"}
        try:
            with CountingProxy((PROXY_HOST, t.port), ("127.0.0.1", t.port)) as p:
                cmd = Dshub(b.tb, env).upload(self.src, t)
                cmd.env.update(cache)
                res = setup_run(cmd, b._logfile(WL, "dshub-counted-v2"))
                s3 = p.snapshot()
            api = hub_proxy.snapshot()
        finally:
            hub_proxy.stop()
        wire = s3.request_body_bytes + api.request_body_bytes
        b.samples.append(Sample(
            workload=WL, tool="dshub", seconds=0.0, ok=res is None, error=res, run=-1,
            requests=s3.requests + api.requests,
            by_kind={**{f"s3 {k}": v for k, v in s3.by_kind.items()}, "hub api": api.requests},
            extra={"wire_bytes": wire, "wire_s3_bytes": s3.request_body_bytes,
                   "wire_hub_api_bytes": api.request_body_bytes, "changed_bytes": self.changed},
        ))
        b.log(f"  {WL:<17} dshub counted: {wire} B on the wire ({s3.request_body_bytes} to S3, "
              f"{api.request_body_bytes} to the hub) for {self.changed} B changed")
        server.delete(name)


class _First(Tool):
    name, label, kind = "dshub-first", "dshub, first upload (v1)", "dshub-first"


_FIRST = _First()


def setup_run(cmd: Cmd, log: Path) -> str | None:
    """Run an untimed set-up command; its error, or None."""
    res = run(cmd, log)
    return None if res.ok else (res.error() or "failed")
