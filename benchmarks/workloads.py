"""The workloads A–F: set up untimed, run every tool in alternating order (reversed every other round), verify, record.

Rules kept everywhere (issue 6): same data, same server, same conditions for all tools;
each tool-run writes to a fresh destination (its own dataset and upload session, so no
run can skip another's data and every run pays the same fresh-endpoint start-up); every
upload and download is verified (file count and bytes) before its time counts; data is
deleted after each run so the disk and page cache look the same for the next tool.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import datagen
from benchmarks.config import Mode, Shape
from benchmarks.peers import Toolbox
from benchmarks.proxy import CountingProxy
from benchmarks.results import RCLONE_SAME_FLAGS, Sample
from benchmarks.runner import RunResult, run
from benchmarks.servers import HubServer, Server, Target
from benchmarks.tools import Cmd, CopyFloor, Dshub, Rclone, Tool, peer_tools

PROXY_HOST = "127.0.0.2"  # the counting proxy listens here, in front of 127.0.0.1:<same port>


# --- rclone with dshub's own flags --------------------------------------------------------


class RcloneRecorder:
    """Learn which rclone command lines dshub runs, by pointing ``DSHUB_RCLONE`` at a wrapper.

    The wrapper (a two-line shell script: append argv to a file, ``exec`` the real rclone)
    costs one ``sh`` start per rclone call, about a millisecond. dshub keeps secrets out of
    argv, so the file holds none.
    """

    def __init__(self, workdir: Path, rclone: str) -> None:
        self.log = workdir / "dshub-rclone-argv.log"
        self.script = workdir / "rclone-recorder.sh"
        self.script.write_text(
            "#!/bin/sh\n"
            f'{{ for a in "$@"; do printf "%s\\037" "$a"; done; printf "\\036"; }} >> "{self.log}"\n'
            f'exec "{rclone}" "$@"\n'
        )
        self.script.chmod(0o755)

    def env(self) -> dict[str, str]:
        self.log.unlink(missing_ok=True)
        return {"DSHUB_RCLONE": str(self.script)}

    def calls(self) -> list[list[str]]:
        try:
            raw = self.log.read_text()
        except OSError:
            return []
        return [rec.split("\x1f")[:-1] for rec in raw.split("\x1e") if rec]

    def copy_flags(self) -> list[str] | None:
        """Flags of the (first) ``rclone copy`` dshub ran, without its file list.

        A record is rclone's argv without the program: ``copy SRC DST FLAGS…``.
        """
        for argv in self.calls():
            if len(argv) > 3 and argv[0] == "copy":
                flags, skip = [], False
                for a in argv[3:]:
                    if skip:
                        skip = False
                    elif a in ("--files-from-raw", "--files-from"):
                        skip = True  # dshub's list of missing files: all of them here
                    else:
                        flags.append(a)
                return flags
        return None


class RcloneAsDshub(Rclone):
    """Raw rclone with exactly the flags dshub used in the same round (learned by recording)."""

    def __init__(self, tb: Toolbox) -> None:
        super().__init__(tb, RCLONE_SAME_FLAGS, "rclone (dshub's flags)", [], [], kind="rclone-same-flags")
        self.learned = False

    def learn(self, up: list[str] | None = None, down: list[str] | None = None) -> None:
        if up is not None:
            self.up_flags, self.learned = up, True
        if down is not None:
            self.down_flags, self.learned = down, True


def _settled_sizes(root: Path, quiet: float = 1.0, limit: float = 15.0) -> dict[str, int]:
    """Sizes of the stored files once they have not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    last = datagen.tree_sizes(root)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = datagen.tree_sizes(root)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            break
    return last


# --- the bench ------------------------------------------------------------------------------


