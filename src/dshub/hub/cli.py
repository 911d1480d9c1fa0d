"""``dshub hub …``: serve the hub and administer users (placeholder being built)."""

from __future__ import annotations

import typer

hub_app = typer.Typer(no_args_is_help=True)
