"""dshub: a hub for large versioned datasets, moved with rclone under short-lived,
dataset-scoped credentials.

Import cost matters (``dshub --version`` must start fast), so this module imports
nothing heavy; the library API is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

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
