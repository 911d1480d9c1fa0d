"""Sizes, paths and run counts of the two modes (quick and full).

The full sizes are the issue's; the quick ones keep the same shapes (a few big files, many
small ones, a no-op over many files) small enough for a two-minute run on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / ".bench"  # gitignored: data, peers venv, hub data dirs, logs
DATA_DIR = BENCH_DIR / "data"
PEERS_VENV = BENCH_DIR / "venv-peers"
RESULTS_JSON = REPO / "benchmarks" / "results.json"
DOCS_MD = REPO / "docs" / "benchmarks.md"

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Shape:
    """A data set to generate: ``count`` files of ``size`` bytes, spread over folders."""

    name: str
    count: int
    size: int
    per_dir: int = 1000  # folders of at most this many files, like real data sets

    @property
    def total(self) -> int:
        return self.count * self.size


@dataclass(frozen=True)
class Mode:
    """Everything that differs between ``--quick`` and the full run."""

    name: str
    big: Shape  # workload A (and D, F)
    small: Shape  # workload B (and D)
    noop: Shape  # workload C
    versions: Shape  # workload G
    runs: int  # timed runs per tool (median of these)
    startup_runs: int  # workload E: runs per command


FULL = Mode(
    name="full",
    big=Shape("big", 8, 128 * MiB),
    small=Shape("small", 5000, 20 * KiB),
    noop=Shape("noop", 10_000, 512),
    versions=Shape("versions", 1000, 1 * MiB, per_dir=100),
    runs=3,
    startup_runs=5,  # 7 commands × (warm-up + runs); 7 runs cost ~5 s more of the 15 minutes
)

QUICK = Mode(
    name="quick",
    big=Shape("big-quick", 4, 32 * MiB),
    small=Shape("small-quick", 500, 20 * KiB),
    noop=Shape("noop-quick", 1000, 512),
    versions=Shape("versions-quick", 200, 256 * KiB, per_dir=50),
    runs=1,
    startup_runs=3,  # 7 commands × (warm-up + runs): 5 runs took ~17 s of the 2-minute budget
)

# Tiny sizes for developing the harness itself (``--tiny``): seconds, not minutes.
TINY = Mode(
    name="tiny",
    big=Shape("big-tiny", 2, 4 * MiB),
    small=Shape("small-tiny", 50, 20 * KiB),
    noop=Shape("noop-tiny", 200, 512),
    versions=Shape("versions-tiny", 100, 64 * KiB, per_dir=50),
    runs=1,
    startup_runs=3,
)

MODES = {m.name: m for m in (FULL, QUICK, TINY)}
