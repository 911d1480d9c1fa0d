"""dshub's benchmark harness (issue 6): dshub against raw rclone, aws s3, s5cmd and ``cp -r``.

Every tool writes to the same ``rclone serve s3`` endpoints of one local hub, over loopback,
with the same data and the same scoped credentials (taken from ``dshub creds``), so the
numbers compare tools and nothing else. Run ``python -m benchmarks --quick`` (under two
minutes) or ``python -m benchmarks`` (full, medians of three runs, under fifteen minutes);
results go to ``benchmarks/results.json`` and ``docs/benchmarks.md``.

Pure parts (aggregation, targets, Markdown) live in :mod:`benchmarks.results` and
:mod:`benchmarks.report` and are unit-tested; everything that starts processes is in
the other modules.
"""
