"""Health, readiness, Prometheus metrics, request ids and JSON logs of a real hub process,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubFactory, HubProcess
from tests.integration.test_hub_upload import _open, _put

pytestmark = pytest.mark.integration
HUB_DATABASES = ("sqlite", "postgresql")


@pytest.fixture(scope="module")
def env(module_hub: HubFactory) -> dict[str, Any]:
    h = module_hub("--log-format", "json", "--log-level", "info")
    return {"hub": h, "token": h.create_user("olga")}


def _metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text format (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return None


def test_healthz_and_readyz(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    r = httpx.get(f"{h.url}/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = httpx.get(f"{h.url}/readyz", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("req-42.a:b_c", True), ("has space", False), ("x" * 129, False), ("", False), (None, False)],
)
def test_request_id_in_and_out(env: dict[str, Any], sent: str | None, echoed: bool) -> None:
    h: HubProcess = env["hub"]
    headers = {} if sent is None else {"X-Request-ID": sent}
    for path, status in (("/whoami", 401), ("/no/such/route", 404), ("/datasets?limit=-1", 401)):
        r = httpx.get(f"{h.api}{path}", headers=headers, timeout=10)
        assert r.status_code == status, r.text
        rid = r.headers.get("X-Request-ID")
        assert rid, f"no request id on {path}"
        if echoed:
            assert rid == sent
        else:
            assert rid != sent and re.fullmatch(r"[0-9a-f]{32}", rid)


def test_json_log_lines_carry_the_request_id_and_no_token(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    r = httpx.get(f"{h.api}/whoami", headers={"Authorization": f"Bearer {env['token']}", "X-Request-ID": "find-me-1"},
                  timeout=10)
    assert r.status_code == 200
    # The request's line is written once the response is sent: wait for it to land.
    deadline = time.monotonic() + 15
    while True:
        records = [json.loads(line) for line in h.log().splitlines() if line.startswith("{")]
        mine = [rec for rec in records if rec.get("request_id") == "find-me-1" and "route" in rec]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert mine and mine[-1]["route"] == "/api/v1/whoami" and mine[-1]["status"] == 200
    assert {"time", "level", "logger", "message"} <= set(mine[-1])
    assert env["token"] not in h.log()
    # Everything the hub logs after start-up is JSON (the "listening" line is the CLI's).
    assert all(line.startswith("{") for line in h.log().splitlines() if line and not line.startswith("dshub hub"))


def test_metrics_count_routes_sessions_grants_and_commits(
    env: dict[str, Any], rclone_bin: str, tmp_path: Path
) -> None:
    h: HubProcess = env["hub"]
    with h.client(env["token"]) as c:
        assert c.post("/datasets", json={"name": "metered"}).status_code == 201
        s = _open(c, "olga", "metered").json()
        before = httpx.get(f"{h.url}/metrics", timeout=10)
        assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
        assert _metric(before.text, "dshub_open_sessions") == 1
        assert (_metric(before.text, "dshub_live_grants") or 0) >= 1
        assert _put(rclone_bin, s, s["location"]["prefix"] + "a.txt", b"abc", tmp_path).returncode == 0
        r = c.post(f"/sessions/{s['id']}/commit", json={"files": [{"path": "a.txt", "size": 3}]})
        assert r.status_code == 201, r.text
        c.get("/datasets/olga/nope-missing")
    text = httpx.get(f"{h.url}/metrics", timeout=10).text
    route = "/api/v1/sessions/{session_id}/commit"
    assert _metric(text, "dshub_http_requests_total", method="POST", route=route, status="201") == 1
    assert _metric(text, "dshub_http_request_duration_seconds_count", method="POST", route=route) == 1
    assert _metric(text, "dshub_commit_duration_seconds_count") == 1
    assert _metric(text, "dshub_open_sessions") == 0
    # Templates, not raw paths: the dataset name never becomes a label.
    assert _metric(text, "dshub_http_requests_total", method="GET", route="/api/v1/datasets/{owner}/{name}",
                   status="404") == 1
    assert "nope-missing" not in text and s["id"] not in text


def test_bad_log_format_is_a_usage_error(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "dshub.cli.main", "hub", "serve", "--data-dir", str(tmp_path), "--log-format", "xml"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "log format" in res.stderr, res.stderr
