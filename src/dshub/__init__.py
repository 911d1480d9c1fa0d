"""dshub: a hub for large versioned datasets, moved with rclone under short-lived,
dataset-scoped credentials.

``import dshub`` imports nothing heavy and changes nothing outside this package;
``dshub.Client`` and ``dshub.open_dataset`` load the library on first use.
"""

from __future__ import annotations

from dshub.version import __version__

__all__ = ["__version__", "Client", "open_dataset"]


def __getattr__(name: str) -> object:
    # Lazy exports: `dshub --version` and credential_process import this package and
    # must not pay for pydantic and httpx.
    if name == "Client":
        from dshub.library.client import Client

        return Client
    if name == "open_dataset":
        from dshub.library.client import open_dataset

        return open_dataset
    raise AttributeError(f"module 'dshub' has no attribute {name!r}")
