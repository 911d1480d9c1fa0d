"""Pure result handling: samples → per-tool statistics → ratios → targets (pass/miss).

No processes, no files: everything here is unit-tested (tests/unit/test_bench_results.py).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

DSHUB = "dshub"
RCLONE_SAME_FLAGS = "rclone-as-dshub"

# Workload keys, in report order, with their titles.
WORKLOADS: dict[str, str] = {
    "A_upload": "A — upload, few big files",
    "B_upload": "B — upload, many small files",
    "C_noop": "C — no-op re-run over files already uploaded",
    "D_download_big": "D — download of A",
    "D_download_small": "D — download of B",
    "E_startup": "E — start-up",
    "F_resume": "F — resume after a kill at half of A",
    "G_versions": "G — a new version: 1 % of the files rewritten, 1 % new, a few renamed and deleted",
    "H_upload_big": "H — upload of one big file",
    "H_download_big": "H — download of one big file",
}


@dataclass
class Sample:
    """One timed run of one tool in one workload."""

    workload: str
    tool: str
    seconds: float
    ok: bool = True
    error: str | None = None
    run: int = 0
    bytes: int | None = None  # payload the run moved (data size), when meaningful
    files: int | None = None
    requests: int | None = None  # HTTP requests counted at the server (proxy), when counted
    by_kind: dict[str, int] | None = None
    client_cpu: float | None = None  # user+sys seconds of the tool and its children
    server_cpu: float | None = None  # seconds of the S3 server process(es) during the run
    client_peak_rss: int | None = None  # bytes: the largest process of the tool's run at its peak
    client_rss_floor: int | None = None  # bytes: peaks below this cannot be seen (see runner)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolStats:
    """Aggregated runs of one tool in one workload (seconds of successful runs only)."""

    tool: str
    kind: str
    runs: int
    failures: int
    median: float | None
    min: float | None
    max: float | None
    bytes: int | None = None
    files: int | None = None
    requests: int | None = None
    by_kind: dict[str, int] | None = None
    client_cpu: float | None = None
    server_cpu: float | None = None
    client_peak_rss: int | None = None  # bytes, the highest of the runs
    client_rss_floor: int | None = None  # bytes: when no peak was seen, it was at most this
    ratio_dshub: float | None = None  # dshub median / this tool's median (< 1: dshub faster)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TargetCheck:
    """One target of the issue, evaluated: ``value`` compared with ``limit``."""

    id: str
    text: str
    value: float | None
    limit: float
    passed: bool | None  # None: could not be evaluated (tool missing or failed)
    detail: str = ""


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _last(xs: list[Any]) -> Any:
    xs = [x for x in xs if x is not None]
    return xs[-1] if xs else None


def aggregate(samples: list[Sample], kinds: dict[str, str]) -> dict[str, dict[str, ToolStats]]:
    """Group samples by workload and tool; medians over successful runs; dshub ratios."""
    grouped: dict[str, dict[str, list[Sample]]] = {}
    for s in samples:
        grouped.setdefault(s.workload, {}).setdefault(s.tool, []).append(s)
    out: dict[str, dict[str, ToolStats]] = {}
    for wl, by_tool in grouped.items():
        stats: dict[str, ToolStats] = {}
        for tool, ss in by_tool.items():
            # run < 0 marks a counting run through the proxy: its requests count, its
            # time does not (the proxy sits in its path).
            good = [s for s in ss if s.ok and s.run >= 0]
            secs = [s.seconds for s in good]
            cpu_c = [s.client_cpu for s in good if s.client_cpu is not None]
            cpu_s = [s.server_cpu for s in good if s.server_cpu is not None]
            rss = [s.client_peak_rss for s in good if s.client_peak_rss is not None]
            floors = [s.client_rss_floor for s in good if s.client_rss_floor is not None]
            extra: dict[str, Any] = {}
            for s in ss:  # counted runs (run < 0) carry figures too (bytes on the wire)
                if s.ok:
                    extra.update(s.extra)
            stats[tool] = ToolStats(
                tool=tool,
                kind=kinds.get(tool, "peer"),
                runs=len([s for s in ss if s.run >= 0]),
                failures=len([s for s in ss if not s.ok]),
                median=_median(secs),
                min=min(secs) if secs else None,
                max=max(secs) if secs else None,
                bytes=_last([s.bytes for s in good]),
                files=_last([s.files for s in good]),
                # Requests are counted in separate runs through the proxy: the last count wins.
                requests=_last([s.requests for s in ss]),
                by_kind=_last([s.by_kind for s in ss]),
                client_cpu=_median(cpu_c),
                server_cpu=_median(cpu_s),
                client_peak_rss=max(rss) if rss else None,
                client_rss_floor=max(floors) if floors else None,
                errors=[s.error for s in ss if s.error][:3],
                extra=extra,
            )
        d = stats.get(DSHUB)
        for st in stats.values():
            if d is not None and d.median is not None and st.median:
                st.ratio_dshub = d.median / st.median
        out[wl] = stats
    return out


def fastest_peer(stats: dict[str, ToolStats]) -> ToolStats | None:
    """The fastest tool that is a real peer (not dshub, not rclone-as-dshub, not the floor)."""
    peers = [s for s in stats.values() if s.kind == "peer" and s.median is not None]
    return min(peers, key=lambda s: s.median or 0.0) if peers else None


def _ratio_check(tid: str, text: str, num: ToolStats | None, den: ToolStats | None, limit: float) -> TargetCheck:
    if num is None or den is None or num.median is None or den.median is None:
        missing = "dshub" if num is None or num.median is None else "the comparison tool"
        return TargetCheck(tid, text, None, limit, None, f"not measured ({missing} missing or failed)")
    ratio = num.median / den.median
    return TargetCheck(
        tid, text, ratio, limit, ratio <= limit,
        f"{num.median:.2f} s vs {den.tool} {den.median:.2f} s",
    )


def evaluate_targets(agg: dict[str, dict[str, ToolStats]], noop_files: int) -> list[TargetCheck]:
    """The issue's targets, each a ratio or a limit measured in this one run."""
    checks: list[TargetCheck] = []
    for wl in ("A_upload", "B_upload", "D_download_big", "D_download_small"):
        stats = agg.get(wl)
        if not stats:
            continue
        d = stats.get(DSHUB)
        fp = fastest_peer(stats)
        name = fp.tool if fp else "fastest peer"
        checks.append(_ratio_check(f"{wl}:peer", f"{wl}: dshub ≤ 1.00 × fastest peer ({name})", d, fp, 1.00))
        checks.append(
            _ratio_check(
                f"{wl}:wrapper", f"{wl}: dshub ≤ 1.03 × raw rclone with dshub's flags", d,
                stats.get(RCLONE_SAME_FLAGS), 1.03,
            )
        )
    c = agg.get("C_noop")
    if c:
        d = c.get(DSHUB)
        limit = 1 + noop_files / 1000
        # The target is about the skip check against storage (listing, not a HEAD per
        # file): S3 requests are compared with the limit; dshub's calls to its own hub
        # (counted too, key "hub api") are shown beside them.
        text = f"C: dshub S3 requests ≤ 1 + files/1000 = {limit:g}"
        if d is None or d.requests is None:
            checks.append(TargetCheck("C:requests", text, None, limit, None, "not measured"))
        else:
            kinds = d.by_kind or {}
            s3 = sum(v for k, v in kinds.items() if k != "hub api")
            checks.append(TargetCheck("C:requests", text, float(s3), limit, s3 <= limit,
                                      ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))))
        aws = c.get("aws")
        text = "C: dshub no-op ≥ 10 × faster than aws s3 sync"
        if d is None or aws is None or not d.median or aws.median is None:
            checks.append(TargetCheck("C:vs-aws", text, None, 10.0, None, "not measured"))
        else:
            speedup = aws.median / d.median
            # Stored as dshub/aws (like every other ratio); passes when ≤ 0.1.
            checks.append(TargetCheck("C:vs-aws", text, d.median / aws.median, 0.1, speedup >= 10.0,
                                      f"{speedup:.1f} × faster ({d.median:.2f} s vs {aws.median:.2f} s)"))
    checks += _versions_checks(agg.get("G_versions"))
    e = agg.get("E_startup")
    if e:
        for tool, limit in (("dshub --version", 0.15), ("dshub ls", 0.4)):
            st = e.get(tool)
            text = f"E: `{tool}` < {limit} s"
            if st is None or st.median is None:
                checks.append(TargetCheck(f"E:{tool}", text, None, limit, None, "not measured"))
            else:
                checks.append(TargetCheck(f"E:{tool}", text, st.median, limit, st.median < limit,
                                          f"median of {st.runs}"))
    return checks + big_file_checks(agg)


