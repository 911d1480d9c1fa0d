"""Helpers shared by upload, download and cat: private temp dirs, remote listings, hashing."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import blake3 as _blake3

from dshub.errors import TransferError
from dshub.models import Credentials, Location
from dshub.transfer import rclone as rc
from dshub.transfer.runner import run_quiet
from dshub.util.files import write_private

HASH_CHUNK = 1 << 20


@contextmanager
def private_dir() -> Iterator[str]:
    """A 0700 temp directory for file lists, the AWS profile and the credential cache;
    deleted afterwards whatever happens (secrets in it never outlive the command)."""
    path = tempfile.mkdtemp(prefix="dshub-")
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_list(path: str, rels: Iterable[str]) -> str:
    """Write a ``--files-from-raw`` list (one path a line, taken verbatim by rclone).
    Paths cannot contain newlines: validate_relpath rejects control characters."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rel in rels:
            f.write(rel + "\n")
    return path


@dataclass(frozen=True)
class RemoteObject:
    size: int
    md5: str | None


def list_remote(
    rclone: str, location: Location, env: Mapping[str, str], *, hashes: bool = True
) -> dict[str, RemoteObject]:
    """Every object below the location's prefix: one ListObjectsV2 per 1,000 keys
    (plus one HEAD per multipart object when ``hashes``, to read rclone's md5 metadata)."""
    code, out, err = run_quiet(rc.list_args(rclone, location, hashes=hashes), env, timeout=600)
    if code == 3:  # directory not found: nothing uploaded yet
        return {}
    if code != 0:
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or []
        exc = rc.error_for_exit(code, "listing the upload", last)
        raise exc or TransferError("listing failed")
    items = json.loads(out or b"[]")
    objs: dict[str, RemoteObject] = {}
    for it in items:
        md5 = (it.get("Hashes") or {}).get("md5") or None
        objs[it["Path"]] = RemoteObject(size=int(it["Size"]), md5=md5)
    return objs


class Cancelled(Exception):
    """Hashing stopped because the transfer was abandoned."""


class Digests(NamedTuple):
    """What dshub knows of a file's content: MD5 (what S3 and the hub check uploads
    against) and BLAKE3 (what downloads are verified with: ~5x faster than MD5 on one
    core here, and still a cryptographic hash). Either may be unknown."""

    md5: str | None = None
    blake3: str | None = None


NO_DIGESTS = Digests()


def hash_file(path: str, stop: threading.Event | None = None, *, md5: bool = True, blake3: bool = True) -> Digests:
    """The digests asked for, from one read of the file in 1 MiB chunks (hashlib and
    blake3 release the GIL on them, so this runs beside rclone without holding up the
    thread reading its output). ``stop`` aborts between chunks."""
    h_md5 = hashlib.md5(usedforsecurity=False) if md5 else None
    h_b3 = _blake3.blake3() if blake3 else None
    # os.open/os.read, not open(): no buffered file object per file, a real share of a
    # small file's cost (downloads of many small files check every one).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        while chunk := os.read(fd, HASH_CHUNK):
            if stop is not None and stop.is_set():
                raise Cancelled(path)
            if h_md5 is not None:
                h_md5.update(chunk)
            if h_b3 is not None:
                h_b3.update(chunk)
    finally:
        os.close(fd)
    return Digests(
        md5=h_md5.hexdigest() if h_md5 is not None else None,
        blake3=h_b3.hexdigest() if h_b3 is not None else None,
    )


_CACHE_BATCH = 256
_Entry = tuple[int, int, int, str | None, str | None]  # size, mtime_ns, inode, md5, blake3


def _digest(value: object, length: int) -> str | None:
    return value if isinstance(value, str) and len(value) == length else None


