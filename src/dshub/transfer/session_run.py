"""Phases 5-8 of an upload, inside one open session: plan, transfer, verify, commit."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dshub.errors import CommitRefusedError, TransferError, UsageError
from dshub.models import ErrorDetail, ManifestEntry, Version
from dshub.transfer import rclone as rc
from dshub.transfer.common import HashCache, Hasher, RemoteObject, hash_in_background, list_remote, write_list
from dshub.transfer.parts import PartSender, plan_file
from dshub.transfer.runner import run_quiet, run_rclone
from dshub.transfer.scan import ScanResult, restat
from dshub.transfer.stats import Phase, ScanDone, StatsParser, Warning_
from dshub.util.parts import PARTS_DIR, in_parts, is_parts_path
from dshub.util.units import human_size

if TYPE_CHECKING:
    from dshub.api.client import HubClient
    from dshub.transfer.upload_options import Tally, UploadOptions
    from dshub.transfer.upload_remote import SessionRemote

MAX_ATTEMPTS = 3
# From this mean file size up, rclone reports the MD5 it checked for each file (its debug
# log) instead of dshub reading every sent file a second time to hash it: debug logging
# costs rclone more per file than hashing a small file costs dshub, less than a large one.
REPORT_MD5_MIN_MEAN = 64 * 1024


@dataclass
class _Plan:
    """What the transfer phase sends and what it keeps of an earlier attempt."""

    remote: dict[str, RemoteObject]
    todo: list[str]
    kept: list[str]
    stray: list[str]
    #: part objects of big files (``.dshub-parts/…``) the session holds, by key
    parts: dict[str, RemoteObject] = field(default_factory=dict)


class SessionRun:
    """Phases 5-8 of an upload, inside one open session and one private work folder."""

    def __init__(
        self,
        client: HubClient,
        opts: UploadOptions,
        sc: ScanResult,
        tally: Tally,
        rclone: str,
        remote: SessionRemote,
        work: str,
        *,
        own_session: bool = True,
    ) -> None:
        self.client = client
        self.opts = opts
        self.sc = sc
        self.local = sc.by_path()
        self.tally = tally
        self.on_event = tally.on_event
        self.rclone = rclone
        self.remote = remote
        self.work = work
        # A session this job opened itself holds only what this job sent.
        self.own_session = own_session
        self.carried: frozenset[str] = frozenset()

    def run(self, label: str, *, carry: bool) -> Version:
        """Phases 5-8; ``carry``: ask the hub first which files it fills from the
        dataset's committed versions (worth it once the dataset has one)."""
        carried = self.carried = self.carry() if carry else frozenset()
        plan = self.plan(resumed=self.remote.session.resumed, carried=carried)
        md5s, blake3s = self.transfer(plan)
        self.verify(plan, md5s)
        manifest = [
            ManifestEntry(path=f.rel, size=f.size, md5=md5s[f.rel], blake3=blake3s[f.rel]) for f in self.sc.files
        ]
        self.on_event(Phase("commit", f"Committing {label} ({len(manifest)} files)"))
        return self.commit(manifest)

    # --- plan -----------------------------------------------------------------------------

    def carry(self) -> frozenset[str]:
        """Send the hub the manifest to come (digests from the cache: an unchanged file is
        not read again) and return the paths it will fill itself."""
        self.on_event(Phase("plan", "Asking the hub what it already holds"))
        cache = HashCache(self.sc.root)
        try:
            manifest = []
            for f in self.sc.files:
                d = cache.digests(self.sc.root, f.rel)
                manifest.append(ManifestEntry(path=f.rel, size=f.size, md5=d.md5, blake3=d.blake3))
        finally:
            cache.flush()
        answer = self.client.carry_session(self.remote.session.id, manifest)
        t = self.tally
        t.carried_files, t.carried_bytes = answer.carried_files, answer.carried_bytes
        t.carried_from = {c.from_version for c in answer.carried}
        return frozenset(c.path for c in answer.carried)

    def plan(self, *, resumed: bool, carried: frozenset[str] = frozenset()) -> _Plan:
        """What to send: every file the hub does not carry; for a resumed session only
        what its prefix lacks or holds at another size (one listing, with MD5s for the
        verify phase)."""
        if resumed:
            self._abort_partial_uploads()
        self.on_event(Phase("plan", "Checking what is already uploaded"))
        listed = list_remote(self.rclone, self.remote.location, self.remote.short(), hashes=True) if resumed else {}
        remote, parts = _split_parts(listed)
        files = [f for f in self.sc.files if f.rel not in carried]
        # A big file always goes in parts (they win over a whole object at its path at
        # commit): only parts carry the MD5s that say what a stored piece holds.
        big = set(self._big([f.rel for f in files]))
        todo = [f.rel for f in files if f.rel in big or (o := remote.get(f.rel)) is None or o.size != f.size]
        kept = [f.rel for f in files if f.rel not in big and (o := remote.get(f.rel)) is not None and o.size == f.size]
        stray = sorted(set(remote) - set(self.local))
        if stray and not self.own_session and not self.opts.remove_others:
            size = human_size(sum(remote[r].size for r in stray))
            raise UsageError(
                f"upload session {self.remote.session.id} holds {len(stray)} object(s) ({size}) that are not in "
                f"{self.sc.root} (put there by another tool or job); nothing was sent. Pass --yes to remove them, "
                "or publish the session as it stands with `dshub commit`",
                details=[ErrorDetail(path=r, problem="in the session, not in the folder") for r in stray[:20]],
            )
        self.tally.skipped_files = len(kept)
        todo_bytes = sum(self.local[r].size for r in todo)
        self.on_event(
            ScanDone(
                files=len(todo),
                bytes=todo_bytes,
                skipped_files=len(kept) + len(carried),
                skipped_bytes=self.sc.total_bytes - todo_bytes,
            )
        )
        return _Plan(remote=remote, todo=todo, kept=kept, stray=stray, parts=self._own_parts(parts, todo))

    def _own_parts(self, parts: dict[str, RemoteObject], todo: list[str]) -> dict[str, RemoteObject]:
        """The stored parts of files ``todo`` sends in parts; parts of any other file
        (gone, small now, or whole in storage) are deleted."""
        big = set(self._big(todo))
        stray = sorted(k for k in parts if _owner_of_part(k) not in big)
        if stray:
            self._delete(stray)
        return {k: o for k, o in parts.items() if _owner_of_part(k) in big}

    def _big(self, rels: list[str]) -> list[str]:
        """The files of ``rels`` that go in parts."""
        return [r for r in rels if in_parts(self.local[r].size, self.opts.part_size)]

    def _abort_partial_uploads(self) -> None:
        # A killed rclone leaves pending multipart uploads behind; the objects it finished
        # are kept. Not every store lets scoped credentials do this: then the hub's expiry
        # and commit cleanup take care of them.
        code, _, err = run_quiet(rc.cleanup_args(self.rclone, self.remote.location), self.remote.short(), timeout=60)
        # rclone serve s3 answers ListMultipartUploads with 404 NoSuchUpload when none are pending.
        if code != 0 and "NoSuchUpload" not in err:
            self.on_event(Warning_("could not clean up partial multipart uploads; the hub removes them when the session ends"))

    # --- transfer -----------------------------------------------------------------------

    def transfer(self, plan: _Plan) -> tuple[dict[str, str], dict[str, str]]:
        """Send ``plan.todo`` while a thread hashes every file; return (MD5s, BLAKE3s)."""
        cache = HashCache(self.sc.root)
        todo_bytes = sum(self.local[r].size for r in plan.todo)
        # Big files: their MD5 is the one rclone checked against the stored object;
        # dshub computes only their BLAKE3. Small files: both digests here.
        report = bool(plan.todo) and todo_bytes >= REPORT_MD5_MIN_MEAN * len(plan.todo)
        # Files sent in parts get only a BLAKE3 here: each part's MD5 is in its name and
        # checked against storage, while an MD5 of the whole file nothing could check (S3
        # gives a joined object a multipart ETag; the hub checks the BLAKE3) would cost
        # one more MD5 pass over the biggest files (~1.8 CPU-s per GiB here).
        big = set(self._big(plan.todo))
        whole = [r for r in plan.todo if r not in big]
        rels = [f.rel for f in self.sc.files]
        hasher = hash_in_background(self.sc.root, rels, cache, md5_known=(set(whole) if report else set()) | big)
        verified: dict[str, str] = {}  # rel -> MD5 rclone checked, filled while it runs
        try:
            self.send(plan.todo, report_md5=report, verified=verified, parts=plan.parts)
            self.on_event(Phase("verify", "Verifying uploaded files"))
            md5s, blake3s = self._digests(hasher, whole if report else [], verified, cache)
        finally:
            hasher.close()
            if report:
                _remember_verified(self.sc, verified, cache)
            cache.flush()  # an interrupted run keeps what it hashed
        cache.compact()
        return md5s, blake3s

    def _digests(
        self, hasher: Hasher, reported: list[str], verified: dict[str, str], cache: HashCache
    ) -> tuple[dict[str, str], dict[str, str]]:
        try:
            digests = hasher.result()
        except OSError:
            self.check_unchanged()  # a file removed or replaced under us: name it
            raise
        md5s = {rel: d.md5 for rel, d in digests.items()}
        md5s.update(_sent_hashes(self.sc, reported, verified, cache))
        # One stat per file after hashing: what rclone sent and what was hashed are the scanned bytes.
        self.check_unchanged()
        return md5s, {rel: d.blake3 for rel, d in digests.items()}

    def send(
        self,
        todo: list[str],
        *,
        report_md5: bool = False,
        verified: dict[str, str] | None = None,
        parts: dict[str, RemoteObject] | None = None,
    ) -> None:
        """Send ``todo``: big files in parts (``parts``: the part objects stored already,
        else listed here), the rest by rclone copy until it succeeds (MAX_ATTEMPTS,
        re-planned from a fresh listing between attempts so finished files are never sent
        twice). With ``report_md5`` the MD5 rclone checked for each file lands in ``verified``."""
        big = self._big(todo)
        if big:
            self._send_parts(big, parts)
            sent = set(big)
            todo = [r for r in todo if r not in sent]
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if not todo:
                return
            again = f" (attempt {attempt})" if attempt > 1 else ""
            self.on_event(Phase("upload", f"Uploading {len(todo)} file(s){again}"))
            code, parser = self._copy_once(todo, attempt, report_md5, verified)
            err = rc.error_for_exit(code, "upload", parser.errors[-3:], parser.failures)
            if err is None:
                return
            if code not in rc.RETRYABLE_EXIT_CODES and code != 6 or attempt == MAX_ATTEMPTS:
                raise err
            self.on_event(Warning_(f"rclone failed ({err.message}); retrying what is missing"))
            remote = list_remote(self.rclone, self.remote.location, self.remote.short(), hashes=False)
            todo = [r for r in todo if (o := remote.get(r)) is None or o.size != self.local[r].size]

    def _send_parts(self, big: list[str], stored: dict[str, RemoteObject] | None) -> None:
        if stored is None:
            listed = list_remote(self.rclone, self.remote.location, self.remote.short(), hashes=True)
            stored = _split_parts(listed)[1]
        plans = [plan_file(r, self.local[r].size, self.opts.part_size, stored) for r in big]
        n = sum(len(p.parts) for p in plans)
        self.on_event(Phase("upload", f"Uploading {len(big)} big file(s) in {n} parts"))
        # Each part is one PUT signed once, at its start, and the keeper below renews the
        # credentials while parts go: every rclone gets the current ones as static keys.
        # (The long environment's credential_process would start a Python per part.)
        sender = PartSender(
            self.rclone, self.remote.location, self.sc.root, self.remote.short,
            transfers=self.opts.transfers, bwlimit=self.opts.bwlimit, extra=self.opts.rclone_args,
            on_event=self.on_event,
        )
        stop = threading.Event()
        keeper = threading.Thread(target=self.remote.keep_alive, args=(stop,), name="dshub-keep-alive", daemon=True)
        keeper.start()
        try:
            stale = sender.send(plans)
        finally:
            stop.set()
            keeper.join()
            self.tally.sent(0, sender.sent_bytes)
            self.tally.sent_parts += sender.sent_parts
            self.tally.kept_parts += sender.kept_parts
        if stale:  # part objects of an older layout or damaged: the commit would refuse them
            self._delete(stale)
        self.tally.sent(len(big), 0)

    def _copy_once(
        self, todo: list[str], attempt: int, report_md5: bool, verified: dict[str, str] | None
    ) -> tuple[int, StatsParser]:
        listfile = write_list(os.path.join(self.work, f"todo-{attempt}.txt"), todo)
        parser = StatsParser(total_bytes=sum(self.local[r].size for r in todo), total_files=len(todo))
        if verified is not None:
            parser.md5s = verified
        opts = self.opts
        argv = rc.copy_up_args(
            self.rclone,
            self.sc.root,
            self.remote.location,
            listfile,
            transfers=opts.transfers,
            checkers=max(opts.transfers * 2, 8),
            bwlimit=opts.bwlimit,
            extra=opts.rclone_args,
            report_md5=report_md5,
        )
        try:
            code = run_rclone(argv, self.remote.long, parser, self.on_event)
        finally:
            done = [p for p in parser.files_done if p in self.local]
            self.tally.sent(len(parser.files_done), sum(self.local[p].size for p in done))
        return code, parser

    # --- verify -------------------------------------------------------------------------

    def verify(self, plan: _Plan, md5s: dict[str, str]) -> None:
        """Re-send kept objects whose content differs from the file (changed since the
        earlier attempt without changing size); delete objects not in the manifest."""
        stale = [r for r in plan.kept if plan.remote[r].md5 and plan.remote[r].md5 != md5s[r]]
        if stale:
            self.tally.warn(f"re-sending {len(stale)} file(s) whose stored copy differs (changed since the earlier attempt)", stale)
            self.tally.skipped_files -= len(stale)
            self.send(stale)
            self.check_unchanged()
        if plan.stray:
            self._delete(plan.stray)

    def check_unchanged(self) -> None:
        """Raise TransferError naming the files that changed since the scan."""
        changed = restat(self.sc.root, self.sc.files)
        if changed:
            raise TransferError(
                f"{len(changed)} file(s) changed while uploading; nothing was published. "
                "Run the same command again once they stop changing (finished files are not re-sent)",
                details=changed,
            )

    def _delete(self, stray: list[str]) -> None:
        """Delete objects of the session that are not in the manifest (the commit refuses them)."""
        listfile = write_list(os.path.join(self.work, "stray.txt"), stray)
        code, _, _ = run_quiet(rc.delete_args(self.rclone, self.remote.location, listfile), self.remote.short(), timeout=600)
        if code != 0:
            raise TransferError(f"could not delete {len(stray)} stray object(s) from the session; run again")

    # --- commit -------------------------------------------------------------------------

    def commit(self, manifest: list[ManifestEntry]) -> Version:
        """Commit; on a refusal (an object changed or added behind dshub's back, a stale
        object the listing could not see) list once, repair exactly that, commit again.
        A second refusal is raised."""
        session_id = self.remote.session.id
        try:
            return self.client.commit_session(session_id, manifest)
        except CommitRefusedError:
            self.tally.warn("the hub found storage different from the upload (another writer?); repairing")
        # A commit freezes the staging area (its credentials die): repair with new ones.
        self.remote.renew()
        self._repair({e.path: e.md5 for e in manifest})
        return self.client.commit_session(session_id, manifest)

    def _repair(self, md5s: dict[str, str | None]) -> None:
        remote, parts = _split_parts(list_remote(self.rclone, self.remote.location, self.remote.short(), hashes=True))
        stray = sorted(set(remote) - set(self.local))
        if stray:
            self._delete(stray)
        big = set(self._big([f.rel for f in self.sc.files]))

        def missing(rel: str, size: int) -> bool:
            if rel in big:  # stored as parts: every part there, none stale or damaged
                p = plan_file(rel, size, self.opts.part_size, parts)
                return len(p.stored) < len(p.parts) or bool(p.stale)
            o = remote.get(rel)
            return o is None or o.size != size or bool(o.md5 and o.md5 != md5s[rel])

        resend = [f.rel for f in self.sc.files if missing(f.rel, f.size)]
        if resend:
            self.tally.warn(f"re-sending {len(resend)} file(s) missing or different in storage", resend)
            # A planned carry whose source version was deleted before the commit: sent after all.
            lost = [r for r in resend if r in self.carried]
            self.tally.carried_files -= len(lost)
            self.tally.carried_bytes -= sum(self.local[r].size for r in lost)
            self.send(resend)
            self.check_unchanged()


