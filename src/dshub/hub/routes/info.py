"""``/info`` and ``/whoami``."""

from __future__ import annotations

from fastapi import APIRouter

from dshub.version import __version__
from dshub.hub.db import utcnow
from dshub.hub.deps import CurrentUser, RuntimeDep
from dshub.hub.errors import ERROR_RESPONSES
from dshub.hub.service import user_out
from dshub.models import HubInfo, User

router = APIRouter(tags=["info"])


@router.get("/info", response_model=HubInfo)
def info(runtime: RuntimeDep) -> HubInfo:
    """What this hub is and what time it thinks it is (no auth)."""
    return HubInfo(
        version=__version__,
        broker=runtime.settings.broker,
        anonymous_read=runtime.settings.anonymous_read,
        server_time=utcnow(),
    )


@router.get("/whoami", response_model=User, responses={401: ERROR_RESPONSES[401]})
def whoami(user: CurrentUser) -> User:
    """The user the bearer token belongs to."""
    return user_out(user)
