"""Rendering transfer events on stderr: a Rich progress bar on a terminal, a plain line
every few seconds otherwise (CI logs stay small), nothing in quiet/json modes except
warnings. The transfer engine only emits events; this is the one place that draws them.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from dshub.transfer.stats import FileDone, Phase, Progress, ProgressEvent, RcloneLog, ScanDone, Warning_
from dshub.util.units import human_size


def _eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class PlainRenderer:
    """One line per phase, one progress line at most every ``interval`` seconds."""

    def __init__(
        self, stream: TextIO | None = None, interval: float = 5.0, show_progress: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.show_progress = show_progress
        self._last = 0.0
        self._files_done = 0
        self._total_files = 0
        self._last_progress: Progress | None = None

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, ev: ProgressEvent) -> None:
        if isinstance(ev, Warning_):
            self._line(f"Warning: {ev.message}")
            for p in ev.paths[:20]:
                self._line(f"  {p}")
            if len(ev.paths) > 20:
                self._line(f"  … and {len(ev.paths) - 20} more")
        elif not self.show_progress:
            return
        elif isinstance(ev, Phase):
            self._line(ev.message)
        elif isinstance(ev, ScanDone):
            self._total_files = ev.files
            self._files_done = 0
            extra = (
                f" ({ev.skipped_files} already there, {human_size(ev.skipped_bytes)})"
                if ev.skipped_files
                else ""
            )
            self._line(f"{ev.files} files, {human_size(ev.bytes)} to transfer{extra}")
        elif isinstance(ev, FileDone):
            self._files_done += 1
        elif isinstance(ev, RcloneLog):
            self._line(f"rclone: {ev.path + ': ' if ev.path else ''}{ev.message}")
        elif isinstance(ev, Progress):
            self._last_progress = ev
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._line(self.describe(ev))

    def describe(self, ev: Progress) -> str:
        pct = 100.0 * ev.bytes / ev.total_bytes if ev.total_bytes else 100.0
        return (
            f"{human_size(ev.bytes)} / {human_size(ev.total_bytes)} ({pct:.0f}%), "
            f"{ev.transfers}/{ev.total_transfers} files, {human_size(int(ev.speed))}/s, ETA {_eta(ev.eta)}"
        )

    def close(self) -> None:
        pass


class RichRenderer:
    """A live Rich bar: bytes, files, speed, ETA, and the files in flight."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self.console = console
        self.progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[files]}"),
            TextColumn("[dim]{task.fields[flight]}[/]"),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self._desc = "transfer"
        self._total_files = 0
        self._files_done = 0
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def __call__(self, ev: ProgressEvent) -> None:
        if isinstance(ev, Warning_):
            self.console.print(f"[yellow]Warning:[/] {ev.message}", highlight=False)
            for p in ev.paths[:20]:
                self.console.print(f"  {p}", markup=False, highlight=False)
            if len(ev.paths) > 20:
                self.console.print(f"  … and {len(ev.paths) - 20} more", markup=False)
        elif isinstance(ev, Phase):
            if ev.name in ("upload", "download"):
                self._desc = ev.name  # the bar says it
                if self.task is not None:
                    self.progress.update(self.task, description=ev.name)
                return
            self.console.print(ev.message, markup=False, highlight=False)
        elif isinstance(ev, ScanDone):
            if ev.skipped_files:
                self.console.print(
                    f"{ev.skipped_files} files ({human_size(ev.skipped_bytes)}) already there, skipped",
                    markup=False,
                )
            self._total_files = ev.files
            self._files_done = 0
            if self.task is None and ev.files:
                self._start()
                self.task = self.progress.add_task(self._desc, total=ev.bytes, files=f"0/{ev.files} files", flight="")
            elif self.task is not None:
                self.progress.update(self.task, total=ev.bytes, completed=0, files=f"0/{ev.files} files")
        elif isinstance(ev, FileDone):
            self._files_done += 1
            if self.task is not None:
                self.progress.update(self.task, files=f"{self._files_done}/{self._total_files} files")
        elif isinstance(ev, RcloneLog):
            self.console.print(f"rclone: {ev.path + ': ' if ev.path else ''}{ev.message}", markup=False)
        elif isinstance(ev, Progress) and self.task is not None:
            # The files in flight, shortened so the line fits a terminal.
            names = ", ".join(f"{_short(t.name)} {t.percentage}%" for t in ev.transferring[:2])
            more = f" +{len(ev.transferring) - 2}" if len(ev.transferring) > 2 else ""
            self.progress.update(
                self.task,
                completed=ev.bytes,
                total=ev.total_bytes,
                files=f"{ev.transfers}/{ev.total_transfers} files",
                flight=_escape(names + more),
            )

    def close(self) -> None:
        if self._started:
            if self.task is not None:
                self.progress.update(self.task, flight="")
            self.progress.stop()


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def make_renderer(out: Any) -> Any:
    """Pick the renderer for an ``Output``: Rich on a terminal, plain lines otherwise;
    warnings only with ``--json`` / ``--quiet`` (stdout then carries one document)."""
    quiet = bool(getattr(out, "json_mode", False) or getattr(out, "quiet", False))
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty and not quiet:
        return RichRenderer(out.err)
    return PlainRenderer(sys.stderr, show_progress=not quiet)