class Bench:
    """Holds the servers, the tools and the samples of one benchmark run."""

    def __init__(self, mode: Mode, tb: Toolbox, server: Server, counter: Server | None, workdir: Path,
                 with_dshub: bool, log: Callable[[str], None] = print) -> None:
        self.mode, self.tb, self.server, self.counter = mode, tb, server, counter
        self.workdir, self.log = workdir, log
        self.samples: list[Sample] = []
        self.notes: list[str] = []
        self.peers = peer_tools(tb)
        self.floor = CopyFloor()
        self.dshub = Dshub(tb, server.env) if with_dshub else None
        self.recorder = RcloneRecorder(workdir, tb.rclone) if with_dshub else None
        self.as_dshub = RcloneAsDshub(tb) if with_dshub else None
        self._seq = 0
        # Tools of one workload only (G's first upload and rclone --copy-dest, H's one-object
        # dshub): named in the report, and never taken for a peer by their default kind.
        self.extra_tools: list[Tool] = []
        self._hub_warm = False
        self._published: dict[str, str] = {}  # shape name -> dataset a timed dshub upload published

    # --- helpers ------------------------------------------------------------------------

    def _tools(self) -> list[Tool]:
        tools: list[Tool] = [*self.peers, self.floor, *self.extra_tools]
        return tools + [t for t in (self.dshub, self.as_dshub) if t is not None]

    def kinds(self) -> dict[str, str]:
        return {t.name: t.kind for t in self._tools()}

    def labels(self) -> dict[str, str]:
        return {t.name: t.label for t in self._tools()}

    def _name(self, wl: str, tool: str) -> str:
        self._seq += 1
        return f"{wl}-{tool}-{self._seq}".lower()

    def _logfile(self, wl: str, tool: str) -> Path:
        return self.workdir / "logs" / f"{self._seq:04d}-{wl}-{tool}.log"

    def _dest(self, server: Server, tool: Tool, name: str) -> Target:
        if tool.uses_target:
            return server.open_session(name)
        # dshub resolves (creates) the dataset and opens its session itself: that is part
        # of what a user waits for, so it is inside the timed run.
        return Target("", "", "", "", "", "", ref=f"{server.owner}/{name}")

    def _cache_env(self, tag: str) -> dict[str, str]:
        """dshub's cache folder (digests of local files, the rclone version probe) for a run.

        Timed uploads and downloads get an empty one each, as on a machine that never saw
        the data: with one shared cache, dshub would skip hashing the files it uploaded
        in the previous round (and previous benchmark runs), which no first upload can.
        Re-runs (C, F) keep the cache of the upload they repeat, as a user's machine does.
        """
        d = self.workdir / "dshub-cache" / tag
        d.mkdir(parents=True, exist_ok=True)
        return {"DSHUB_CACHE_DIR": str(d)}

    def _timed(self, server: Server, cmd: Cmd, log: Path, **kw) -> tuple[RunResult, float]:
        cpu0 = server.cpu_seconds()
        res = run(cmd, log, **kw)
        return res, server.cpu_seconds() - cpu0

    def _upload_tools(self, round_: int = 0) -> list[Tool]:
        """The tools of one round of A, B or D, in that round's order.

        Even rounds run forwards, odd rounds backwards (A B C, C B A, A B C): with one fixed
        order every tool always ran right after the same other one (dshub after `cp -r`,
        which leaves a GiB of fresh page cache and file-system work behind) and paid or
        gained from it every round; a rotation would not help (it keeps the neighbours).
        dshub and rclone-as-dshub stay a pair, dshub first, so the replay uses the flags
        dshub ran in the same round.
        """
        pair = [t for t in (self.dshub, self.as_dshub) if t is not None]
        units: list[list[Tool]] = [u for u in (pair, *[[p] for p in self.peers], [self.floor]) if u]
        if round_ % 2:
            units.reverse()
        return [t for u in units for t in u]

    def _verify_remote(self, server: Server, tool: Tool, t: Target, name: str, shape: Shape) -> str | None:
        if tool.uses_target:
            where = server.local_dir(t)
        else:
            where = server.local_dir(server.read_grant(name))
        if where is None:
            return "cannot find the uploaded objects on disk"
        sizes = datagen.tree_sizes(where)
        got = (len(sizes), sum(sizes.values()))
        if got == (shape.count, shape.total):
            return None
        want = {str(p.relative_to(datagen.ensure(shape))) for p in datagen.file_paths(shape, datagen.ensure(shape))}
        odd = sorted(set(sizes) - want)[:3]
        return (f"uploaded {got[0]} files / {got[1]} B, want {shape.count} / {shape.total}"
                + (f"; unexpected: {', '.join(odd)}" if odd else ""))

    @staticmethod
    def _verify_local(dst: Path, shape: Shape) -> str | None:
        got = datagen.tree_bytes(dst) if dst.exists() else (0, 0)
        return None if got == (shape.count, shape.total) else f"downloaded {got[0]} files / {got[1]} B, want {shape.count} / {shape.total}"

    def _record(self, wl: str, tool: Tool, r: int, res: RunResult, server_cpu: float, err: str | None,
                shape: Shape | None, **extra) -> Sample:
        err = res.error() or err
        s = Sample(
            workload=wl, tool=tool.name, seconds=res.seconds, ok=err is None, error=err, run=r,
            bytes=shape.total if shape else None, files=shape.count if shape else None,
            client_cpu=res.cpu, server_cpu=server_cpu, client_peak_rss=res.peak_rss,
            client_rss_floor=res.rss_floor, extra=extra,
        )
        self.samples.append(s)
        self.log(f"  {wl:<17} {tool.name:<16} run {r}: {res.seconds:7.2f} s"
                 f"{'' if s.ok else '  FAILED: ' + (err or '')}")
        return s

    # --- A, B: uploads --------------------------------------------------------------------

    def _warm_hub(self) -> None:
        """One untimed `dshub upload` of a one-file folder before the first timed upload.

        A new hub's first session, endpoint and commit pay one-time costs (first queries,
        code paths run once); without this, dshub — first in round 0 — paid them inside its
        timed run (A's run 0: 9.5 s against 7.0 and 7.5), while every peer's session was
        opened untimed after it.
        """
        if self._hub_warm or self.dshub is None:
            return
        self._hub_warm = True
        src = self.workdir / "warm-up" / "one-file"
        src.mkdir(parents=True, exist_ok=True)
        (src / "f.bin").write_bytes(b"warm-up")
        name = self._name("warm", "hub")
        cmd = self.dshub.upload(src, self._dest(self.server, self.dshub, name))
        cmd.env.update(self._cache_env(name))
        res = run(cmd, self._logfile("warm-up", "dshub"))
        if not res.ok:
            self.log(f"  hub warm-up failed: {res.error()}")
        self.server.delete(name)

    def _warm_reads(self, wl: str, grant: Target, shape: Shape) -> None:
        """One untimed read of every published object through the read grant's endpoint.

        The first reads through a new endpoint cost more (measured with plain rclone on a
        1 GiB version: 3.8 s, then 3.1 and 2.8 s); whoever came first in round 0 — dshub —
        paid it for everyone. Tuned rclone reads it once here, into a folder then deleted.
        """
        warm = next((p for p in self.peers if p.name == "rclone-tuned"), self.peers[0])
        dst = self.workdir / "warm-up" / wl
        res = run(warm.download(grant, dst), self._logfile(wl, "warm-up"))
        if not res.ok or self._verify_local(dst, shape) is not None:
            self.log(f"  read warm-up failed: {res.error() or self._verify_local(dst, shape)}")
        shutil.rmtree(dst, ignore_errors=True)

    def uploads(self, wl: str, shape: Shape) -> None:
        src = datagen.ensure(shape)
        self.log(f"{wl}: upload {shape.count} × {shape.size} B, {self.mode.runs} run(s)")
        datagen.warm(src)
        self._warm_hub()
        for r in range(self.mode.runs):
            for tool in self._upload_tools(r):
                self._upload_once(wl, tool, src, shape, r)

    def _upload_once(self, wl: str, tool: Tool, src: Path, shape: Shape, r: int) -> None:
        name = self._name(wl[0], tool.name)
        log = self._logfile(wl, tool.name)
        if isinstance(tool, CopyFloor):
            dst = self.workdir / "floor" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            res, scpu = self._timed(self.server, tool.copy(src, dst), log)
            self._record(wl, tool, r, res, 0.0, self._verify_local(dst, shape), shape)
            shutil.rmtree(dst, ignore_errors=True)
            return
        if isinstance(tool, RcloneAsDshub) and not tool.learned:
            return  # dshub's flags unknown (dshub failed before running rclone)
        t = self._dest(self.server, tool, name)
        cmd = tool.upload(src, t)
        if isinstance(tool, Dshub):
            cmd.env.update(self._cache_env(name))
            if self.recorder is not None:
                cmd.env.update(self.recorder.env())
        res, scpu = self._timed(self.server, cmd, log)
        err = None if not res.ok else self._verify_remote(self.server, tool, t, name, shape)
        self._record(wl, tool, r, res, scpu, err, shape)
        if isinstance(tool, Dshub) and self.recorder is not None and self.as_dshub is not None:
            self.as_dshub.learn(up=self.recorder.copy_flags())
        if isinstance(tool, Dshub) and err is None and shape.name not in self._published:
            # A version dshub published and the check above found complete: D reads it
            # instead of uploading the same data again (~10-20 s of set-up per shape).
            self._published[shape.name] = name
            return
        self.server.delete(name)

    # --- D: downloads ---------------------------------------------------------------------

    def downloads(self, wl: str, shape: Shape) -> None:
        src = datagen.ensure(shape)
        self.log(f"{wl}: download {shape.count} × {shape.size} B, {self.mode.runs} run(s)")
        # Every tool reads the same published version: one a timed `dshub upload` of A or B
        # left (and verified), else the data published here.
        name = self._published.pop(shape.name, None)
        if name is None:
            name = self._name("d-src", shape.name)
            setup = self.dshub or self.peers[1]
            t = self._dest(self.server, setup, name)
            cmd = setup.upload(src, t)
            cmd.env.update(self._cache_env(name))
            res = run(cmd, self._logfile(wl, "setup"))
            if not res.ok:
                self.log(f"  setup failed: {res.error()}")
                return
        grant = self.server.read_grant(name)
        self._warm_reads(wl, grant, shape)
        for r in range(self.mode.runs):
            for tool in self._upload_tools(r):
                dst = self.workdir / "down" / self._name(wl, tool.name)
                log = self._logfile(wl, tool.name)
                if isinstance(tool, CopyFloor):
                    res, scpu = self._timed(self.server, tool.copy(src, dst), log)
                elif isinstance(tool, RcloneAsDshub) and not tool.learned:
                    continue
                else:
                    cmd = tool.download(grant, dst)
                    if isinstance(tool, Dshub):
                        cmd.env.update(self._cache_env(dst.name))
                        if self.recorder is not None:
                            cmd.env.update(self.recorder.env())
                    res, scpu = self._timed(self.server, cmd, log)
                    if isinstance(tool, Dshub) and self.recorder is not None and self.as_dshub is not None:
                        self.as_dshub.learn(down=self.recorder.copy_flags())
                self._record(wl, tool, r, res, scpu, self._verify_local(dst, shape), shape)
                shutil.rmtree(dst, ignore_errors=True)
        self.server.delete(name)

    # --- C: no-op re-run --------------------------------------------------------------------

    def _noop_tools(self) -> list[Tool]:
        return [t for t in (self.dshub, *self.peers) if t is not None]

    def noop(self, wl: str = "C_noop") -> None:
        shape = self.mode.noop
        src = datagen.ensure(shape)
        self.log(f"{wl}: no-op re-run over {shape.count} files, {self.mode.runs} timed run(s) + 1 counted")
        # Set-up (untimed): dshub publishes the files with its own upload (its no-op compares
        # with the published version); every peer gets its own destination, filled by the
        # fastest uploader here (tuned rclone) instead of by the peer itself — the objects
        # are the same, and this saved ~90 s of the 15-minute budget (aws alone took ~50 s
        # to upload 10,000 files). The source's whole-second mtimes (datagen) make objects
        # stored by rclone look exactly as old as the files to aws and s5cmd; the counted
        # run below shows any tool that re-sends anything (its PUTs).
        # Only the first peer destination is uploaded; the others get a copy of its stored
        # files on the server's disk (same bytes, same mtimes: what the S3 listing shows is
        # identical), which saved ~20 s more.
        filler = next((t for t in self.peers if t.name == "rclone-tuned"), None)
        filled: Path | None = None
        dests: dict[str, tuple[Target, str]] = {}
        for tool in self._noop_tools():
            name = self._name("c", tool.name)
            t = self._dest(self.server, tool, name)
            where = self.server.local_dir(t) if tool.uses_target else None
            if filled is not None and where is not None:
                shutil.copytree(filled, where, dirs_exist_ok=True)  # copy2: mtimes kept
                if datagen.tree_bytes(where) == (shape.count, shape.total):
                    dests[tool.name] = (t, name)
                    continue
            cmd = (filler or tool).upload(src, t) if tool.uses_target else tool.upload(src, t)
            if isinstance(tool, Dshub):
                cmd.env.update(self._cache_env("c"))
            res = run(cmd, self._logfile(wl, tool.name + "-setup"))
            if not res.ok:
                self.log(f"  setup of {tool.name} failed: {res.error()}")
                continue
            dests[tool.name] = (t, name)
            where = where or (self.server.local_dir(t) if tool.uses_target else None)
            if where is not None and filled is None and datagen.tree_bytes(where) == (shape.count, shape.total):
                filled = where
        for r in range(self.mode.runs):
            for tool in self._noop_tools():
                if tool.name not in dests:
                    continue
                t, name = dests[tool.name]
                cmd = tool.rerun(src, t)
                if isinstance(tool, Dshub):
                    cmd.env.update(self._cache_env("c"))
                res, scpu = self._timed(self.server, cmd, self._logfile(wl, tool.name))
                self._record(wl, tool, r, res, scpu, None, shape)
        if self.counter is not None:
            self._noop_counted(wl, shape, src, dests)
        for _t, name in dests.values():
            self.server.delete(name)

    def _s3_calls(self) -> int:
        """rclone runs dshub made that talk to S3 (``rclone version`` does not)."""
        if self.recorder is None:
            return 0
        return sum(1 for argv in self.recorder.calls() if argv[:1] != ["version"])

    def _noop_counted(self, wl: str, shape: Shape, src: Path, dests: dict[str, tuple[Target, str]]) -> None:
        """One more re-run per tool against the destination it filled above, through a
        counting proxy on ``127.0.0.2:<same port>`` (endpoints listen on 127.0.0.1; the
        proxy passes bytes through, so SigV4 still matches). dshub's no-op talks to the
        hub only: its API calls go through a proxy in front of the hub, and the run is
        refused as a count if dshub started rclone at all (those requests would bypass
        the proxy)."""
        server = self.server
        hub_proxy = None
        dshub = None
        if isinstance(server, HubServer) and self.dshub is not None:
            hub_proxy = CountingProxy((PROXY_HOST, server.port), ("127.0.0.1", server.port)).start()
            env = {**self.dshub.hub_env, "DSHUB_HUB_URL": f"http://{PROXY_HOST}:{server.port}"}
            dshub = Dshub(self.tb, env)
        tools: list[Tool] = [t for t in (dshub, *self.peers) if t is not None]
        for tool in tools:
            if tool.name not in dests:
                continue
            t, _name = dests[tool.name]
            if tool.uses_target:
                proxy = CountingProxy((PROXY_HOST, t.port), ("127.0.0.1", t.port)).start()
                cmd = tool.rerun(src, t.via(PROXY_HOST))
            else:
                proxy = None
                cmd = tool.rerun(src, t)
                cmd.env.update(self._cache_env("c"))
                if self.recorder is not None:
                    cmd.env.update(self.recorder.env())
            calls_before = self._s3_calls()
            if hub_proxy is not None:
                hub_proxy.reset()
            try:
                res = run(cmd, self._logfile(wl, tool.name + "-count"))
                by_kind: dict[str, int] = {}
                requests = 0
                if proxy is not None:
                    c = proxy.snapshot()
                    by_kind = {f"s3 {k}": v for k, v in c.by_kind.items()}
                    requests = c.requests
            finally:
                if proxy is not None:
                    proxy.stop()
            err = res.error()
            if tool is dshub and hub_proxy is not None:
                by_kind["hub api"] = hub_proxy.snapshot().requests
                requests += by_kind["hub api"]
                if self._s3_calls() != calls_before:
                    err = err or "dshub ran rclone during its no-op: its S3 requests were not counted"
            self.samples.append(Sample(
                workload=wl, tool=tool.name, seconds=res.seconds, ok=err is None,
                error=err, run=-1, requests=requests, by_kind=by_kind,
                extra={"counted_run_seconds_via_proxy": round(res.seconds, 3)},
            ))
            self.log(f"  {wl:<17} {tool.name:<16} counted: {requests} requests {by_kind}"
                     + (f"  FAILED: {err}" if err else ""))
        if hub_proxy is not None:
            hub_proxy.stop()

    # --- E: start-up -----------------------------------------------------------------------

    def startup(self, wl: str = "E_startup") -> None:
        cmds: dict[str, Cmd] = {"rclone version": Cmd([self.tb.rclone, "version"])}
        if self.dshub is not None:
            # The floor of any command line on the design card's stack: the Python of
            # dshub's venv importing Typer, pydantic, httpx and Rich and doing nothing
            # (httpx's own CLI blocked as dshub's entry point does). `dshub ls` is this
            # plus its own modules, one request and a table.
            # `minimal ls (floor)` is the same listing done by the smallest program on that
            # stack (benchmarks/stack_ls.py): dshub's own share of `dshub ls` is the gap.
            python = str(Path(self.tb.dshub).with_name("python"))
            floor = "import sys; sys.modules['httpx._main'] = None; import typer, pydantic, httpx, rich.table"
            stack_ls = str(Path(__file__).with_name("stack_ls.py"))
            cmds = {
                "dshub --version": Cmd([self.tb.dshub, "--version"]),
                "dshub ls": Cmd([self.tb.dshub, "ls"], dict(self.server.env)),
                "python imports (floor)": Cmd([python, "-c", floor]),
                "minimal ls (floor)": Cmd([python, stack_ls], dict(self.server.env)),
                **cmds,
            }
        if self.tb.aws:
            cmds["aws --version"] = Cmd([self.tb.aws, "--version"])
        if self.tb.s5cmd:
            cmds["s5cmd version"] = Cmd([self.tb.s5cmd, "version"])
        self.log(f"{wl}: start-up, {self.mode.startup_runs} runs each")
        for name, cmd in cmds.items():  # one untimed warm-up each (page cache, .pyc)
            run(cmd, self._logfile(wl, "warmup"))
        times: dict[str, list[float]] = {n: [] for n in cmds}
        for r in range(self.mode.startup_runs):
            for name, cmd in cmds.items():
                res = run(cmd, self._logfile(wl, name.replace(" ", "_")))
                times[name].append(res.seconds)
                self.samples.append(Sample(workload=wl, tool=name, seconds=res.seconds, ok=res.ok,
                                           error=res.error(), run=r, client_cpu=res.cpu,
                                           client_peak_rss=res.peak_rss, client_rss_floor=res.rss_floor))
        for name, ts in times.items():
            self.log(f"  {wl:<17} {name:<16} median {statistics.median(ts):.3f} s")

    # --- F: resume waste ---------------------------------------------------------------------

    def resume(self, wl: str = "F_resume") -> None:
        server = self.counter
        if server is None:
            return
        shape = self.mode.big
        src = datagen.ensure(shape)
        datagen.warm(src)
        self.log(f"{wl}: kill the upload of {shape.count} × {shape.size} B at half, re-run")
        tools: list[Tool] = []
        if isinstance(server, HubServer) and self.dshub is not None:
            tools.append(Dshub(self.tb, server.env))
        tools += self.peers
        for tool in tools:
            name = self._name("f", tool.name)
            t = server.open_session(name)  # dshub resumes this session: its port is known
            tp = t.via(PROXY_HOST) if tool.uses_target else t
            with CountingProxy((PROXY_HOST, t.port), ("127.0.0.1", t.port)) as p:
                half = shape.total // 2
                up, again = tool.upload(src, tp), tool.rerun(src, tp)
                if isinstance(tool, Dshub):
                    up.env.update(self._cache_env(name))
                    again.env.update(self._cache_env(name))
                first = run(up, self._logfile(wl, tool.name + "-killed"),
                            kill_when=lambda: p.snapshot().request_body_bytes >= half)
                where = server.local_dir(t)
                # The server keeps writing what was already in its buffers for a moment
                # after the client died: measure once the stored files stop changing,
                # else files finished after the snapshot count as "re-sent" (the negative
                # waste of the first full run).
                sizes = _settled_sizes(where) if where is not None else {}
                sent = p.reset().request_body_bytes
                complete = sum(s for s in sizes.values() if s == shape.size)
                missing = shape.total - complete
                res, scpu = self._timed(server, again, self._logfile(wl, tool.name + "-rerun"))
                resent = p.snapshot().request_body_bytes
            err = res.error()
            if first.ok:
                err = err or "finished before it could be killed (data too small for this machine)"
            if err is None:
                err = self._verify_remote(server, tool, t, name, shape)
            self._record(wl, tool, 0, res, scpu, err, shape, sent_before_kill=sent, complete_after_kill=complete,
                         missing=missing, resent=resent, waste=resent - missing,
                         real_waste=sent + resent - shape.total)
            server.delete(name)
