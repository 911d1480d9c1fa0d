"""What an operator watches: logs with request ids, Prometheus metrics, health routes.

Logs are text or one JSON object a line, each with the request id.

The request id comes from the client's ``X-Request-ID`` header when it is a sane token,
else the hub makes one; it is sent back on every response and set in a context variable
that the log formatter reads, so every line logged while serving a request carries it.

``/healthz`` says the process serves; ``/readyz`` checks the database and the broker
(503 with the failing check named otherwise); ``/metrics`` is Prometheus' text format.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from dshub.hub.runtime import HubRuntime

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("dshub_request_id", default=None)
# What we accept from a client: short, printable, no spaces (it lands in log lines).
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def sane_request_id(value: str | None) -> str | None:
    """The client's id if it is safe to log and echo, else None (the hub makes one)."""
    return value if value is not None and _SANE_ID.fullmatch(value) else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, extra fields."""

    # uvicorn adds "color_message" (the message with terminal escapes) to its records.
    _STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        for k, v in record.__dict__.items():
            if k not in self._STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            # The traceback, in one field: an operator finds it by the request id.
            out["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """The human format, with ``[request id]`` when a request is being served."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id_var.get()
        return f"{line} [{rid}]" if rid else line


def configure_logging(level: str, fmt: str) -> None:
    """Root logging to stderr in ``fmt`` ("text" or "json"); uvicorn's loggers follow it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # One line per call the hub makes to its rclone rcd: only worth it when debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)


# --- request ids, metrics, health --------------------------------------------------------

_log_requests = logging.getLogger("dshub.hub.requests")
# Route label of requests no route matched: one value, so scanners cannot grow the series.
UNMATCHED = "<unmatched>"
COMMIT_ROUTE_SUFFIX = "/sessions/{session_id}/commit"


class HubMetrics:
    """The hub's Prometheus metrics, in a registry of its own (several hubs per process in
    tests; nothing global). Session and grant counts are read from the database at scrape
    time, so every replica reports the registry-wide figure."""

    def __init__(self, runtime: HubRuntime) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dshub_http_requests", "HTTP requests served, by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "dshub_http_request_duration_seconds", "Time to serve a request, by route template.",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.commits = Histogram(
            "dshub_commit_duration_seconds", "Time to verify and publish a version (successful commits).",
            registry=self.registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.registry.register(_RegistryCollector(runtime))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if method == "POST" and route.endswith(COMMIT_ROUTE_SUFFIX) and status < 300:
            self.commits.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _RegistryCollector:
    """Open upload sessions and live grants, counted in the database when scraped."""

    def __init__(self, runtime: HubRuntime) -> None:
        self._runtime = runtime

    def describe(self) -> list[object]:
        return []  # counted at scrape time: nothing to check at registration

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select

        from dshub.hub.db import GrantRow, SessionRow, utcnow

        now = utcnow()
        try:
            with self._runtime.sessionmaker() as db:
                sessions = db.scalar(
                    select(func.count()).select_from(SessionRow)
                    .where(SessionRow.state == "open", SessionRow.expires_at > now)
                )
                grants = db.scalar(
                    select(func.count()).select_from(GrantRow)
                    .where(GrantRow.revoked_at.is_(None), GrantRow.expires_at > now)
                )
        except Exception as e:  # a scrape must not fail because the database does
            logging.getLogger("dshub.hub").warning("metrics: database not readable: %s", type(e).__name__)
            return
        yield GaugeMetricFamily("dshub_open_sessions", "Upload sessions open and not expired.", value=sessions or 0)
        yield GaugeMetricFamily("dshub_live_grants", "Credential grants not revoked and not expired.", value=grants or 0)


class ObservabilityMiddleware:
    """Outermost ASGI layer: request id in and out, one metrics sample and one log line
    per request. Outside Starlette's error middleware, so a 500 carries the id too."""

    def __init__(self, app: ASGIApp, metrics: HubMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers, MutableHeaders

        rid = sane_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.observe(method, route, status, seconds)
            _log_requests.info(
                "%s %s %d %.1f ms", method, route, status, seconds * 1000,
                extra={"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)},
            )
            request_id_var.reset(token)


def route_template(scope: Scope) -> str:
    """The matched route's template (``/api/v1/sessions/{session_id}/commit``), never the
    raw path: one series per route, whatever ids clients send."""
    from dshub.models import API_PREFIX

    template = getattr(scope.get("route"), "path", None)
    if not template:
        return UNMATCHED
    # A route knows its router's prefix but not the prefix the router was included under.
    if scope.get("path", "").startswith(API_PREFIX + "/") and not template.startswith(API_PREFIX + "/"):
        template = API_PREFIX + template
    return str(template)


def install_observability(app: FastAPI, runtime: HubRuntime) -> HubMetrics:
    """``/healthz``, ``/readyz``, ``/metrics`` and the request-id/metrics middleware."""
    from fastapi import Response
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    metrics = HubMetrics(runtime)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """The process is up and serving (no dependency checked: restart only when this fails)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready for traffic: the database answers and the credential broker works."""
        checks = await run_in_threadpool(readiness, runtime)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics_route() -> Response:
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    inner_build = app.build_middleware_stack

    # Starlette builds its stack (error middleware outermost) on the first request; wrap
    # the finished stack so even its 500 responses get the request id and are counted.
    def build() -> ASGIApp:
        return ObservabilityMiddleware(inner_build(), metrics)

    app.build_middleware_stack = build  # type: ignore[method-assign]
    return metrics


def readiness(runtime: HubRuntime) -> dict[str, str]:
    """Each dependency: "ok" or one short reason (never a secret or a URL)."""
    from sqlalchemy import text

    checks: dict[str, str] = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"failed: {type(e).__name__}"
    broker = runtime.broker
    if broker is None:
        checks["broker"] = "not running"
        return checks
    try:
        rcd_pid = getattr(broker, "rcd_pid", None)
        if rcd_pid is not None and rcd_pid() is None:
            checks["broker"] = "rclone rcd is not running"
        else:
            runtime.storage().probe()
            checks["broker"] = "ok"
    except Exception as e:
        checks["broker"] = f"failed: {type(e).__name__}"
    return checks
