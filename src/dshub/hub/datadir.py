"""The hub's data directory: private to the hub's user whatever the umask.

It holds the database (user names, private dataset names, manifests, token hashes), the
broker's state and log, and every stored object. Under the common umask 022 all of it
was world-readable, so any local user could ``cat`` another user's private file.
"""

from __future__ import annotations

import os
from pathlib import Path

# Files 0600, directories 0700. The umask is per process, and the hub process (with the
# rclone it launches, which inherits it) writes nothing that others should read.
HUB_UMASK = 0o077


def prepare_data_dir(path: Path) -> Path:
    """Set the process umask to 077, create ``path`` (0700) and tighten it if it exists."""
    os.umask(HUB_UMASK)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)  # a data dir from before this rule, or made by someone else's mkdir
    return path