# F's bound on dshub's waste: every transfer in flight loses at most one part.
F_TRANSFERS, F_PART = 8, 64 * 2**20
RSS_LIMIT = 512 * 2**20


def big_file_checks(agg: dict[str, dict[str, ToolStats]]) -> list[TargetCheck]:
    """F's real waste (all bytes sent − data) and H's speed and memory targets."""
    checks: list[TargetCheck] = []
    f = agg.get("F_resume") or {}
    d = f.get(DSHUB)
    if d is not None and d.extra.get("real_waste") is not None:
        w = d.extra["real_waste"]
        limit = F_TRANSFERS * F_PART
        checks.append(TargetCheck("F:waste", "F: dshub's real waste (MiB) ≤ transfers × part size (8 × 64 MiB)",
                                  w / 2**20, limit / 2**20, w <= limit, f"{w / 2**20:.1f} MiB"))
        for peer, st in f.items():
            pw = st.extra.get("real_waste")
            if peer == DSHUB or st.kind != "peer" or pw is None:
                continue
            ok = w <= 0.1 * pw if pw > 0 else w <= 0
            checks.append(TargetCheck(f"F:vs-{peer}", f"F: dshub's real waste ≤ 0.1 × {peer}'s", w / pw if pw else None,
                                      0.1, ok, f"{w / 2**20:.1f} MiB vs {pw / 2**20:.1f} MiB"))
    for wl in ("H_upload_big", "H_download_big"):
        stats = agg.get(wl)
        if not stats:
            continue
        d = stats.get(DSHUB)
        fp = fastest_peer(stats)
        checks.append(_ratio_check(f"{wl}:peer", f"{wl}: dshub ≤ 1.00 × fastest peer ({fp.tool if fp else '?'})",
                                   d, fp, 1.00))
        # "≥ 0.95 × its own single-object path" in throughput = time ≤ 1 / 0.95 of it.
        checks.append(_ratio_check(f"{wl}:single", f"{wl}: dshub's throughput ≥ 0.95 × its one-object path",
                                   d, stats.get("dshub-single"), round(1 / 0.95, 3)))
        if d is not None:
            rss = d.client_peak_rss
            checks.append(TargetCheck(f"{wl}:client-rss", f"{wl}: dshub client peak RSS < 512 MiB",
                                      rss / 2**20 if rss else None, 512.0, rss < RSS_LIMIT if rss else None,
                                      f"{rss / 2**20:.0f} MiB" if rss else "not seen"))
            hub = d.extra.get("hub_peak_rss")
            checks.append(TargetCheck(f"{wl}:hub-rss", f"{wl}: hub peak RSS < 512 MiB (hub or its rclone rcd)",
                                      hub / 2**20 if hub else None, 512.0, hub < RSS_LIMIT if hub else None,
                                      f"{hub / 2**20:.0f} MiB" if hub else "not measured"))
    return checks


