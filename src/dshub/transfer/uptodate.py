"""Is a local folder exactly the latest version already? (A pipeline's usual re-run.)"""

from __future__ import annotations

from collections.abc import Iterable

from dshub.models import ManifestEntry
from dshub.transfer.common import HashCache
from dshub.transfer.scan import LocalFile, ScanResult


def up_to_date(manifest: Iterable[ManifestEntry], sc: ScanResult) -> bool:
    """True when ``manifest`` holds exactly the scanned files (paths, sizes, content).

    Reads files only once paths and sizes already agree, and then only those whose digest
    the cache lacks; stops at the first difference (closing a streamed manifest early).
    """
    local = sc.by_path()
    entries: list[ManifestEntry] = []
    for e in manifest:
        f = local.get(e.path)
        if f is None or f.size != e.size or not (e.md5 or e.blake3):
            return False
        entries.append(e)
    if len(entries) != len(local):
        return False
    cache = HashCache(sc.root)
    try:
        return all(_same_content(cache, sc.root, e, local[e.path]) for e in entries)
    finally:
        cache.flush()


def _same_content(cache: HashCache, root: str, e: ManifestEntry, f: LocalFile) -> bool:
    """Does the file hold the entry's content? A cached digest decides (MD5 first: what an
    upload caches); else the file is hashed, with BLAKE3 where the entry has one (a fifth
    of MD5's CPU). The scan's stat is the cache key: no second stat per file."""
    known = cache.known_digests(e.path, f.size, f.mtime_ns, f.ino)
    if e.md5 and known.md5:
        return known.md5 == e.md5
    if e.blake3 and known.blake3:
        return known.blake3 == e.blake3
    if e.blake3:
        return cache.digests(root, e.path, md5=False).blake3 == e.blake3
    return cache.md5(root, e.path) == e.md5
