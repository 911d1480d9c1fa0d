"""The Typer application every command registers on, and its root options."""

from __future__ import annotations

import os

import typer

from dshub.version import __version__

app = typer.Typer(
    name="dshub",
    help="Move large datasets to and from a dshub hub with rclone, under short-lived scoped credentials.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"dshub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs.", envvar="DSHUB_DEBUG"),
) -> None:
    if debug:
        os.environ["DSHUB_DEBUG"] = "1"
