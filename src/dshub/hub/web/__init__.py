"""The hub's web pages at ``/``: browse datasets, preview files, copy the lines that open them.

``install_web(app)`` adds the page routes beside the API; they share its registry,
access rules and service functions (see ``routes``).
"""

from __future__ import annotations

from fastapi import FastAPI


def install_web(app: FastAPI) -> None:
    """Mount the pages, their templates and static files on ``app`` (built by ``create_app``)."""
    from dshub.hub.web.render import make_environment
    from dshub.hub.web.routes import load_static, router

    app.state.web_templates = make_environment()
    app.state.web_static = load_static()
    app.include_router(router)
