"""Where dshub keeps re-computable things between runs (MD5s of local files, the version
of the rclone binary): ``$DSHUB_CACHE_DIR`` or platformdirs' ``user_cache_dir("dshub")``.
Nothing here is secret; losing it only costs time."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """The cache folder (not created here)."""
    base = os.environ.get("DSHUB_CACHE_DIR")
    if base:
        return base
    try:
        from platformdirs import user_cache_dir

        return user_cache_dir("dshub")
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        return os.path.join(os.path.expanduser("~"), ".cache", "dshub")
