"""Unit tests of the benchmark harness's pure parts: aggregation, ratios, targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# benchmarks/ is a top-level folder of the repository, not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.results import (  # noqa: E402
    Sample,
    aggregate,
    evaluate_targets,
    fastest_peer,
    to_json,
)

KINDS = {"dshub": "dshub", "rclone-as-dshub": "rclone-same-flags", "rclone": "peer", "s5cmd": "peer",
         "aws": "peer", "cp": "floor"}


def _s(wl: str, tool: str, secs: float, run: int = 0, **kw) -> Sample:
    return Sample(workload=wl, tool=tool, seconds=secs, run=run, **kw)


def test_median_min_max_and_ratio() -> None:
    samples = [_s("A_upload", "dshub", x, i) for i, x in enumerate((5.0, 4.0, 6.0))]
    samples += [_s("A_upload", "s5cmd", x, i) for i, x in enumerate((5.0, 5.0, 10.0))]
    agg = aggregate(samples, KINDS)["A_upload"]
    assert (agg["dshub"].median, agg["dshub"].min, agg["dshub"].max) == (5.0, 4.0, 6.0)
    assert agg["s5cmd"].median == 5.0
    assert agg["s5cmd"].ratio_dshub == 1.0
    assert agg["dshub"].ratio_dshub == 1.0


def test_failed_runs_are_not_timed_and_counting_runs_only_count() -> None:
    samples = [
        _s("C_noop", "dshub", 1.0),
        _s("C_noop", "dshub", 99.0, 1, ok=False, error="exit 5: boom"),
        _s("C_noop", "dshub", 50.0, -1, requests=12, by_kind={"s3 list": 10, "hub api": 2}),
    ]
    st = aggregate(samples, KINDS)["C_noop"]["dshub"]
    assert st.median == 1.0 and st.max == 1.0
    assert st.failures == 1 and st.runs == 2
    assert st.requests == 12
    assert st.errors == ["exit 5: boom"]


def test_fastest_peer_ignores_floor_dshub_and_replay() -> None:
    samples = [
        _s("B_upload", "cp", 0.1),
        _s("B_upload", "dshub", 2.0),
        _s("B_upload", "rclone-as-dshub", 1.0),
        _s("B_upload", "aws", 9.0),
        _s("B_upload", "rclone", 3.0),
    ]
    fp = fastest_peer(aggregate(samples, KINDS)["B_upload"])
    assert fp is not None and fp.tool == "rclone"


def test_targets_pass_and_miss() -> None:
    samples = [
        _s("A_upload", "dshub", 4.0),
        _s("A_upload", "rclone-as-dshub", 3.8),  # 4.0/3.8 = 1.053 > 1.03: miss
        _s("A_upload", "s5cmd", 5.0),  # dshub faster: pass
        _s("C_noop", "dshub", 0.1),
        _s("C_noop", "aws", 1.5),  # 15 × faster: pass
        _s("C_noop", "dshub", 0.2, -1, requests=15, by_kind={"s3 list": 10, "hub api": 5}),
        _s("E_startup", "dshub --version", 0.2),  # miss
        _s("E_startup", "dshub ls", 0.3),  # pass
    ]
    checks = {c.id: c for c in evaluate_targets(aggregate(samples, KINDS), noop_files=10_000)}
    assert checks["A_upload:peer"].passed is True
    assert checks["A_upload:wrapper"].passed is False
    assert abs(checks["A_upload:wrapper"].value - 4.0 / 3.8) < 1e-9
    # 10 S3 requests ≤ 1 + 10,000/1000 = 11; hub API calls are reported, not compared.
    assert checks["C:requests"].passed is True and checks["C:requests"].value == 10
    assert "hub api 5" in checks["C:requests"].detail
    assert checks["C:vs-aws"].passed is True
    assert checks["E:dshub --version"].passed is False
    assert checks["E:dshub ls"].passed is True


def test_targets_not_measured_when_dshub_missing() -> None:
    samples = [_s("A_upload", "s5cmd", 5.0), _s("B_upload", "dshub", 1.0, ok=False, error="x")]
    checks = evaluate_targets(aggregate(samples, KINDS), noop_files=10_000)
    assert checks and all(c.passed is None for c in checks)


def test_to_json_orders_workloads_and_keeps_samples() -> None:
    samples = [_s("E_startup", "rclone version", 0.01), _s("A_upload", "rclone", 1.0)]
    agg = aggregate(samples, KINDS)
    doc = to_json({"mode": "tiny"}, agg, evaluate_targets(agg, 10), samples)
    assert list(doc["workloads"]) == ["A_upload", "E_startup"]
    assert doc["workloads"]["A_upload"]["tools"]["rclone"]["median"] == 1.0
    assert len(doc["samples"]) == 2 and doc["mode"] == "tiny"


def test_peak_memory_is_the_highest_run_and_is_shown() -> None:
    from benchmarks.report import _mib

    samples = [_s("B_upload", "dshub", 1.0, i, client_peak_rss=m << 20) for i, m in enumerate((90, 120, 100))]
    samples.append(_s("B_upload", "dshub", 1.0, 3, ok=False, client_peak_rss=900 << 20))  # failed: not counted
    agg = aggregate(samples, KINDS)["B_upload"]
    assert agg["dshub"].client_peak_rss == 120 << 20
    assert _mib(agg["dshub"].client_peak_rss) == "120 MiB" and _mib(None) == "—"
    assert _mib(None, 36 << 20) == "≤ 36 MiB"  # the peak hid below the harness's own size


def test_runner_measures_the_peak_of_the_largest_process_children_included(tmp_path: Path) -> None:
    """Real runs from a small harness process (pytest itself is too big: a child inherits its
    parent's high-water mark): the command's own peak, a child's larger one (as dshub's
    rclone), and a command smaller than the harness reported as "at most the floor"."""
    import json
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    harness = f"""
import json, sys
sys.path.insert(0, {str(repo)!r})
from pathlib import Path

