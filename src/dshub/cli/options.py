"""Shared ``Annotated`` option and argument aliases, so every command spells them alike."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout (the hub's models).")
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Login profile to use (see `dshub login --profile`).",
        envvar="DSHUB_PROFILE",
        show_envvar=True,
    ),
]
RefArg = Annotated[
    str, typer.Argument(metavar="REF", help="Dataset reference [OWNER/]NAME[@vN] (no owner = you).", show_default=False)
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def examples(*lines: str) -> str:
    r"""An ``epilog`` listing example command lines, kept verbatim by Click (the ``\b`` marker)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
