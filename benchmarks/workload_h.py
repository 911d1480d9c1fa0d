"""H: one big file up and down — dshub in parts, dshub's single-object path, the peers.

One file of 4 GiB (full mode; 512 MiB quick, 32 MiB tiny), one run per tool (a 4 GiB
run per tool and direction already takes the better part of a minute on two cores).
``dshub`` is the default (64 MiB parts, resumable, several in flight); ``dshub (one
object)`` is the same command with ``--part-size 5G``, which sends and fetches the file
as one object through ``rclone copy`` — dshub's path before parts, in the same run.
Besides wall time and the client's peak RSS (every sample has it) each sample of H
records the hub's peak RSS during that run (``VmHWM`` of the hub process and of its
rclone rcd, which serves S3, reset before the run: the larger of the two).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks.config import GiB, MiB, Shape
from benchmarks.results import Sample
from benchmarks.runner import RunResult
from benchmarks.servers import HubServer, Server, _children
from benchmarks.tools import Cmd, Dshub, Target, Toolbox
from benchmarks.workloads import Bench

SHAPES = {
    "full": Shape("huge", 1, 4 * GiB),
    "quick": Shape("huge-quick", 1, 512 * MiB),
    "tiny": Shape("huge-tiny", 1, 32 * MiB),
}


class DshubOneObject(Dshub):
    """``dshub upload/download --part-size 5G``: a file below 10 GiB is one object."""

    name, label, kind = "dshub-single", "dshub (one object)", "dshub"

    def __init__(self, tb: Toolbox, hub_env: dict[str, str]) -> None:
        super().__init__(tb, hub_env)

    def upload(self, src: Path, t: Target) -> Cmd:
        cmd = super().upload(src, t)
        cmd.argv += ["--part-size", "5G"]
        return cmd

    def download(self, t: Target, dst: Path) -> Cmd:
        cmd = super().download(t, dst)
        cmd.argv += ["--part-size", "5G"]
        return cmd


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _hub_pids(server: object) -> list[int]:
    proc = getattr(server, "proc", None)
    if not isinstance(server, HubServer) or proc is None:
        return []
    return [proc.pid, *_children(proc.pid)]


def reset_peak_rss(server: object) -> None:
    """Reset the hub's and its rcd's peak RSS (``5`` to ``clear_refs``: needs root or
    the same user, which the harness is)."""
    for pid in _hub_pids(server):
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def hub_peak_rss(server: object) -> int | None:
    """The largest peak RSS (since the last reset) of the hub process and its children
    (the rclone rcd that serves S3)."""
    peaks = [p for pid in _hub_pids(server) if (p := _vm_hwm(pid)) is not None]
    return max(peaks, default=None)


def big_file(bench: Bench) -> None:
    """Run H: each tool uploads the file once (verified on the server), then each tool
    downloads the version dshub published (verified on disk)."""
    shape = SHAPES[bench.mode.name]
    runs, peers = bench.mode.runs, bench.peers
    extra = [DshubOneObject(bench.tb, bench.server.env)] if bench.dshub is not None else []
    bench.extra_tools += extra
    bench.peers = [*extra, *peers]
    bench.mode = replace(bench.mode, runs=1)
    timed, record = bench._timed, bench._record
    seen: dict[str, int | None] = {}

    def timed_with_peak(server: Server, cmd: Cmd, log: Path, **kw: object) -> tuple[RunResult, float]:
        reset_peak_rss(server)  # the peak of this run only, not of the tools before it
        out = timed(server, cmd, log, **kw)
        seen["hub"] = hub_peak_rss(server)
        return out

    def record_with_peak(*a: object, **kw: object) -> Sample:
        s = record(*a, **kw)  # type: ignore[arg-type]
        s.extra["hub_peak_rss"] = seen.pop("hub", None)
        return s

    bench._timed, bench._record = timed_with_peak, record_with_peak  # type: ignore[method-assign]
    try:
        bench.uploads("H_upload_big", shape)
        bench.downloads("H_download_big", shape)
    finally:
        bench.peers = peers
        bench.mode = replace(bench.mode, runs=runs)
        del bench._timed, bench._record
