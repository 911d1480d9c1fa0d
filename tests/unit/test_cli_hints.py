"""The "what to do next" table: keyed by error code, then type, phrased for the run's context."""

from __future__ import annotations

import pytest

from dshub.cli.hints import HintContext, context_from, hint_for, with_hint
from dshub.errors import (
    AuthError,
    ConflictError,
    DshubError,
    HubUnreachableError,
    NotFoundError,
    NotLoggedInError,
    UsageError,
)


def test_rejected_token_names_the_profile_to_log_in_again() -> None:
    e = AuthError("token rejected by http://h", code="unauthorized")
    assert hint_for(e, HintContext()) == "run `dshub login` with a valid token"
    assert hint_for(e, HintContext(profile="al2")) == "run `dshub login --profile al2` with a valid token"


def test_rejected_token_from_the_environment_says_the_variable_was_rejected() -> None:
    e = AuthError("token rejected by http://h", code="unauthorized")
    hint = hint_for(e, HintContext(profile="al2", token_from_env=True))
    assert hint is not None and "DSHUB_TOKEN" in hint and "dshub login" not in hint


def test_not_logged_in_by_code() -> None:
    assert hint_for(NotLoggedInError("x", code="no_hub"), HintContext(profile="ci")) == (
        "run `dshub login --profile ci --hub URL` or set DSHUB_HUB_URL"
    )
    assert hint_for(NotLoggedInError("x", code="no_token"), HintContext()) == "run `dshub login` or set DSHUB_TOKEN"


def test_code_wins_over_type_and_most_specific_type_wins() -> None:
    assert "dshub abort" in (hint_for(ConflictError("open", code="session_open"), HintContext()) or "")
    assert hint_for(NotFoundError("gone"), HintContext()) == "see `dshub ls` for what you can read"
    where = hint_for(HubUnreachableError("down"), HintContext(hub_from_env=True))
    assert where == "is the hub running? check DSHUB_HUB_URL"
    assert hint_for(UsageError("bad name"), HintContext()) is None  # the message says it all
    assert hint_for(DshubError("plain"), HintContext()) is None


def test_one_line() -> None:
    assert with_hint("token rejected by http://h", "run `dshub login`") == (
        "token rejected by http://h: run `dshub login`"
    )
    assert with_hint("cannot reach hub at http://h: connection failed", "check it") == (
        "cannot reach hub at http://h: connection failed; check it"
    )
    assert with_hint("bad", None) == "bad"


@pytest.mark.parametrize(
    ("argv", "env", "profile", "from_env"),
    [
        (["ls", "--profile", "al2"], {}, "al2", False),
        (["ls", "-p", "al2"], {"DSHUB_TOKEN": "t"}, "al2", True),
        (["ls", "--profile=x"], {"DSHUB_PROFILE": "y"}, "x", False),
        (["ls"], {"DSHUB_PROFILE": "y"}, "y", False),
        (["cat", "--", "-p", "z"], {"DSHUB_PROFILE": "y"}, "y", False),
    ],
)
def test_context_from_argv_and_environment(argv, env, profile, from_env) -> None:
    c = context_from(argv, env)
    assert (c.profile, c.token_from_env) == (profile, from_env)


def test_a_refusal_carries_no_extra_hint() -> None:
    from dshub.errors import PermissionDeniedError

    e = PermissionDeniedError("permission denied: only the owner may change alice/x", code="forbidden")
    assert hint_for(e, HintContext()) is None
