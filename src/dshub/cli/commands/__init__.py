"""Client commands, one module per group; importing a module registers its commands."""

from __future__ import annotations

import importlib

# account/datasets/creds/doctor: issue 4; transfer (upload/download/cat): issue 5.
for _mod in ("account", "datasets", "creds", "doctor", "transfer"):
    try:
        importlib.import_module(f"dshub.cli.commands.{_mod}")
    except ModuleNotFoundError as e:  # a group not written yet
        if e.name != f"dshub.cli.commands.{_mod}":
            raise
