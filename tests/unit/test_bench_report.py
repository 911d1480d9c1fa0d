"""Unit tests of the benchmark page rendering and the other pure helpers of the harness."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.proxy import classify  # noqa: E402
from benchmarks.report import render_markdown  # noqa: E402
from benchmarks.results import Sample, aggregate, evaluate_targets, to_json  # noqa: E402
from benchmarks.workloads import RcloneRecorder  # noqa: E402


def _doc() -> dict:
    samples = [
        Sample("A_upload", "dshub", 4.0, client_cpu=3.0, server_cpu=5.0),
        Sample("A_upload", "s5cmd", 5.0),
        Sample("A_upload", "cp", 0.5, ok=False, error="exit 1: disk full"),
        Sample("C_noop", "rclone", 1.5),
        Sample("C_noop", "rclone", 1.7, run=-1, requests=10_001, by_kind={"s3 head": 10_000, "s3 list": 1}),
        Sample("F_resume", "rclone", 3.0, extra={"sent_before_kill": 2 << 20, "complete_after_kill": 1 << 20,
                                                  "missing": 3 << 20, "resent": 4 << 20, "waste": 1 << 20,
                                                 "real_waste": 4 << 20}),
    ]
    kinds = {"dshub": "dshub", "cp": "floor"}
    agg = aggregate(samples, kinds)
    meta = {
        "date": "2026-11-26 10:00 UTC", "mode": "quick", "runs": 1,
        "machine": {"cores": 2, "memory_gib": 23.5, "cpu": "Test CPU", "kernel": "6.1"},
        "versions": {"rclone": "rclone v1.75.2", "dshub": "dshub 0.1.0"},
        "labels": {"dshub": "**dshub**"}, "methods": ["counted at the proxy"], "notes": ["a note"],
        "limits": ["start-up floor"],
        "server": "local hub", "scratch": "tmpfs (/dev/shm): measured, not the disk",
    }
    return to_json(meta, agg, evaluate_targets(agg, 10_000), samples)


def test_page_has_header_machine_versions_and_cpu_note() -> None:
    md = render_markdown(_doc())
    assert md.startswith("# Benchmarks\n")
    assert "make bench-quick" in md and "2026-11-26 10:00 UTC" in md
    assert "2 cores (Test CPU), 23.5 GiB memory" in md
    assert "rclone: `rclone v1.75.2`" in md
    assert "**Tools wrote to:** tmpfs (/dev/shm): measured, not the disk." in md
    assert "CPU-bound" in md and "ratios" in md.lower()
    assert "- counted at the proxy" in md and "- a note" in md
    assert "## What limits dshub here\n\n- start-up floor" in md


def test_tables_show_ratio_failures_requests_and_waste() -> None:
    md = render_markdown(_doc())
    assert "| **dshub** | 4.00 | 4.00 | 4.00 | 1.00 |" in md
    assert "| s5cmd | 5.00 | 5.00 | 5.00 | 0.80 |" in md
    assert "cp (1 failed: exit 1: disk full)" in md
    assert "10001 | s3 head 10000, s3 list 1 |" in md
    assert "| rclone | 2.00 MiB | 1.00 MiB | 4.00 MiB | 3.00 MiB | 1.00 MiB | 4.00 MiB | 3.00 |" in md
    assert "✅ pass" in md and "⚪ not measured" in md


def test_classify_s3_requests() -> None:
    assert classify("GET", "/dshub?list-type=2&prefix=a%2F") == "list"
    assert classify("GET", "/dshub/") == "list"
    assert classify("GET", "/dshub/datasets/x/v1/a.bin") == "get"
    assert classify("HEAD", "/dshub/a") == "head"
    assert classify("PUT", "/dshub/a?partNumber=1&uploadId=x") == "put"
    assert classify("POST", "/dshub/a?uploads") == "post"


def test_recorder_extracts_copy_flags_without_file_list(tmp_path: Path) -> None:
    rec = RcloneRecorder(tmp_path, "/usr/bin/rclone")
    assert "exec \"/usr/bin/rclone\"" in rec.script.read_text()
    calls = [
        ["version"],
        ["lsjson", "dshub:b/p/", "-R"],
        ["copy", "/src", "dshub:b/p/", "--files-from-raw", "/tmp/todo", "--no-check-dest", "--transfers", "8"],
    ]
    rec.log.write_text("".join("".join(a + "\x1f" for a in argv) + "\x1e" for argv in calls))
    assert rec.calls() == calls
    assert rec.copy_flags() == ["--no-check-dest", "--transfers", "8"]


def test_run_length_limit_is_computed_from_the_run() -> None:
    from benchmarks.cli import run_length_limit

    text = run_length_limit([Sample("B_upload", "aws", 30.0), Sample("B_upload", "dshub", 10.0)], 100.0)
    assert "took 40 s of this run's 100 s (30 s of them aws's)" in text


def test_rewrite_keeps_the_sections_other_scripts_wrote() -> None:
    from benchmarks.report import KEPT_MARKER, with_kept_sections

    old = f"# Benchmarks\nold figures\n\n{KEPT_MARKER}\n\n## Web pages\np99 12 ms\n"
    assert with_kept_sections("# Benchmarks\nnew figures\n", old) == (
        f"# Benchmarks\nnew figures\n\n{KEPT_MARKER}\n\n## Web pages\np99 12 ms\n")
    assert with_kept_sections("new\n", "no marker\n") == "new\n"
    assert with_kept_sections("new\n", None) == "new\n"
