"""The live progress line, rendered into a Rich console of a fixed width (a terminal's size)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dshub.cli.progress import RichRenderer, fit_line
from dshub.transfer.stats import InFlight, Phase, Progress, ScanDone


def render(width: int) -> list[str]:
    """The lines of the progress display on a terminal ``width`` columns wide, mid-transfer."""
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    r = RichRenderer(console)
    r(Phase("upload", "uploading"))
    r(ScanDone(files=302, bytes=3_020_000_000))
    flight = (
        InFlight("part1/sub1/file0181.bin", 10_000_000, 9_000_000, 90, 1e6),
        InFlight("part1/sub1/a-much-longer-file-name-0182.bin", 10_000_000, 1_000_000, 10, 1e6),
        InFlight("part1/sub1/file0183.bin", 10_000_000, 0, 0, 0.0),
    )
    r(Progress(bytes=2_000_000_000, total_bytes=3_020_000_000, transfers=200, total_transfers=302, errors=0,
               speed=52_400_000.0, eta=19.5, elapsed=38.0, transferring=flight))
    frame = Console(file=io.StringIO(), width=width, color_system=None)
    with frame.capture() as cap:
        frame.print(r.progress.make_tasks_table(r.progress.tasks))
    r.close()
    return [ln.rstrip() for ln in cap.get().splitlines() if ln.strip()]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_progress_line_keeps_bytes_speed_eta_and_files(width: int) -> None:
    lines = render(width)
    assert len(lines) == 1, lines  # one line: nothing wrapped
    line = lines[0]
    assert len(line) <= width, line
    for part in ("2.0 GB/3.0 GB", "52.4 MB/s", "ETA 0:19", "200/302 files"):
        assert part in line, (width, line)
    if width >= 120:
        assert "file0181.bin 90%" in line  # room for the names: shown
    if width >= 80:
        assert "━" in line  # and for a bar


def test_fit_line_shrinks_only_the_file_names() -> None:
    status = "upload 1 GB/2 GB 10 MB/s ETA 0:10 1/2 files"
    names = ["a/b/c.bin 50%", "a/b/d.bin 7%"]
    assert fit_line(status, names, 200) == f"{status} a/b/c.bin 50%, a/b/d.bin 7%"
    assert fit_line(status, names, 200, more=3) == f"{status} a/b/c.bin 50%, a/b/d.bin 7% +3"
    assert fit_line(status, names, len(status) + 20) == f"{status} a/b/c.bin 50% +1"  # fewer names first
    cut = fit_line(status, ["a/very/long/path/of/a/file.bin 50%"], len(status) + 14)
    assert cut == f"{status} …file.bin 50%"  # then the end of one name
    assert fit_line(status, names, len(status) + 2) == status  # no room: names dropped, status whole


def test_plain_lines_neutralise_control_characters() -> None:
    from dshub.cli.progress import PlainRenderer
    from dshub.transfer.stats import Warning_

    buf = io.StringIO()
    r = PlainRenderer(buf)
    r(Warning_("1 file skipped", paths=("evil\x1b]0;title\x07.bin",)))
    assert "\x1b" not in buf.getvalue() and "evil?]0;title?.bin" in buf.getvalue()