def _split_parts(listed: dict[str, RemoteObject]) -> tuple[dict[str, RemoteObject], dict[str, RemoteObject]]:
    """(objects, part objects of big files) of a staging listing."""
    objects = {k: o for k, o in listed.items() if not is_parts_path(k)}
    parts = {k: o for k, o in listed.items() if is_parts_path(k)}
    return objects, parts


def _owner_of_part(key: str) -> str:
    """``.dshub-parts/a/b.bin/p…`` → ``a/b.bin``."""
    return key[len(PARTS_DIR) + 1 : key.rfind("/")]


def _sent_hashes(sc: ScanResult, sent: list[str], verified: dict[str, str], cache: HashCache) -> dict[str, str]:
    """MD5s of the files rclone sent: the ones it reported, any it did not report hashed here."""
    return {rel: verified.get(rel) or cache.md5(sc.root, rel) for rel in sent}


def _remember_verified(sc: ScanResult, verified: dict[str, str], cache: HashCache) -> None:
    """Cache the MD5s rclone reported for files unchanged since the scan — also when the
    run is interrupted: a resumed run compares the objects it keeps with the files by MD5
    and would otherwise read every file already sent again."""
    local = sc.by_path()
    for rel, md5 in verified.items():
        f = local.get(rel)
        if f is None:
            continue
        try:
            unchanged = not f.changed(os.stat(os.path.join(sc.root, rel)))
        except OSError:
            continue
        if unchanged:
            cache.remember(rel, f.size, f.mtime_ns, f.ino, md5)