class HashCache:
    """Digests of local files remembered across runs, keyed by (path, size, mtime_ns, inode).

    A resumed upload of 45 GB must not read 45 GB again just to hash it, nor must the
    "is it up to date?" check of a re-run. One JSON-lines file per folder under the user
    cache dir (``$DSHUB_CACHE_DIR`` or platformdirs' ``user_cache_dir("dshub")``); lines
    are appended as files are hashed, so a run killed half-way keeps what it did. Same
    trust as rsync/rclone's quick check: a file whose size, mtime and inode did not
    change is assumed unchanged. Unwritable cache = no cache, never an error.

    A row is ``[path, size, mtime_ns, inode, md5, blake3]``; md5 or blake3 may be null
    (only what was computed is stored), rows of older versions have no blake3.
    """

    def __init__(self, root: str) -> None:
        from dshub.util.cache import cache_dir

        base = cache_dir()
        key = hashlib.sha256(os.path.abspath(root).encode("utf-8", "surrogateescape")).hexdigest()[:32]
        self.path = os.path.join(base, "md5", f"{key}.jsonl")
        self._lock = threading.Lock()
        self._known: dict[str, _Entry] = {}
        self._pending: list[str] = []  # lines not yet appended to the file
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = [line for line in f.read().splitlines() if line]
        except OSError:
            lines = []
        self._lines = len(lines)  # rows in the file, stale and unreadable ones included
        try:
            # One parse for the whole file: 2.5x faster than a json.loads per line, which
            # is what the no-op check of 10,000 files waits for.
            rows = json.loads("[" + ",".join(lines) + "]")
        except ValueError:  # a torn last line after a kill: parse line by line
            rows = []
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        for row in rows:
            try:
                rel, size, mtime, ino, md5, *rest = row
            except (TypeError, ValueError):
                continue
            entry = (size, mtime, ino, _digest(md5, 32), _digest(rest[0] if rest else None, 64))
            if isinstance(rel, str) and (entry[3] or entry[4]):
                self._known[rel] = entry

    def get(self, rel: str, st: os.stat_result) -> str | None:
        """The cached MD5 of ``rel`` if it is unchanged since (stat ``st``)."""
        return self.known(rel, st.st_size, st.st_mtime_ns, st.st_ino)

    def known(self, rel: str, size: int, mtime_ns: int, ino: int) -> str | None:
        """The cached MD5 of ``rel`` if it was hashed with exactly this size, mtime and
        inode (e.g. from the scan's stat), without touching the file."""
        return self.known_digests(rel, size, mtime_ns, ino).md5

    def known_digests(self, rel: str, size: int, mtime_ns: int, ino: int) -> Digests:
        """Every cached digest of ``rel`` at exactly this size, mtime and inode."""
        hit = self._known.get(rel)
        if hit and hit[:3] == (size, mtime_ns, ino):
            return Digests(hit[3], hit[4])
        return NO_DIGESTS

    def put(self, rel: str, st: os.stat_result, md5: str) -> None:
        self.remember(rel, st.st_size, st.st_mtime_ns, st.st_ino, md5)

    def remember(
        self, rel: str, size: int, mtime_ns: int, ino: int, md5: str | None = None, blake3: str | None = None
    ) -> None:
        """Record digests of ``rel`` as it was with this size, mtime and inode (merged
        with what is already known of that same state)."""
        with self._lock:
            old = self._known.get(rel)
            if old and old[:3] == (size, mtime_ns, ino):
                md5, blake3 = md5 or old[3], blake3 or old[4]
            entry = (size, mtime_ns, ino, md5, blake3)
            if old == entry or not (md5 or blake3):
                return
            self._known[rel] = entry
            # Appended in batches: one open/write per file is a visible share of
            # verifying many small downloaded files. A kill loses at most a batch (those
            # files are hashed again next time).
            self._pending.append(json.dumps([rel, *entry]))
            if len(self._pending) >= _CACHE_BATCH:
                self._flush_locked()

    def flush(self) -> None:
        """Append what was hashed since the last flush to the cache file."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            self._lines += len(lines)
        except OSError:
            pass

    def digests(
        self,
        root: str,
        rel: str,
        stop: threading.Event | None = None,
        *,
        fresh: bool = False,
        md5: bool = True,
        blake3: bool = True,
        st: os.stat_result | None = None,
    ) -> Digests:
        """The digests asked for of ``root/rel``: from the cache while the file is
        unchanged, the missing ones from one read (``fresh``: always read, e.g. to
        verify a file just downloaded). Digests not asked for are returned if cached.
        ``st``: the file's stat, when the caller just took it."""
        p = os.path.join(root, rel)
        st = st or os.stat(p)
        cached = NO_DIGESTS if fresh else self.get_digests(rel, st)
        need_md5, need_b3 = md5 and not cached.md5, blake3 and not cached.blake3
        if not (need_md5 or need_b3):
            return cached
        got = hash_file(p, stop, md5=need_md5, blake3=need_b3)
        # Only remember it if the file did not change while we read it.
        if os.stat(p).st_mtime_ns == st.st_mtime_ns:
            self.remember(rel, st.st_size, st.st_mtime_ns, st.st_ino, got.md5, got.blake3)
        return Digests(got.md5 or cached.md5, got.blake3 or cached.blake3)

    def get_digests(self, rel: str, st: os.stat_result) -> Digests:
        return self.known_digests(rel, st.st_size, st.st_mtime_ns, st.st_ino)

    def md5(self, root: str, rel: str, stop: threading.Event | None = None, *, fresh: bool = False) -> str:
        """MD5 of ``root/rel`` from the cache when the file is unchanged, else hashed."""
        digest = self.digests(root, rel, stop, fresh=fresh, blake3=False).md5
        assert digest is not None
        return digest

    def compact(self) -> None:
        """Rewrite the file with one line per path (appends accumulate duplicates). A file
        holding nothing stale (a first upload's) only gets what is pending appended."""
        with self._lock:
            if self._lines + len(self._pending) <= len(self._known):
                self._flush_locked()
                return
            self._pending.clear()  # everything known is written below
            try:
                tmp = self.path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    for rel, entry in self._known.items():
                        f.write(json.dumps([rel, *entry]) + "\n")
                os.replace(tmp, self.path)
                self._lines = len(self._known)
            except OSError:
                pass