def _share_check(tid: str, text: str, d: ToolStats | None, key: str, limit: float) -> TargetCheck:
    """``d.extra[key] / d.extra["changed_bytes"]`` against ``limit``."""
    x = (d.extra if d is not None else {}) or {}
    value, changed = x.get(key), x.get("changed_bytes")
    if value is None or not changed:
        return TargetCheck(tid, text, None, limit, None, "not measured")
    ratio = value / changed
    return TargetCheck(tid, text, ratio, limit, ratio <= limit, f"{value} B for {changed} B changed")


def _versions_checks(g: dict[str, ToolStats] | None) -> list[TargetCheck]:
    if not g:
        return []
    d = g.get(DSHUB)
    fp = fastest_peer(g)
    return [
        _share_check("G:wire", "G: dshub's bytes on the wire ≤ 1.02 × the changed bytes", d, "wire_bytes", 1.02),
        _ratio_check("G:first", "G: dshub's new version ≤ 0.1 × its own first upload", d, g.get("dshub-first"), 0.1),
        _ratio_check("G:peer", f"G: dshub ≤ 1.00 × fastest peer ({fp.tool if fp else 'fastest peer'})", d, fp, 1.0),
        _share_check("G:growth", "G: local store growth ≤ 1.05 × the changed bytes", d, "growth_bytes", 1.05),
    ]


def to_json(meta: dict[str, Any], agg: dict[str, dict[str, ToolStats]], checks: list[TargetCheck],
            samples: list[Sample]) -> dict[str, Any]:
    """The machine-readable document written to benchmarks/results.json."""
    return {
        "schema": 1,
        **meta,
        "workloads": {
            wl: {"title": WORKLOADS.get(wl, wl), "tools": {t: asdict(s) for t, s in stats.items()}}
            for wl, stats in sorted(agg.items(), key=lambda kv: list(WORKLOADS).index(kv[0])
                                    if kv[0] in WORKLOADS else 99)
        },
        "targets": [asdict(c) for c in checks],
        "samples": [asdict(s) for s in samples],
    }
