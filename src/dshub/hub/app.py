"""``create_app(settings)``: the hub's FastAPI application.

Building the app touches nothing (no disk, no broker), so ``dshub.hub.openapi`` can
render the OpenAPI document; the lifespan does the work: bring the schema to head (or refuse), start the
broker, re-arm live grants, run the sweeper; and undo it on shutdown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dshub.hub.bodyguard import BodyGuard
from dshub.hub.brokers.base import Broker, GrantSpec
from dshub.hub.datadir import prepare_data_dir
from dshub.hub.db import make_engine, make_sessionmaker
from dshub.hub.errors import install_error_handlers
from dshub.hub.observability import install_observability
from dshub.hub.routes import datasets, info, sessions, versions
from dshub.hub.runtime import HubRuntime
from dshub.hub.settings import HubSettings
from dshub.hub.web import install_web
from dshub.models import API_PREFIX
from dshub.version import __version__

log = logging.getLogger("dshub.hub")


class Sweeper:
    """Background thread: expire sessions, revoke lapsed credentials, every ``interval`` s."""

    def __init__(self, runtime: HubRuntime, interval: float) -> None:
        self._runtime = runtime
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dshub-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from dshub.hub.sessions import sweep

        while not self._stop.wait(self._interval):
            try:
                sweep(self._runtime)
            except Exception as e:  # keep sweeping; the next pass retries
                log.warning("sweeper pass failed: %s", type(e).__name__, exc_info=log.isEnabledFor(logging.DEBUG))


# Seconds the start-up waits for live grants to be re-armed before serving anyway.
RESTORE_WAIT = 1.0


def _restore(broker: Broker, grants: list[GrantSpec]) -> None:
    try:
        broker.restore(grants)
    except Exception as e:  # the broker stopped meanwhile, or rcd died: logged, not fatal
        log.warning("restoring %d live grants failed: %s", len(grants), type(e).__name__)


def create_app(settings: HubSettings, broker: Broker | None = None) -> FastAPI:
    """Build the hub app. ``broker`` overrides the one ``settings.broker`` names (tests)."""
    engine = make_engine(settings.resolved_database_url)
    runtime = HubRuntime(settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from dshub.hub.brokers.factory import build_broker
        from dshub.hub.sessions import live_grants

        prepare_data_dir(settings.data_dir, set_umask=False)  # `hub serve` set it already
        from dshub.hub.schema import ensure_schema

        ensure_schema(engine, migrate=settings.migrate)
        b = broker if broker is not None else build_broker(settings)
        b.start()
        runtime.broker = b
        sweeper: Sweeper | None = None
        restorer: threading.Thread | None = None
        try:
            # Re-arming hundreds of endpoints takes tens of seconds (about 0.15 s each):
            # past RESTORE_WAIT the hub answers meanwhile; a refresh re-arms its own grant.
            grants = live_grants(runtime)
            restorer = threading.Thread(target=_restore, args=(b, grants), name="dshub-restore", daemon=True)
            restorer.start()
            # A few grants (the usual case) are back before the first request is served.
            restorer.join(RESTORE_WAIT)
            try:
                runtime.storage().ensure_bucket()
            except Exception as e:
                log.warning("could not check the bucket: %s", type(e).__name__)
            sweeper = Sweeper(runtime, settings.sweep_interval)
            sweeper.start()
            yield
        finally:
            if sweeper is not None:
                sweeper.stop()
            runtime.broker = None
            b.stop()
            if restorer is not None:
                restorer.join(30)
            engine.dispose()

    app = FastAPI(
        title="dshub hub",
        version=__version__,
        description="Registry of versioned datasets; hands out short-lived, prefix-scoped S3 credentials.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.hub = runtime
    install_error_handlers(app)
    app.add_middleware(BodyGuard, runtime=runtime)
    install_observability(app, runtime)
    for r in (info.router, datasets.router, versions.router, sessions.router):
        app.include_router(r, prefix=API_PREFIX)
    install_web(app)
    return app
