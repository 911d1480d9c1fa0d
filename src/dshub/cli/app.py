"""The Typer application every command registers on, and its root options."""

from __future__ import annotations

import os
from typing import Literal

import typer

from dshub.cli.help import PlainHelpGroup
from dshub.version import __version__

app = typer.Typer(
    name="dshub",
    cls=PlainHelpGroup,
    help="Move large datasets to and from a dshub hub with rclone, under short-lived scoped credentials.",
    no_args_is_help=True,
    # Typer's own --install-completion takes no shell (`--install-completion zsh` installed
    # bash, the detected one); ours below takes it.
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    # Inherited by every sub-command's context: `-h` works wherever `--help` does.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"dshub {__version__}")
        raise typer.Exit()


Shell = Literal["bash", "zsh", "fish", "powershell", "pwsh"]


def _install_completion(value: str | None) -> None:
    if value:
        from typer.completion import install

        shell, path = install(shell=value, prog_name="dshub", complete_var="_DSHUB_COMPLETE")
        print(f"{shell} completion installed in {path}; it takes effect in a new terminal")
        raise typer.Exit()


def _show_completion(value: str | None) -> None:
    if value:
        from typer.completion import get_completion_script

        print(get_completion_script(prog_name="dshub", complete_var="_DSHUB_COMPLETE", shell=value))
        raise typer.Exit()


def default_shell() -> str:
    """The user's shell by ``$SHELL`` (what a bare ``--install-completion`` means), bash when unknown."""
    name = os.path.basename(os.environ.get("SHELL", ""))
    return name if name in ("bash", "zsh", "fish", "powershell", "pwsh") else "bash"


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", help="Print the version and exit.", callback=_version_callback, is_eager=True
    ),
    install_completion: Shell | None = typer.Option(
        None, "--install-completion", metavar="SHELL", help="Install completion for SHELL (default: $SHELL).",
        callback=_install_completion, is_eager=True, expose_value=False,
    ),
    show_completion: Shell | None = typer.Option(
        None, "--show-completion", metavar="SHELL", help="Print the completion script for SHELL.",
        callback=_show_completion, is_eager=True, expose_value=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs.", envvar="DSHUB_DEBUG"),
) -> None:
    if debug:
        os.environ["DSHUB_DEBUG"] = "1"
