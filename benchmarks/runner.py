"""Run one command, timed: wall clock, the CPU it and its children used, optional kill.

Output goes to a log file (never a pipe the harness reads), so no tool is slowed by a
reader. Each command gets its own session (process group) so a kill reaches all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import _children, clean_env
from benchmarks.tools import Cmd


@dataclass
class RunResult:
    seconds: float
    returncode: int
    cpu: float  # user + sys of the command and the children it waited for
    killed: bool = False
    log: Path | None = None
    # Peak resident memory of the largest single process of the run (the command or one
    # of the children it waited for, e.g. dshub's rclone): wait4's ru_maxrss, in bytes.
    # A forked child starts as a copy of this harness and the kernel keeps that high-water
    # mark across exec, so no peak below ``rss_floor`` (the harness's RSS at the fork) can
    # be seen: such a run reports None ("at most rss_floor"; the harness's own peak RSS).
    peak_rss: int | None = None
    rss_floor: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.killed

    def error(self) -> str | None:
        """The last line of the log, for the report, when the run failed."""
        if self.ok:
            return None
        tail = ""
        if self.log and self.log.exists():
            lines = [x for x in self.log.read_text(errors="replace").splitlines() if x.strip()]
            tail = lines[-1][:200] if lines else ""
        return f"exit {self.returncode}{' (killed)' if self.killed else ''}: {tail}"


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = _children(p)
        out += kids
        todo += kids
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL a process we started and everything below it (a crash, not a polite stop)."""
    victims = [pid, *_descendants(pid)]
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _own_rss() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                # The high-water mark, not the current size: what a child may inherit.
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def run(
    cmd: Cmd,
    log: Path,
    *,
    timeout: float = 1800,
    kill_when: Callable[[], bool] | None = None,
    poll: float = 0.01,
    cwd: Path | None = None,
) -> RunResult:
    """Run ``cmd`` to completion (or until ``kill_when()`` says so); time it."""
    env = {**clean_env(), **cmd.env}
    log.parent.mkdir(parents=True, exist_ok=True)
    floor = _own_rss()
    with open(log, "ab") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd.argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=cwd, start_new_session=True,
        )
        killed = False
        if kill_when is None:
            # Nothing to watch: block in wait4 (no polling noise in a timed run); a timer
            # thread enforces the timeout.
            timer = threading.Timer(timeout, kill_tree, args=(proc.pid,))
            timer.daemon = True
            timer.start()
            _pid, status, ru = os.wait4(proc.pid, 0)
            timer.cancel()
        else:
            deadline = t0 + timeout
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if not killed and (kill_when() or time.perf_counter() > deadline):
                    kill_tree(proc.pid)
                    killed = True
                    _pid, status, ru = os.wait4(proc.pid, 0)
                    break
                time.sleep(poll)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = ru.ru_maxrss * 1024  # KiB on Linux
    # Within 5 % of the harness's own size: the inherited mark, not the command's.
    seen = None if floor is not None and peak <= floor * 1.05 else peak
    return RunResult(seconds, proc.returncode, ru.ru_utime + ru.ru_stime, killed, log, peak_rss=seen, rss_floor=floor)
