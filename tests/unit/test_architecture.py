"""The layers of DESIGN.md hold: import-linter's contracts (pyproject.toml) are kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_engine_and_command_line_functions_stay_simple() -> None:
    """No function in the transfer engine or the CLI is worse than radon's grade C."""
    from radon.complexity import cc_rank, cc_visit

    worse: list[str] = []
    for pkg in ("transfer", "cli"):
        for path in sorted((REPO / "src" / "dshub" / pkg).rglob("*.py")):
            for block in cc_visit(path.read_text()):
                if cc_rank(block.complexity) > "C":
                    worse.append(f"{path.relative_to(REPO)}:{block.lineno} {block.name} {cc_rank(block.complexity)}{block.complexity}")
    assert worse == []
