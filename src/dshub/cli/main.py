"""The ``dshub`` command: Typer app and the one error boundary.

Command modules raise ``dshub.errors.DshubError`` subclasses; ``main()`` turns them into
one line on stderr and the documented exit code. No command calls ``sys.exit`` itself.
Heavy modules (httpx, rich tables, the hub's FastAPI) are imported inside commands so
``dshub --help`` and ``dshub --version`` start fast.
"""

from __future__ import annotations

import os
import sys

import typer

from dshub.cli.app import app
from dshub.errors import DshubError, ExitCode

def _register() -> None:
    # The hub's sub-commands import only typer at module level; FastAPI and friends
    # are imported when `dshub hub serve` runs.
    from typer.core import TyperCommand

    from dshub.cli.help import PlainHelpCommand, PlainHelpGroup
    from dshub.hub.cli import hub_app

    if not any(g.name == "hub" for g in app.registered_groups):  # main() may run more than once (tests)
        for c in hub_app.registered_commands:
            if c.cls in (None, TyperCommand):
                c.cls = PlainHelpCommand
        app.add_typer(hub_app, name="hub", help="Run and administer a dshub hub server.", cls=PlainHelpGroup)
    from dshub.cli import commands  # noqa: F401  (registers client commands on `app`)


def _only_invoked(argv: list[str]) -> typer.Typer:
    """``app``, or a copy of it holding only the command ``argv`` runs.

    Before parsing anything Typer turns every registered command into a Click command
    (type hints evaluated, one object per option): ~30 ms for dshub's fourteen, paid by
    every run. When the first word of ``argv`` names a command, the copy has no others;
    anything else (no command, ``--help``, a typo, shell completion) keeps them all, so
    the command list, "No such command" and completion see every command.
    """
    if os.environ.get("_DSHUB_COMPLETE"):
        # The shell asks for completions: register Typer's shell classes (its own
        # --install-completion would have, see dshub.cli.app).
        from typer.completion import completion_init

        completion_init()
        return app
    # The root options take no value, so the first word that is not an option is the command.
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None:
        return app
    import copy

    from typer.main import get_command_name

    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == word]
    groups = [g for g in app.registered_groups if g.name == word]
    if not (commands or groups):
        return app
    only = copy.copy(app)  # shallow: the lists are replaced below, `app` keeps its own
    only.registered_commands, only.registered_groups = commands, groups
    return only


def _json_requested(argv: list[str]) -> bool:
    """``--json`` (or ``creds --format json``) before any ``--``: stdout is for one JSON document."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    pairs = zip(words, words[1:])
    return "--json" in words or "--format=json" in words or any(
        a in ("--format", "-f") and b == "json" for a, b in pairs
    )


def _report(e: DshubError, argv: list[str]) -> None:
    """One line on stderr (message and what to do next); with ``--json`` also one JSON document on stdout."""
    from dshub.cli.hints import context_from, hint_for, with_hint
    from dshub.cli.sanitize import clean_line

    hint = hint_for(e, context_from(argv))
    print(f"Error: {clean_line(with_hint(e.message, hint))}", file=sys.stderr)
    for d in e.details[:50]:
        where = f"{d.path}: " if d.path else ""
        print(f"  {clean_line(where + d.problem)}", file=sys.stderr)
    if _json_requested(argv):
        _json_error(e.code or e.exit_code.name.lower(), e.message, int(e.exit_code), hint,
                    [d.model_dump(mode="json") for d in e.details])


def _json_error(code: str, message: str, exit_code: int, hint: str | None, details: list[object]) -> None:
    import json

    doc = {"error": {"code": code, "message": message, "hint": hint, "exit_code": exit_code, "details": details}}
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


def _click_error(e: Exception, argv: list[str]) -> int | None:
    """A Click usage error (bad option, missing argument): its usage text, and the code; None if not one.

    Typer vendors click privately (typer._click); duck-type its exceptions instead of
    importing them, so a Typer upgrade cannot break the error boundary.
    """
    show = getattr(e, "show", None)
    code = getattr(e, "exit_code", None)
    if not (callable(show) and isinstance(code, int)):
        return None
    show()
    if _json_requested(argv) and code:
        message = getattr(e, "format_message", lambda: str(e))()
        _json_error("usage", message, code, "see `--help` of the command", [])
    return code


def main() -> None:
    """Console-script entry point: run the app, map errors to exit codes."""
    _register()
    argv = sys.argv[1:]
    if argv and argv[-1] in ("--install-completion", "--show-completion"):
        from dshub.cli.app import default_shell

        argv = [*argv, default_shell()]
    try:
        # With standalone_mode=False, Click returns the code of a `typer.Exit(code)` raised
        # by a command instead of exiting: pass it on (e.g. `dshub doctor` → 1).
        rc = _only_invoked(argv)(args=argv, prog_name="dshub", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except DshubError as e:
        _report(e, argv)
        if os.environ.get("DSHUB_DEBUG"):
            raise
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        sys.exit(int(ExitCode.FAILURE))
    except Exception as e:
        code = _click_error(e, argv)
        if code is None:
            raise
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    # `python -m dshub.cli.main`: this file runs as `__main__`, but command modules register
    # on `dshub.cli.main.app`; run that module's main so they are found.
    from dshub.cli.main import main as _main

    _main()
