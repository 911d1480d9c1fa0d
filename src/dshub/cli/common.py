"""Small helpers shared by the client commands: the library client, and checking a REF argument."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dshub.errors import UsageError

if TYPE_CHECKING:
    from dshub.library.client import Client
    from dshub.refs import DatasetRef


def connect(profile: str | None) -> Client:
    """The library's :class:`~dshub.library.client.Client` for ``--profile``; NotLoggedInError without a token."""
    from dshub.api.auth import require_login
    from dshub.library.client import Client

    login = require_login(profile)
    return Client(hub_url=login.hub_url, token=login.token, profile=login.profile)


def parse_ref_arg(text: str, *, allow_path: bool = False, allow_version: bool = True) -> DatasetRef:
    """Parse a REF argument (the library's parser); a bad one, or a part the command takes not, is exit 2."""
    from dshub.library.client import Client

    ref = Client.parse(text)
    if ref.path and not allow_path:
        raise UsageError(f"{text!r}: a file path (':PATH') makes no sense here; give [OWNER/]NAME[@vN]")
    if (ref.version is not None or ref.latest) and not allow_version:
        raise UsageError(f"{text!r}: a version ('@vN') makes no sense here; give [OWNER/]NAME")
    return ref
