"""dshub: a hub for large versioned datasets, moved with rclone under short-lived,
dataset-scoped credentials.

Import cost matters (``dshub --version`` must start fast), so this module imports
nothing heavy; the library API is loaded on first use.
"""

from __future__ import annotations

import sys
import types
# Not `from typing import TYPE_CHECKING`: importing typing at all costs ~7-14 ms here,
# paid by `dshub --version` and by every credential_process call rclone makes.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"


def _skip_httpx_cli() -> None:
    """Keep httpx from importing its command-line client on ``import httpx``.

    httpx's ``__init__`` imports ``httpx._main`` whenever click, rich and pygments are
    importable, and here they are (Typer needs them): rich.console, rich.progress,
    pygments and click, ~55-80 ms for a CLI dshub never runs. The console script blocked
    it before; doing it here spares library users (``import dshub; dshub.Client(...)``)
    and ``python -m`` helpers the same cost. A stand-in module takes its place; its
    ``main`` loads the real one, so ``httpx.main()`` still works in a process that
    imported dshub.
    """
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")

    def main(*args: Any, **kwargs: Any) -> Any:
        import importlib

        sys.modules.pop("httpx._main", None)
        return importlib.import_module("httpx._main").main(*args, **kwargs)

    stub.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


_skip_httpx_cli()

__all__ = ["__version__", "Client", "open_dataset"]


def __getattr__(name: str) -> Any:
    # Lazy exports: `import dshub` stays cheap, `dshub.Client` works.
    if name == "Client":
        from dshub.client.library import Client

        return Client
    if name == "open_dataset":
        from dshub.client.library import open_dataset

        return open_dataset
    raise AttributeError(f"module 'dshub' has no attribute {name!r}")
