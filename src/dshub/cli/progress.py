"""Rendering transfer events on stderr: a Rich progress bar on a terminal, a plain line
every few seconds otherwise (CI logs stay small), nothing in quiet/json modes except
warnings. The transfer engine only emits events; this is the one place that draws them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from dshub.cli.sanitize import clean_line
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
        # Paths and rclone's messages may hold anything a file name can: shown, never executed.
        self.stream.write(clean_line(text) + "\n")
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
            f"{_counted(ev)}, {human_size(int(ev.speed))}/s, ETA {_eta(ev.eta)}"
        )

    def close(self) -> None:
        pass


def _counted(ev: Progress) -> str:
    """"3/8 files", or "part 49 of 704" while big files go in parts."""
    if ev.total_parts:
        return f"part {ev.parts} of {ev.total_parts}"
    return f"{ev.transfers}/{ev.total_transfers} files"


def status_text(desc: str, done: int, total: int, speed: float, eta: float | None, files: str) -> str:
    """What a progress line must always show: bytes done/total, speed, ETA, files done/total."""
    return (
        f"{desc} {human_size(done)}/{human_size(total)} {human_size(int(speed))}/s "
        f"ETA {_eta(eta)} {files}"
    )


def fit_line(status: str, flight: Sequence[str], width: int, more: int = 0) -> str:
    """``status`` then as many of the files in transfer (``flight``) as fit in ``width`` cells.

    The file names are what shrinks: fewer of them, then the first one cut from the left
    (the end of a path says most); the status is never cut.
    """
    room = width - len(status) - 1
    for k in range(len(flight), 0, -1):
        rest = more + len(flight) - k
        text = ", ".join(flight[:k]) + (f" +{rest}" if rest else "")
        if len(text) <= room:
            return f"{status} {text}"
    if not flight or room < 8:
        return status
    return f"{status} …{flight[0][-(room - 1):]}"


def bar_width(width: int) -> int:
    """Cells of the bar on a terminal ``width`` wide: none below 70, then a share that grows with it."""
    if width < 70:
        return 0
    return min(40, (width - 50) // 3)


def _status_column(console: Any, reserved: int) -> Any:
    """A Rich progress column: the status line fitted to the console's width on every redraw."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class StatusColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            f = task.fields
            status = status_text(
                task.description, int(task.completed), int(task.total or 0), f.get("speed", 0.0), f.get("eta"),
                f["files"],
            )
            line = fit_line(status, f.get("flight", ()), console.width - reserved, f.get("more", 0))
            return Text(line, no_wrap=True)

    return StatusColumn()


class RichRenderer:
    """A live Rich bar: bytes, files, speed, ETA, and the files in flight, fitted to the terminal."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn
        from rich.progress import Progress as RichProgress

        self.console = console
        bar = bar_width(console.width)
        columns: list[Any] = [BarColumn(bar_width=bar)] if bar else []
        # One cell between the bar and the text, one spare so the line never wraps.
        columns.append(_status_column(console, reserved=(bar + 1 if bar else 0) + 1))
        self.progress = RichProgress(*columns, console=console, transient=False)
        self.task: Any = None
        self._desc = "transfer"
        self._total_files = 0
        self._files_done = 0
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def __call__(self, ev: ProgressEvent) -> None:
        if isinstance(ev, Warning_):
            self.console.print(f"[yellow]Warning:[/] {_escape(ev.message)}", highlight=False)
            for p in ev.paths[:20]:
                self._print(f"  {p}")
            if len(ev.paths) > 20:
                self._print(f"  … and {len(ev.paths) - 20} more")
        elif isinstance(ev, Phase):
            self._phase(ev)
        elif isinstance(ev, ScanDone):
            self._scan_done(ev)
        elif isinstance(ev, FileDone):
            self._files_done += 1
            if self.task is not None:
                self.progress.update(self.task, files=f"{self._files_done}/{self._total_files} files")
        elif isinstance(ev, RcloneLog):
            self._print(f"rclone: {ev.path + ': ' if ev.path else ''}{ev.message}")
        elif isinstance(ev, Progress) and self.task is not None:
            self._progress(ev)

    def _phase(self, ev: Phase) -> None:
        if ev.name in ("upload", "download"):
            self._desc = ev.name  # the bar says it
            if self.task is not None:
                self.progress.update(self.task, description=ev.name)
            return
        self._print(ev.message)

    def _scan_done(self, ev: ScanDone) -> None:
        if ev.skipped_files:
            self._print(f"{ev.skipped_files} files ({human_size(ev.skipped_bytes)}) already there, skipped")
        self._total_files = ev.files
        self._files_done = 0
        files = f"0/{ev.files} files"
        if self.task is None and ev.files:
            self._start()
            self.task = self.progress.add_task(
                self._desc, total=ev.bytes, files=files, flight=(), more=0, speed=0.0, eta=None
            )
        elif self.task is not None:
            self.progress.update(self.task, total=ev.bytes, completed=0, files=files)

    def _progress(self, ev: Progress) -> None:
        shown = ev.transferring[:3]
        self.progress.update(
            self.task,
            completed=ev.bytes,
            total=ev.total_bytes,
            files=_counted(ev),
            flight=tuple(clean_line(f"{t.name} {t.percentage}%") for t in shown),
            more=len(ev.transferring) - len(shown),
            speed=ev.speed,
            eta=ev.eta,
        )

    def close(self) -> None:
        if self._started:
            if self.task is not None:
                self.progress.update(self.task, flight=(), more=0)
            self.progress.stop()


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
