"""Turning an upload session's staging area into a committed version's folder.

Staging is not the version: a session writes to ``datasets/<uuid>/staging/<id>/`` and
readers are only ever granted ``datasets/<uuid>/v<N>/``, which no grant can write. At
commit the hub freezes the staging area, checks its content against the manifest, and
only then puts it where readers find it:

* **on the hub's own disk** (local broker) the grant's endpoint is already stopped; the
  staging folder is renamed aside (``sealing/<id>``: nothing a late request opens can be
  under the old name any more), the hub waits until rclone holds no open file inside it,
  hashes every file (BLAKE3 where the manifest has it, else MD5) and renames the folder
  to ``v<N>``. A write that lands after that goes to a dead staging folder the sweeper
  removes; the version's bytes are the ones the hub hashed.
* **on S3** (STS broker) credentials cannot be revoked before they expire, but they are
  scoped to the staging prefix: the hub copies each object server-side to ``v<N>/`` and
  checks the MD5 S3 reports for the copy (the ETag of a ``CopyObject`` result) against
  the manifest. What is published is that copy; a later write to staging changes nothing.

Either way a version whose bytes differ from its manifest is never published.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dshub.hub.storage import RCLONE_TEMP_PREFIXES, ObjectInfo, Storage
from dshub.models import ErrorDetail, ManifestEntry, StagedObject
from dshub.util.digest import BIG, blake3_parallel
from dshub.util.parts import MAX_PARTS, PARTS_DIR, is_parts_path, parse_name

log = logging.getLogger("dshub.hub.publish")

# Names rclone's local backend stores encoded on disk ("Slash,Dot"): checked through the
# S3 API instead, whose keys are the decoded names.
_LOCAL_ENCODED = ("\uff0f", "\uff0e", "\u201b")
_CHUNK = 8 * 2**20
_HASH_THREADS = 4
_COPY_THREADS = 16
# How long a commit waits for rclone to close files inside a frozen staging folder.
DRAIN_SECONDS = 10.0
# S3's CopyObject takes sources up to 5 GiB; larger ones need a multipart copy.
MAX_COPY = 5 * 2**30


class Mismatch(Exception):
    """Storage differs from the manifest; ``details`` says where."""

    def __init__(self, details: list[ErrorDetail]) -> None:
        super().__init__(f"{len(details)} difference(s)")
        self.details = details


@dataclass(frozen=True)
class Published:
    """The digests to record for each file: what the hub computed or checked, else the
    uploader's (None where neither is known); ``verified``: the files whose recorded
    digest the hub checked against the bytes (only those may be carried later);
    ``carried``: the paths filled from earlier versions instead of staging."""

    md5s: dict[str, str | None]
    blake3s: dict[str, str | None]
    verified: frozenset[str] = frozenset()
    carried: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Carry:
    """A manifest path the hub fills from a committed version (``source`` is the object's
    key), with that file's verified digests."""

    source: str
    md5: str | None
    blake3: str | None


def _compare_listing(
    manifest: Iterable[ManifestEntry], sizes: dict[str, int], carried: Mapping[str, Carry]
) -> list[ErrorDetail]:
    """Presence and size of every entry (a carried one may be absent from staging), and
    nothing in staging that the manifest does not list."""
    problems: list[ErrorDetail] = []
    listed: set[str] = set()
    for e in manifest:
        listed.add(e.path)
        have = sizes.get(e.path)
        if have is None and e.path in carried:
            continue
        if have is None:
            problems.append(ErrorDetail(path=e.path, problem="missing in storage"))
        elif have != e.size:
            problems.append(ErrorDetail(path=e.path, problem="size differs", expected=e.size, actual=have))
    for rel in sorted(set(sizes) - listed):
        problems.append(ErrorDetail(path=rel, problem="in storage but not in the manifest", actual=sizes[rel]))
    return problems


# --- the hub's own disk -----------------------------------------------------------------


