"""The key that tells a hub which open upload session is this job's own.

Two jobs uploading to one dataset must never share a session (each would publish the
other's bytes). The hub resumes a session only for the key it was opened with; the key is
kept here per hub, dataset and local folder, so a re-run on the same machine of the same
folder resumes its own session and any other job opens its own. A CI retry on a fresh
runner names the session instead (``dshub upload --session ID``).

Nothing here is secret (a key only picks among sessions the token may already use), and
losing the file only costs a resume: the next run opens a new session.
"""

from __future__ import annotations

import json
import os
import secrets

from dshub.util.cache import cache_dir
from dshub.util.files import write_private

_FILE = "upload-sessions.json"
_MAX_KEYS = 1000


def _path() -> str:
    return os.path.join(cache_dir(), _FILE)


def _load() -> dict[str, str]:
    try:
        with open(_path(), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _slot(hub_url: str, owner: str, name: str, folder: str) -> str:
    return f"{hub_url}|{owner}/{name}|{os.path.realpath(folder)}"


def key_for(hub_url: str, owner: str, name: str, folder: str, *, fresh: bool = False) -> str:
    """This job's key for uploading ``folder`` to ``owner/name`` on ``hub_url``; a new one
    (remembered) the first time or when ``fresh``."""
    keys = _load()
    slot = _slot(hub_url, owner, name, folder)
    if not fresh and slot in keys:
        return keys[slot]
    keys.pop(slot, None)
    keys[slot] = secrets.token_urlsafe(18)
    while len(keys) > _MAX_KEYS:  # oldest first (insertion order)
        keys.pop(next(iter(keys)))
    try:
        write_private(_path(), json.dumps(keys))
    except OSError:
        pass  # an unwritable cache only costs the resume of this job's next run
    return keys[slot]
