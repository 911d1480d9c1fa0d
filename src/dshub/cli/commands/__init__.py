"""Client commands, one module per group; importing a module registers its commands."""

from __future__ import annotations

import importlib

from typer.core import TyperCommand

from dshub.cli.app import app
from dshub.cli.help import PlainHelpCommand
from dshub.cli.options import with_output_flags

for _mod in ("account", "datasets", "creds", "doctor", "transfer", "sessions"):
    importlib.import_module(f"dshub.cli.commands.{_mod}")

# Every client command takes --quiet/--verbose and shows plain placeholders, set in one place.
for _cmd in app.registered_commands:
    if _cmd.cls in (None, TyperCommand):
        _cmd.cls = PlainHelpCommand
    if _cmd.callback is not None and not getattr(_cmd.callback, "__wrapped__", None):
        _cmd.callback = with_output_flags(_cmd.callback)
