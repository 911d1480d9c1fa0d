"""Readiness checks, request-id rules and the JSON log format, without a hub process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dshub.hub.db import make_engine, make_sessionmaker
from dshub.hub.observability import JsonFormatter, readiness, request_id_var, sane_request_id
from dshub.hub.runtime import HubRuntime
from dshub.hub.settings import HubSettings
from tests.conftest import free_port


def test_readiness_names_the_failing_dependency(tmp_path: Path) -> None:
    # A real engine on a port nothing listens on: the database check fails, with no URL.
    url = f"postgresql://nobody:pw-secret@127.0.0.1:{free_port()}/x?connect_timeout=2"
    engine = make_engine(url)
    rt = HubRuntime(settings=HubSettings(data_dir=tmp_path), engine=engine, sessionmaker=make_sessionmaker(engine))
    checks = readiness(rt)
    assert checks["database"].startswith("failed: ") and "pw-secret" not in checks["database"]
    assert checks["broker"] == "not running"


def test_readiness_ok_on_sqlite_without_broker(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    rt = HubRuntime(settings=HubSettings(data_dir=tmp_path), engine=engine, sessionmaker=make_sessionmaker(engine))
    assert readiness(rt) == {"database": "ok", "broker": "not running"}


def test_sane_request_ids() -> None:
    assert sane_request_id("abc-1.2:3_x") == "abc-1.2:3_x"
    for bad in (None, "", "a b", "x" * 129, "new\nline", "ünï", "a\"b"):
        assert sane_request_id(bad) is None


def test_json_formatter_one_object_with_request_id_and_extras() -> None:
    rec = logging.LogRecord("dshub.hub", logging.WARNING, __file__, 1, "pass %d failed", (3,), None)
    rec.route = "/api/v1/info"
    token = request_id_var.set("rid-9")
    try:
        out = json.loads(JsonFormatter().format(rec))
    finally:
        request_id_var.reset(token)
    assert out["message"] == "pass 3 failed" and out["level"] == "warning" and out["logger"] == "dshub.hub"
    assert out["request_id"] == "rid-9" and out["route"] == "/api/v1/info"


def test_json_formatter_keeps_the_traceback_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("dshub.hub", logging.ERROR, __file__, 1, "unexpected", (), sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    out = json.loads(line)
    assert out["exc_type"] == "ValueError" and "boom" in out["traceback"]
