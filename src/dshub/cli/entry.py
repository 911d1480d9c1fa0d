"""Console-script entry point, kept tiny so ``dshub --version`` answers before Typer,
pydantic and Rich are imported (about 200 ms of imports; issue 6 asks < 150 ms)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Answer ``dshub --version`` at once; hand everything else to the Typer app."""
    if sys.argv[1:] == ["--version"]:
        from dshub import __version__

        print(f"dshub {__version__}")
        return
    # httpx's own command-line client is kept from loading by `import dshub` (its
    # package __init__, already imported to reach this module).
    # pydantic looks for plugins through every installed package's entry points on first
    # use (~30 ms); the command line has none to load. The library is not affected.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from dshub.cli.main import main as app_main

    app_main()