class LocalPublisher:
    """Staging → version on the directory that holds the bucket (local broker)."""

    def __init__(self, store: Storage, open_files: Callable[[], list[str]] | None) -> None:
        assert store.local_root is not None
        self.store = store
        self.root = store.local_root
        # Paths rclone has open right now (from /proc); None where that cannot be known.
        self.open_files = open_files

    def _dir(self, prefix: str) -> Path:
        return self.root.joinpath(*[p for p in prefix.split("/") if p])

    def sealing_prefix(self, staging: str) -> str:
        """``datasets/<uuid>/staging/<id>/`` → ``datasets/<uuid>/sealing/<id>/``."""
        # Under the dataset's own folder (an older hub's session staged in ``v<N>/``).
        parts = [p for p in staging.split("/") if p]
        return "/".join([*parts[:2], "sealing", parts[-1]]) + "/"

    def recover(self, staging: str) -> None:
        """Put back a staging folder a commit had frozen when the hub died (the session
        is still open, so its files are still the session's)."""
        sealed, live = self._dir(self.sealing_prefix(staging)), self._dir(staging)
        if not sealed.is_dir():
            return
        if live.is_dir() and not any(live.iterdir()):
            live.rmdir()  # made empty by the broker re-arming the session's endpoint
        if not live.exists():
            live.parent.mkdir(parents=True, exist_ok=True)
            os.rename(sealed, live)
            log.info("recovered the frozen staging area of %s", staging)

    def seal(self, staging: str) -> Path:
        """Rename the staging folder aside and wait until rclone has nothing open in it."""
        src, dst = self._dir(staging), self._dir(self.sealing_prefix(staging))
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():  # a commit that failed its check left it frozen: refreeze from staging
            if src.exists():
                shutil.rmtree(dst)
            else:
                return dst
        if not src.exists():
            src.mkdir(parents=True)
        os.rename(src, dst)
        self._drain(dst)
        return dst

    def unseal(self, sealed: Path, staging: str) -> None:
        """Give a refused commit's files back to the session (it stays open)."""
        live = self._dir(staging)
        if live.exists():  # a late write re-created it: the frozen copy is the session's
            shutil.rmtree(live)
        os.rename(sealed, live)

    def _drain(self, sealed: Path) -> None:
        if self.open_files is None:
            return
        inside = str(sealed) + os.sep
        deadline = time.monotonic() + DRAIN_SECONDS
        while any(p.startswith(inside) for p in self.open_files()):
            if time.monotonic() > deadline:
                raise TimeoutError("rclone still holds files of the frozen staging area open")
            time.sleep(0.02)

    def verify(
        self, sealed: Path, sealed_prefix: str, manifest: list[ManifestEntry], carries: Mapping[str, Carry],
        joined: Collection[str] = (),
    ) -> Published:
        """Hash every staged file of the frozen folder against the manifest; raise
        Mismatch. Entries absent from staging but in ``carries`` are carried; ``joined``
        files were written by the hub itself (from parts) at their path, whatever their name."""
        sizes = self._sizes(sealed)
        problems = _compare_listing(manifest, sizes, carries)
        if problems:
            raise Mismatch(problems)
        carried = frozenset(p for p in carries if p not in sizes)
        staged = [e for e in manifest if e.path not in carried]
        plain = [e for e in staged if e.path in joined or not any(c in e.path for c in _LOCAL_ENCODED)]
        encoded = [e for e in staged if e.path not in joined and any(c in e.path for c in _LOCAL_ENCODED)]
        with ThreadPoolExecutor(_HASH_THREADS, thread_name_prefix="dshub-verify") as pool:
            found = list(pool.map(lambda e: _check_file(sealed / e.path, e), plain))
        md5s: dict[str, str | None] = {p: carries[p].md5 for p in carried}
        blake3s: dict[str, str | None] = {p: carries[p].blake3 for p in carried}
        for e, (md5, b3, problem) in zip(plain, found):
            md5s[e.path], blake3s[e.path] = md5, b3
            if problem is not None:
                problems.append(problem)
        if encoded:
            # rclone's admin endpoint reads these files itself (its ETag is their MD5).
            listed = {o.key[len(sealed_prefix):]: o.md5 for o in self.store.list_objects(sealed_prefix)}
            for e in encoded:
                actual = listed.get(e.path)
                md5s[e.path], blake3s[e.path] = actual, e.blake3
                if actual is None or (e.md5 is not None and actual != e.md5.lower()):
                    problems.append(ErrorDetail(path=e.path, problem="md5 differs", expected=e.md5, actual=actual))
        if problems:
            raise Mismatch(problems)
        verified = frozenset(e.path for e in plain) | carried
        return Published(md5s=md5s, blake3s=blake3s, verified=verified, carried=carried)

    def fill(self, version: str, published: Published, carries: Mapping[str, Carry]) -> None:
        """Hard-link each carried file from its committed version into ``version``: no
        byte copied, no space used, and deleting either version later leaves the other's
        file whole. Raise Mismatch for a source that is gone."""
        target = self._dir(version)
        problems: list[ErrorDetail] = []
        for path in sorted(published.carried):
            src = self.root.joinpath(*carries[path].source.split("/"))
            dst = target / path
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except FileNotFoundError:
                problems.append(ErrorDetail(path=path, problem="missing in storage (its earlier version is gone): upload it"))
        if problems:
            raise Mismatch(problems)

    def staged(self, folder: Path) -> list[StagedObject]:
        """The objects a staging (or frozen) folder holds, by path."""
        return [StagedObject(path=p, size=n) for p, n in sorted(self._sizes(folder).items())]

    def _sizes(self, sealed: Path) -> dict[str, int]:
        sizes: dict[str, int] = {}
        if not sealed.is_dir():
            return sizes
        for dirpath, dirs, files in os.walk(sealed):
            rel_dir = os.path.relpath(dirpath, sealed)
            if rel_dir == ".":
                dirs[:] = [d for d in dirs if d != PARTS_DIR]  # parts are joined, not published
            for f in files:
                if f.startswith(RCLONE_TEMP_PREFIXES):
                    continue  # an upload cut off (a killed rclone, the freeze): not an object
                rel = f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/")
                sizes[rel] = os.stat(os.path.join(dirpath, f), follow_symlinks=False).st_size
        return sizes

    def place(self, sealed: Path, version: str) -> None:
        """Rename the verified folder to the version's; a leftover of a commit that died
        between this rename and its database transaction is removed first (the database
        has no version there, so nothing refers to it)."""
        target = self._dir(version)
        if target.exists():
            log.warning("removing %s: left by a commit that did not finish", version)
            shutil.rmtree(target)
        for stray in sealed.rglob(".rclone_*"):
            if stray.is_file() and stray.name.startswith(RCLONE_TEMP_PREFIXES):
                stray.unlink()
        os.rename(sealed, target)

    def unplace(self, version: str, staging: str) -> None:
        """Undo :meth:`place` when the database refused the version."""
        target, live = self._dir(version), self._dir(staging)
        if target.exists() and not live.exists():
            os.rename(target, live)


