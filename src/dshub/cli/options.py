"""Shared ``Annotated`` option and argument aliases, so every command spells them alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout (the hub's models).")
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        metavar="NAME",
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


QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only results and errors (no progress, no messages).")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also print what dshub does (its log, level INFO).")]


def with_output_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with ``--quiet``/``-q`` and ``--verbose``/``-v`` added: one definition for every command.

    The flags land in :data:`dshub.cli.output.FLAGS`, which every ``Output`` reads, so no
    command has to pass them along.
    """
    import functools
    import inspect
    import typing

    # Resolve the command's annotations here (they are strings under `from __future__
    # import annotations`): Typer reads them from the wrapper, whose module differs.
    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    sig = sig.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()])
    extra = [
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt),
        inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=VerboseOpt),
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, quiet: bool = False, verbose: bool = False, **kwargs: Any) -> Any:
        from dshub.cli.output import set_flags

        set_flags(quiet=quiet, verbose=verbose)
        return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**hints, "quiet": QuietOpt, "verbose": VerboseOpt}
    return wrapper