class Hasher:
    """Background hashing of the files to upload, on one plain thread, overlapping the
    network time. One thread because on a busy machine more would fight the thread reading
    rclone's output for the GIL (most of a small file's hashing is Python and system
    calls); no Future per file (submitting thousands would delay rclone's start).
    ``close()`` stops it promptly (an interpreter exiting after Ctrl-C joins threads, so a
    half-hashed 10 GB file must not keep it waiting)."""

    def __init__(self, root: str, rels: list[str], cache: HashCache, md5_known: Container[str]) -> None:
        self.stop = threading.Event()
        self._root, self._rels, self._cache, self._md5_known = root, rels, cache, md5_known
        self._done: dict[str, Digests] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dshub-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for rel in self._rels:
                if self.stop.is_set():
                    return
                md5 = rel not in self._md5_known
                self._done[rel] = self._cache.digests(self._root, rel, self.stop, md5=md5)
        except BaseException as e:  # re-raised in the caller's thread by result()
            self._error = e

    def result(self) -> dict[str, Digests]:
        """Wait for every file's digests; raises what the hashing raised (OSError, Cancelled)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if len(self._done) != len(self._rels):
            raise Cancelled("hashing was stopped")
        return dict(self._done)

    def close(self) -> None:
        self.stop.set()
        self._thread.join()


def hash_in_background(
    root: str,
    rels: list[str],
    cache: HashCache,
    *,
    md5_known: Container[str] = frozenset(),
) -> Hasher:
    """Start hashing files (MD5 and BLAKE3; only BLAKE3 for ``md5_known``, whose MD5
    comes from rclone) while the transfer runs; cached digests of unchanged files reused."""
    return Hasher(root, rels, cache, md5_known)


def static_env(location: Location, credentials: Credentials) -> dict[str, str]:
    """rclone environment with fixed credentials (downloads, listings with read grants)."""
    env = rc.base_env()
    env.update(rc.remote_env(location, credentials))
    return env


def refreshing_env(
    location: Location,
    session_id: str,
    hub_url: str,
    token: str | None,
    workdir: str,
    credentials: Credentials,
) -> dict[str, str]:
    """rclone environment whose credentials come from ``credential_process`` (refreshed
    by the AWS SDK inside rclone before they expire, without restarting it).

    Writes into ``workdir`` (0700): the AWS config naming the process (no secrets) and the
    0600 credential cache seeded with the session's current credentials, so the first
    request needs no hub call.
    """
    from dshub.transfer.credential_process import write_cache

    cache = os.path.join(workdir, "credentials.json")
    write_cache(cache, credentials)
    cmd = " ".join(
        shlex.quote(p) for p in (sys.executable, "-m", "dshub.transfer.credential_process", session_id)
    )
    cfg = os.path.join(workdir, "aws-config")
    write_private(cfg, f"[profile dshub]\ncredential_process = {cmd}\n")
    no_creds = os.path.join(workdir, "aws-credentials")
    write_private(no_creds, "")
    env = rc.base_env()
    env.update(rc.remote_env(location, None, env_auth=True))
    env.update(
        {
            "AWS_CONFIG_FILE": cfg,
            "AWS_PROFILE": "dshub",
            # An empty credentials file: a [dshub] section in ~/.aws/credentials must not win.
            "AWS_SHARED_CREDENTIALS_FILE": no_creds,
            "AWS_EC2_METADATA_DISABLED": "true",
            "DSHUB_HUB_URL": hub_url,
            "DSHUB_CRED_CACHE": cache,
        }
    )
    if token:
        env["DSHUB_TOKEN"] = token
    return env