def _check_file(path: Path, e: ManifestEntry) -> tuple[str | None, str | None, ErrorDetail | None]:
    """Hash one file against its entry; return (MD5, BLAKE3, problem or None).

    The entry's BLAKE3 is checked where it has one (cheap), else its MD5; an entry that
    claims neither gets both computed here. What the hub did not compute is the
    uploader's (an MD5 beside a checked BLAKE3), recorded as given.
    """
    import blake3

    want_b3, want_md5 = (e.blake3 or "").lower(), (e.md5 or "").lower()
    missing = ErrorDetail(path=e.path, problem="missing in storage")
    if want_b3 and e.size >= BIG:  # a big file: on every core
        try:
            b3 = blake3_parallel(path)
        except OSError:
            return None, None, missing
        if b3 != want_b3:
            return None, None, ErrorDetail(path=e.path, problem="blake3 differs", expected=want_b3, actual=b3)
        return want_md5 or None, b3, None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, None, missing
    h_b3 = blake3.blake3()
    h_md5 = hashlib.md5(usedforsecurity=False) if not want_b3 else None
    try:
        while chunk := os.read(fd, _CHUNK):
            h_b3.update(chunk)
            if h_md5 is not None:
                h_md5.update(chunk)
    finally:
        os.close(fd)
    b3 = h_b3.hexdigest()
    md5 = h_md5.hexdigest() if h_md5 is not None else want_md5 or None
    if want_b3 and b3 != want_b3:
        return None, None, ErrorDetail(path=e.path, problem="blake3 differs", expected=want_b3, actual=b3)
    if not want_b3 and want_md5 and md5 != want_md5:
        return None, None, ErrorDetail(path=e.path, problem="md5 differs", expected=want_md5, actual=md5)
    return md5, b3, None


def open_files_of(pid: int) -> Callable[[], list[str]] | None:
    """A function listing the files process ``pid`` has open (Linux /proc), or None."""
    fd_dir = f"/proc/{pid}/fd"
    if not os.path.isdir(fd_dir):
        return None

    def listing() -> list[str]:
        out: list[str] = []
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return out
        for n in names:
            try:
                out.append(os.readlink(os.path.join(fd_dir, n)))
            except OSError:
                continue
        return out

    return listing


# --- S3 ------------------------------------------------------------------------------


