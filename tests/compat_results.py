"""Record the outcome of every ``@pytest.mark.compat(client, operation)`` test.

At the end of a session that ran any, ``build/compat-results.json`` holds one row per test
(client, operation, outcome, the first line of a failure) and the versions of the clients
installed, which ``scripts/compat_matrix.py`` renders into docs/compatibility.md.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "build" / "compat-results.json"
# Client name in the matrix → the distribution whose version is reported.
DISTRIBUTIONS = {
    "boto3": "boto3", "s3fs": "s3fs", "pyarrow": "pyarrow", "polars": "polars", "duckdb": "duckdb",
    "dask": "dask", "fsspec (dshub://)": "fsspec", "pandas": "pandas",
}

_rows: list[dict[str, Any]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    mark = item.get_closest_marker("compat")
    if mark is None:
        return
    rep = outcome.get_result()
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        detail = ""
        if rep.failed:
            detail = (str(call.excinfo.value).strip().splitlines() or [""])[0][:200] if call.excinfo else ""
        _rows.append({"client": mark.args[0], "operation": mark.args[1], "test": item.nodeid,
                      "outcome": rep.outcome, "detail": detail})


def _rclone_version() -> str | None:
    from tests.conftest import find_rclone_bin

    exe = find_rclone_bin()
    if exe is None:
        return None
    out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30).stdout
    return out.split()[1] if out else None


def _aws_cli_version() -> str | None:
    # The AWS CLI lives in a venv of its own (see the Makefile): ask the binary.
    from tests.integration.test_compat import _aws_exe

    exe = _aws_exe()
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    words = (out.stdout or out.stderr).split()
    return words[0].split("/", 1)[1] if words and "/" in words[0] else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _rows:
        return
    versions: dict[str, str | None] = {}
    for client, dist in DISTRIBUTIONS.items():
        try:
            versions[client] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[client] = None
    versions["AWS CLI"] = _aws_cli_version()
    versions["rclone"] = _rclone_version()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "versions": versions,
        "results": _rows,
    }, indent=1) + "\n")
