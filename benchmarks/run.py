"""``python benchmarks/run.py``: the same as ``python -m benchmarks`` from the repository root."""

import sys
from pathlib import Path

# Run as a script, Python puts benchmarks/ (not the repository root) on sys.path;
# add the root so ``import benchmarks`` resolves to this package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