class S3Publisher:
    """Staging → version by server-side copies, each checked by the MD5 S3 reports."""

    def __init__(self, store: Storage) -> None:
        self.store = store

    def copy_verified(
        self, staging: str, version: str, manifest: list[ManifestEntry], carries: Mapping[str, Carry]
    ) -> Published:
        """Copy every object of ``staging`` (and each carried one from its committed
        version) to ``version``; raise Mismatch (after removing what was copied) when
        the listing or a copy's MD5 differs from the manifest."""
        listed = list(self.store.list_objects(staging))
        sizes = {o.key[len(staging):]: o.size for o in listed if not is_parts_path(o.key[len(staging):])}
        parts, problems = _s3_parts(staging, listed, manifest)
        # A file sent in parts is made of them (parts win over an older whole object).
        sizes.update({rel: sum(o.size for _n, o in ps) for rel, ps in parts.items()})
        problems += _compare_listing(manifest, sizes, carries)
        if problems:
            raise Mismatch(problems)
        carried = frozenset(p for p in carries if p not in sizes)

        def source(e: ManifestEntry) -> str:
            return carries[e.path].source if e.path in carried else staging + e.path

        def one(e: ManifestEntry) -> tuple[str | None, ErrorDetail | None]:
            if e.path in parts:
                return self._join(parts[e.path], version, e)
            return self._copy(source(e), version, e)

        with ThreadPoolExecutor(_COPY_THREADS, thread_name_prefix="dshub-copy") as pool:
            copied = list(pool.map(one, manifest))
        md5s = {e.path: md5 or e.md5 for e, (md5, _p) in zip(manifest, copied)}
        problems = [p for _m, p in copied if p is not None]
        if problems:
            self.store.delete_prefix(version)
            raise Mismatch(problems)
        # S3 knows no BLAKE3: the uploader's is recorded (a wrong one only fails downloads).
        verified = frozenset(e.path for e, (md5, _p) in zip(manifest, copied) if md5 is not None)
        return Published(
            md5s=md5s, blake3s={e.path: e.blake3 for e in manifest}, verified=verified, carried=carried
        )

    def _join(
        self, parts: list[tuple[str, ObjectInfo]], version: str, e: ManifestEntry
    ) -> tuple[str | None, ErrorDetail | None]:
        """Join a file's parts into ``version`` server-side; each copied part's MD5 must be
        the one its name promises. The joined object has no content MD5 (S3 gives a
        multipart ETag): the uploader's is recorded, unverified."""
        from botocore.exceptions import ClientError

        try:
            etags = self.store.join_parts([o.key for _n, o in parts], version + e.path)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "error")
            return None, ErrorDetail(path=e.path, problem=f"joining its parts failed ({code})")
        for (name, _o), etag in zip(parts, etags):
            want = name.rsplit("-", 1)[-1]
            if _plain_md5(etag) != want:
                return None, ErrorDetail(path=e.path, problem=f"part {name} differs from what was sent",
                                         expected=want, actual=_plain_md5(etag))
        return None, None

    def _copy(self, source: str, version: str, e: ManifestEntry) -> tuple[str | None, ErrorDetail | None]:
        etag = self.store.copy_object(source, version + e.path, e.size)
        md5 = _plain_md5(etag)
        if md5 is None:
            # A multipart copy (over 5 GiB) has no content MD5 in its ETag; S3 checked
            # each part's Content-MD5 when it was uploaded.
            return None, None
        if e.md5 is not None and md5 != e.md5.lower():
            return md5, ErrorDetail(path=e.path, problem="md5 differs", expected=e.md5, actual=md5)
        return md5, None


def _s3_parts(
    staging: str, listed: list[ObjectInfo], manifest: list[ManifestEntry]
) -> tuple[dict[str, list[tuple[str, ObjectInfo]]], list[ErrorDetail]]:
    """Manifest path → its part objects in order, for files sent in parts, and what is
    wrong with them (a gap, a size that does not add up, a stored MD5 that is not the one
    in the part's name, parts of a file not in the manifest)."""
    base = staging + PARTS_DIR + "/"
    found: dict[str, list[tuple[int, str, ObjectInfo]]] = {}
    for o in listed:
        if not o.key.startswith(base):
            continue
        rel, _, name = o.key[len(base):].rpartition("/")
        parsed = parse_name(name)
        if parsed is not None and rel:
            found.setdefault(rel, []).append((parsed[0], name, o))
    sizes = {e.path: e.size for e in manifest}
    out: dict[str, list[tuple[str, ObjectInfo]]] = {}
    problems: list[ErrorDetail] = []
    for rel, items in sorted(found.items()):
        items.sort(key=lambda t: t[0])
        if rel not in sizes:
            problems.append(ErrorDetail(path=rel, problem="has parts in storage but is not in the manifest"))
            continue
        pos, bad = 0, None
        for offset, name, o in items:
            want = name.rsplit("-", 1)[-1]
            if offset != pos:
                break
            if o.md5 is not None and o.md5 != want:
                bad = ErrorDetail(path=rel, problem=f"part {name} differs from what was sent", expected=want, actual=o.md5)
                break
            pos += o.size
        if bad is None and (pos != sizes[rel] or items[-1][0] >= pos):
            bad = ErrorDetail(path=rel, problem="its parts in storage do not cover the file", expected=sizes[rel], actual=pos)
        if bad is None and len(items) > MAX_PARTS:
            bad = ErrorDetail(path=rel, problem=f"has more than {MAX_PARTS} parts")
        if bad is not None:
            problems.append(bad)
            continue
        out[rel] = [(name, o) for _off, name, o in items]
    return out, problems


def _plain_md5(etag: str | None) -> str | None:
    if etag is None:
        return None
    e = etag.strip('"').lower()
    return e if len(e) == 32 and all(c in "0123456789abcdef" for c in e) else None
