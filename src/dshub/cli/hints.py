"""What to do next after an error: one table, keyed by error code, then by error type.

Errors raised by the library and the transfer engine say what went wrong; only the
command line knows which command, profile and environment the user is in, so the
advice is added here (like huggingface_hub's ``cli/_errors.py``). A rejected token on
profile ``al2`` asks for ``dshub login --profile al2``; with ``DSHUB_TOKEN`` set, the
variable is what was rejected, and logging in again would not help.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dshub.api.config import DEFAULT_PROFILE
from dshub.errors import (
    AuthError,
    CommitRefusedError,
    DshubError,
    HubResponseError,
    HubUnreachableError,
    NotFoundError,
    NotLoggedInError,
    SessionExpiredError,
)


@dataclass(frozen=True)
class HintContext:
    """Where the failed command ran: the profile it used and where hub and token came from."""

    profile: str = DEFAULT_PROFILE
    token_from_env: bool = False
    hub_from_env: bool = False

    @property
    def login_cmd(self) -> str:
        """``dshub login``, with ``--profile`` when the profile is not the default one."""
        return "dshub login" if self.profile == DEFAULT_PROFILE else f"dshub login --profile {self.profile}"


def _profile_in(argv: Sequence[str]) -> str | None:
    for i, word in enumerate(argv):
        if word == "--":
            return None
        if word in ("--profile", "-p") and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--profile="):
            return word.split("=", 1)[1]
    return None


def context_from(argv: Sequence[str], environ: dict[str, str] | None = None) -> HintContext:
    """The context of a run: ``--profile`` in ``argv``, else ``$DSHUB_PROFILE``, else the configured default."""
    env = os.environ if environ is None else environ
    profile = _profile_in(argv) or env.get("DSHUB_PROFILE")
    if not profile:
        try:
            from dshub.api.config import load_config

            profile = load_config().default_profile
        except DshubError:  # an unreadable config has its own error; the hint stays generic
            profile = DEFAULT_PROFILE
    return HintContext(
        profile=profile, token_from_env=bool(env.get("DSHUB_TOKEN")), hub_from_env=bool(env.get("DSHUB_HUB_URL"))
    )


def _rejected(_e: DshubError, c: HintContext) -> str:
    if c.token_from_env:
        return "DSHUB_TOKEN holds the rejected token; set it to a valid one, or unset it to use your stored login"
    return f"run `{c.login_cmd}` with a valid token"


def _no_hub(_e: DshubError, c: HintContext) -> str:
    return f"run `{c.login_cmd} --hub URL` or set DSHUB_HUB_URL"


def _no_token(_e: DshubError, c: HintContext) -> str:
    return f"run `{c.login_cmd}` or set DSHUB_TOKEN"


def _unreachable(_e: DshubError, c: HintContext) -> str:
    where = "DSHUB_HUB_URL" if c.hub_from_env else f"the hub URL of profile {c.profile!r} (`{c.login_cmd} --hub URL`)"
    return f"is the hub running? check {where}"


def _fixed(text: str) -> Callable[[DshubError, HintContext], str]:
    return lambda _e, _c: text


Hint = Callable[[DshubError, HintContext], str]

#: Hub error codes (``ErrorInfo.code``) and client-side codes → hint. Looked up first.
BY_CODE: dict[str, Hint] = {
    "no_hub": _no_hub,
    "no_token": _no_token,
    "unauthorized": _rejected,
    "no_session": _fixed("see `dshub sessions` for the open ones"),
    "session_open": _fixed("re-run the same upload to resume it, or `dshub abort REF` to drop it"),
    "session_expired": _fixed("run the command again to open a new session"),
    "session_closed": _fixed("run the command again to open a new session"),
    "manifest_mismatch": _fixed("the session stays open: re-run the upload to resume"),
    "rate_limited": _fixed("try again in a moment"),
}

#: Error types → hint, for errors without a code in ``BY_CODE`` (the most specific type wins).
#: A refusal (403) has none: the hub's message says who may do it.
BY_TYPE: dict[type[DshubError], Hint] = {
    AuthError: _rejected,
    NotLoggedInError: _no_token,
    HubUnreachableError: _unreachable,
    NotFoundError: _fixed("see `dshub ls` for what you can read"),
    SessionExpiredError: _fixed("run the command again to open a new session"),
    CommitRefusedError: _fixed("the session stays open: re-run the upload to resume"),
    HubResponseError: _fixed("check that the hub URL points at a dshub hub, and look at the hub's logs"),
}


def hint_for(e: DshubError, context: HintContext) -> str | None:
    """The "what to do next" for ``e`` in ``context``, or None when the message says it all."""
    fn = BY_CODE.get(e.code or "")
    if fn is None:
        fn = next((BY_TYPE[t] for t in type(e).__mro__ if t in BY_TYPE), None)
    return fn(e, context) if fn is not None else None


def with_hint(message: str, hint: str | None) -> str:
    """One line: the message, then the hint after a colon (or a semicolon when the message has one)."""
    if not hint:
        return message
    sep = "; " if ": " in message else ": "
    return f"{message.rstrip('.')}{sep}{hint}"