import pytest
from benchmarks.runner import run
from benchmarks.tools import Cmd
py = sys.executable
tmp = Path({str(tmp_path)!r})
own = run(Cmd([py, "-c", "b = bytearray(96 << 20); b[::4096] = bytes(len(b[::4096]))"]), tmp / "a.log")
child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'b = bytearray(192 << 20); b[::4096] = bytes(len(b[::4096]))'], check=True)"
kid = run(Cmd([py, "-c", child]), tmp / "b.log")
small = run(Cmd(["true"]), tmp / "c.log")
print(json.dumps([[r.ok, r.peak_rss, r.rss_floor] for r in (own, kid, small)]))
"""
    out = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, check=True).stdout
    (own_ok, own, floor), (kid_ok, kid, _), (small_ok, small, small_floor) = json.loads(out)
    assert own_ok and kid_ok and small_ok and floor < 96 << 20
    assert own is not None and own >= 96 << 20
    assert kid is not None and kid >= 192 << 20 > own
    assert small is None and small_floor is not None and small_floor > 0


def test_rounds_alternate_direction_keeping_dshub_before_its_replay() -> None:
    """No tool always runs right after the same other one; rclone-as-dshub follows dshub."""
    from types import SimpleNamespace

    from benchmarks.workloads import Bench

    bench = SimpleNamespace(dshub="dshub", as_dshub="as-dshub", peers=["rclone", "aws", "s5cmd"], floor="cp")
    rounds = [Bench._upload_tools(bench, r) for r in range(4)]  # type: ignore[arg-type]
    assert rounds[0] == rounds[2] == ["dshub", "as-dshub", "rclone", "aws", "s5cmd", "cp"]
    assert rounds[1] == rounds[3] == ["cp", "s5cmd", "aws", "rclone", "dshub", "as-dshub"]
    for order in rounds:
        assert order.index("as-dshub") == order.index("dshub") + 1
    # Who ran just before each tool (the previous round's last tool for the first one):
    sequence = [t for order in rounds for t in order]
    before = {t: {sequence[i - 1] for i in range(1, len(sequence)) if sequence[i] == t} for t in rounds[0]}
    assert before["dshub"] == {"as-dshub", "rclone"} and before["aws"] == {"rclone", "s5cmd"}
    # Without dshub (plain server): the peers and the floor still alternate.
    plain = SimpleNamespace(dshub=None, as_dshub=None, peers=["rclone", "aws"], floor="cp")
    assert Bench._upload_tools(plain, 1) == ["cp", "aws", "rclone"]  # type: ignore[arg-type]


def test_versions_targets_use_the_counted_run_and_the_first_upload() -> None:
    from benchmarks.report import render_markdown

    mib = 1 << 20
    kinds = {**KINDS, "dshub-first": "dshub-first", "rclone-copy-dest": "peer"}
    samples = [
        _s("G_versions", "dshub-first", 20.0),
        _s("G_versions", "dshub", 1.5, extra={"changed_bytes": 20 * mib, "growth_bytes": 21 * mib}),
        _s("G_versions", "dshub", 0.0, -1, extra={"changed_bytes": 20 * mib, "wire_bytes": 20 * mib + 300_000}),
        _s("G_versions", "rclone-copy-dest", 3.0),
        _s("G_versions", "aws", 12.0),
    ]
    agg = aggregate(samples, kinds)
    checks = {c.id: c for c in evaluate_targets(agg, 1000)}
    assert checks["G:wire"].passed is True and round(checks["G:wire"].value, 3) == 1.014
    assert checks["G:first"].passed is True and checks["G:first"].value == 0.075
    assert checks["G:peer"].passed is True and "rclone-copy-dest" in checks["G:peer"].text
    assert checks["G:growth"].passed is True and checks["G:growth"].value == 1.05
    page = render_markdown(to_json({"mode": "full"}, agg, list(checks.values()), samples))
    assert "| rclone-copy-dest | 3.00 |" in page and "20.00 MiB" in page


def test_versions_changes_pick_distinct_files() -> None:
    from benchmarks.config import FULL, QUICK, TINY
    from benchmarks.versions_bench import Changes

    for mode in (FULL, QUICK, TINY):
        c = Changes.of(mode.versions)
        picked = [*c.rewritten, *c.renamed, *c.deleted]
        assert len(set(picked)) == len(picked) and max(picked) < mode.versions.count
        assert len(c.rewritten) == c.new == max(1, mode.versions.count // 100)
    assert Changes.of(FULL.versions).changed_bytes(FULL.versions) == 20 * (1 << 20)


def test_merge_keeps_each_workloads_own_run_date_across_merges(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict

    from benchmarks.cli import merged_samples

    path = tmp_path / "results.json"
    path.write_text(json.dumps({
        "mode": "full", "date": "2026-12-02 03:00 UTC",
        "workload_dates": {"A_upload": "2026-11-27 06:19 UTC"},  # kept by an earlier merge
        "samples": [asdict(_s("A_upload", "dshub", 1.0)), asdict(_s("G_versions", "dshub", 1.0)),
                    asdict(_s("H_upload_big", "dshub", 1.0))],
    }))
    kept, dates, note = merged_samples(path, "full", {"H_upload_big"})
    assert sorted(s.workload for s in kept) == ["A_upload", "G_versions"]
    assert dates == {"A_upload": "2026-11-27 06:19 UTC", "G_versions": "2026-12-02 03:00 UTC"}
    assert note is not None
    assert "A_upload of the run of 2026-11-27 06:19 UTC; G_versions of the run of 2026-12-02 03:00 UTC" in note
    assert "only H_upload_big ran" in note
    with pytest.raises(SystemExit):
        merged_samples(path, "quick", {"H_upload_big"})
