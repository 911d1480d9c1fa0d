"""The local credential broker: per-grant S3 endpoints served by one supervised ``rclone rcd``.

Objects live on the hub's disk at ``<objects_dir>/<bucket>/<key>``. Every grant (an
upload session or a read grant) gets its **own S3 endpoint** — its own port and its own
key pair — started at run time inside one ``rclone rcd`` with ``rc serve/start`` and
killed with ``rc serve/stop``.

Why this mechanism (alternatives measured with rclone 1.75.2 on this machine):

* **per-grant endpoints via rcd ``serve/start``** (chosen): revocation is immediate
  (``serve/stop`` closes the listening socket and the key with it; measured: the next
  request with the revoked key fails), and the scope is *structural*: the endpoint serves
  a chain of ``combine`` remotes whose only content is the grant's prefix, so there is no
  path, encoding or ``..`` trick that reaches anything else (a key with ``..`` is stored
  encoded inside the prefix; another version, dataset or bucket answers 404/500). Read
  grants are served with the VFS option ``read_only`` (nothing can be written), and the
  gate in front of each endpoint (:mod:`dshub.hub.brokers.gate`) answers their writes
  ``403 AccessDenied`` before rclone sees them.
* ``rclone serve s3 --auth-proxy``: keys can be added at run time, but a *removed* key
  keeps working for about five minutes (rclone caches the proxy's answer), and scoping is
  by root folder only. Revocation at commit would not be real.
* a Python SigV4 proxy in front of one ``serve s3``: full control, but every byte of the
  data path goes through Python (serve s3 alone already costs ~5-7 CPU-s/GiB here).

Credentials: the access key id is random (``DSH`` + 17 base32 characters); the secret is
``HMAC-SHA256(hub secret, key id)`` (hex, 40 chars). Secrets are *derived*, never stored:
``<state_dir>/ports.json`` keeps only ``grant id -> port, key id, scope``, which is enough to
re-create byte-identical endpoints after a hub (or rcd) restart, so an rclone that was
mid-transfer carries on with the credentials it has.

The gate: rclone's endpoint listens on a loopback port of its own; the grant's port
belongs to a small HTTP front (:mod:`dshub.hub.brokers.gate`) that fixes what rclone's S3
server gets wrong (200 instead of 206 for ranged GETs, 500 without an answer to
``Expect: 100-continue`` for writes on read grants, directory markers stored as files) and
splices bodies in the kernel. Revocation closes the gate's port and cuts its connections
first, then stops rclone's endpoint.

Location.endpoint: ``http://127.0.0.1:<port>`` by default. With ``advertise_url`` the rule
is: scheme and host of ``advertise_url``, port of the grant's endpoint (any port or path in
``advertise_url`` is ignored), because every grant has its own port. Behind a proxy or NAT,
the grant ports must therefore be reachable on that host (bind_host ``0.0.0.0``).

Expiry: the hub enforces it by calling :meth:`LocalBroker.revoke`; as defence in depth the
supervisor thread also revokes endpoints whose ``expires_at`` has passed (checked every
second). A refresh of a grant whose endpoint is gone (revoked, expired) starts a new
endpoint with a **new key id**, so credentials revoked once never come back.

Supervision: one supervisor thread owns the rcd child (it is the only thread that launches
it, because ``PR_SET_PDEATHSIG`` is tied to the launching thread). If rcd dies, the
supervisor (within a second, or at once when a broker call notices) restarts it and
re-creates every live grant with the same port and keys.

ETag cost (measured with rclone 1.75.2, warm page cache): serve s3's ETag is the MD5 of
the whole stored file, computed by reading it the first time an endpoint lists or HEADs
it (then kept in that endpoint's memory). Every grant is a new endpoint, so the first
listing of 1 GiB in 8 files took 2.0 s of one core, the next 0.09 s; a read grant on a
1 TB dataset would re-read 1 TB for one ``rclone ls``. Hence:

* upload endpoints keep ``etag_hash=MD5``: rclone checks each PUT's ETag against the
  local MD5, and a resumed upload lists with MD5s to find stale objects (the cost is
  bounded by what the session itself uploaded);
* read endpoints use ``etag_hash=""``: listings and HEADs cost no reads (a 1 GiB
  download: 3.4 s instead of 5.0-6.0 s); ``dshub download`` verifies every file against
  the MD5s of the manifest itself;
* the hub's commit check hashes the staged files on its own disk
  (:mod:`dshub.hub.publish`), not through the admin endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from dshub.hub.brokers.base import GrantSpec, StorageAccess
from dshub.hub.brokers.gate import Gate, GateError
from dshub.hub.brokers.rcd import BrokerError, RcdProcess, RcError
from dshub.models import Access, Credentials, Location

__all__ = ["LocalBroker", "BrokerError"]

log = logging.getLogger(__name__)

# serve s3 options shared by every endpoint. The defaults of rclone 1.75 are already the
# fast path (streamed multipart uploads, path-style, no VFS cache); we state the ones we
# rely on so a future rclone default change does not silently alter behaviour.
_SERVE_OPTS: dict[str, Any] = {
    "type": "s3",
    "force_path_style": True,
    "etag_hash": "MD5",  # rclone's check of each PUT; read grants turn it off (module doc)
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _quote_upstream(entry: str) -> str:
    # combine's `upstreams` is a space-separated list parsed as CSV: quote every entry so
    # directories with spaces survive; a '"' is doubled per CSV.
    return '"' + entry.replace('"', '""') + '"'


def _prefix_parts(prefix: str) -> list[str]:
    """Validate a grant prefix and split it into path components."""
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise BrokerError("grant prefix must be relative and end with '/'")
    parts = prefix[:-1].split("/")
    for p in parts:
        if p in ("", ".", "..") or any(ord(c) < 32 for c in p) or ":" in p or "=" in p:
            raise BrokerError("grant prefix has an invalid component")
    return parts


@dataclass
class _Live:
    """A grant whose endpoint the broker runs (or must re-run after an rcd restart)."""

    spec: GrantSpec
    key_id: str
    port: int | None = None  # the gate's (advertised) port; reused when re-armed
    serve_id: str | None = None  # rc serve id while running
    inner_port: int | None = None  # loopback port of rclone's endpoint behind the gate
    remotes: tuple[str, ...] = ()


class LocalBroker:
    """Per-grant S3 endpoints inside one supervised ``rclone rcd``; see the module docstring."""

    name = "local"

    # Seconds between supervisor checks (rcd alive? grants expired?).
    poll_interval: float = 1.0

    def __init__(
        self,
        *,
        objects_dir: Path,
        state_dir: Path,
        rclone: str,
        secret: bytes,
        bind_host: str = "127.0.0.1",
        advertise_url: str | None = None,
        bucket: str = "dshub",
        region: str = "us-east-1",
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self.objects_dir = Path(objects_dir).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.rclone = rclone
        self._secret = secret
        self.bind_host = bind_host
        self.advertise_url = advertise_url
        self.bucket = bucket
        self.region = region
        self._ports_path = self.state_dir / "ports.json"
        self._rcd = RcdProcess(
            rclone=rclone, config_path=self.state_dir / "rcd.conf", log_path=self.state_dir / "rcd.log"
        )
        self._lock = threading.RLock()  # guards everything below and every rc call
        self._gate = Gate()
        self._live: dict[str, _Live] = {}
        self._saved: dict[str, dict[str, Any]] = {}  # ports.json "grants"
        # Grants a restart will re-arm, not re-armed yet: asking where one is re-arms it
        # first, so the hub never answers with a saved port someone else took meanwhile.
        self._pending: dict[str, GrantSpec] = {}
        self._admin_key = "DSHADMIN" + self._random_id(12)
        self._admin_port: int | None = None
        self._admin_serve: str | None = None
        # Supervisor plumbing.
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._launch_cond = threading.Condition()
        self._launches = 0  # incremented after every successful (re)launch + re-arm
        self._launch_error: str | None = None
        self.restarts = 0  # unexpected rcd deaths recovered from (for tests and metrics)

    # --- credentials --------------------------------------------------------------------

    @staticmethod
    def _random_id(n: int) -> str:
        return base64.b32encode(secrets.token_bytes(20)).decode()[:n]

    def _secret_for(self, key_id: str) -> str:
        return hmac.new(self._secret, key_id.encode(), hashlib.sha256).hexdigest()[:40]

    def _new_key_id(self) -> str:
        return "DSH" + self._random_id(17)

    # --- persistence (no secrets: key ids are public identifiers) ------------------------

    def _load_saved(self) -> None:
        try:
            data = json.loads(self._ports_path.read_text())
            self._saved = dict(data.get("grants", {}))
            admin = data.get("admin") or {}
            self._admin_port = admin.get("port") if isinstance(admin.get("port"), int) else None
        except (OSError, ValueError, AttributeError):
            self._saved = {}

    def _save(self) -> None:
        data = {"version": 1, "admin": {"port": self._admin_port}, "grants": self._saved}
        tmp = self._ports_path.with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self._ports_path)

    def _remember(self, live: _Live) -> None:
        self._saved[live.spec.grant_id] = {
            "port": live.port,
            "key_id": live.key_id,
            "prefix": live.spec.prefix,
            "access": live.spec.access.value,
        }
        self._save()

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor thread, which launches rcd and the admin endpoint; wait for it."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.objects_dir / self.bucket).mkdir(parents=True, exist_ok=True)
        # Remotes from a previous run are stale (restore() re-creates what is live).
        (self.state_dir / "rcd.conf").unlink(missing_ok=True)
        with self._lock:
            self._load_saved()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._supervise, name="dshub-rcd-supervisor", daemon=True)
        self._thread.start()
        self._wait_for_launch(0)

    def stop(self) -> None:
        """Stop every endpoint, terminate rcd (SIGTERM, SIGKILL after 5 s) and reap it."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._lock:
            # The supervisor stops rcd on its way out; this catches a thread that hung.
            self._rcd.terminate()
            self._gate.close_all()
            for live in self._live.values():
                live.serve_id = None
            self._admin_serve = None

    def _wait_for_launch(self, seen: int, timeout: float = 30.0) -> None:
        with self._launch_cond:
            ok = self._launch_cond.wait_for(
                lambda: self._launches > seen or self._launch_error is not None, timeout
            )
            if self._launch_error is not None:
                raise BrokerError(self._launch_error)
            if not ok:
                raise BrokerError("rclone rcd did not start in time")

    def _ensure_rcd(self) -> None:
        """If rcd died, have the supervisor relaunch it (and re-arm grants); wait for that."""
        if self._stopping.is_set() or self._thread is None:
            raise BrokerError("local broker is not started")
        if self._rcd.alive():
            return
        with self._launch_cond:
            seen = self._launches
            self._launch_error = None
        self._wake.set()
        self._wait_for_launch(seen)

    def _supervise(self) -> None:
        first = True
        try:
            while not self._stopping.is_set():
                if not self._rcd.alive():
                    if not first:
                        self.restarts += 1
                        log.warning("rclone rcd died; restarting it and re-arming live grants")
                    try:
                        with self._lock:
                            self._launch_and_rearm()
                        err = None
                    except Exception as exc:  # noqa: BLE001 - reported to the waiting caller
                        err = f"could not start rclone rcd: {exc}"
                        log.error("%s", err)
                    with self._launch_cond:
                        if err is None:
                            self._launches += 1
                            self._launch_error = None
                        else:
                            self._launch_error = err
                        self._launch_cond.notify_all()
                    if err is not None and first:
                        return  # start() reports it
                    first = False
                else:
                    self._expire()
                self._wake.wait(self._next_wait())
                self._wake.clear()
        finally:
            with self._lock:
                self._stop_all_serves()
                self._rcd.terminate()

    def _launch_and_rearm(self) -> None:
        self._rcd.launch()
        for live in self._live.values():
            live.serve_id = None
            live.remotes = ()
        self._admin_serve = None
        self._start_admin()
        for gid, live in list(self._live.items()):
            try:
                self._arm(live)
            except (BrokerError, httpx.HTTPError) as exc:
                log.error("could not re-arm grant %s: %s", gid, exc)

    def _stop_all_serves(self) -> None:
        if not self._rcd.alive():
            return
        try:
            self._rcd.call("serve/stopall", {})
        except (RcError, httpx.HTTPError):
            pass

    def _next_wait(self) -> float:
        """Seconds until the next check: the poll interval, or sooner if a grant expires sooner."""
        with self._lock:
            soonest = min((lv.spec.expires_at for lv in self._live.values()), default=None)
        if soonest is None:
            return self.poll_interval
        return max(0.01, min(self.poll_interval, (soonest - _now()).total_seconds() + 0.01))

    def _expire(self) -> None:
        now = _now()
        with self._lock:
            expired = [g for g, lv in self._live.items() if lv.spec.expires_at <= now]
        for gid in expired:
            log.info("grant %s expired; revoking its endpoint", gid)
            self._revoke_locked(gid, lapsed_by=now)  # not one refreshed since the check

    def _rc(self, command: str, body: dict[str, Any], scrub: tuple[str, ...] = ()) -> dict[str, Any]:
        try:
            return self._rcd.call(command, body, scrub)
        except httpx.HTTPError as exc:
            raise BrokerError(f"rclone rcd unreachable during {command}: {type(exc).__name__}") from None

    # --- endpoints ----------------------------------------------------------------------

    def _serve(self, fs: str, port: int | None, host: str, key_id: str, extra: dict[str, Any]) -> tuple[str, int]:
        """serve/start on ``port`` if given and free, else on any port; return (id, port)."""
        secret = self._secret_for(key_id)
        body = {**_SERVE_OPTS, **extra, "fs": fs, "auth_key": [f"{key_id},{secret}"]}
        for p in ([port] if port else []) + [0]:
            body["addr"] = _host_port(host, p)
            try:
                out = self._rc("serve/start", body, scrub=(secret,))
            except RcError as exc:
                if p and "address already in use" in exc.rc_message:
                    log.warning("port %s is taken; the endpoint moves to a new port", p)
                    continue
                raise
            return str(out["id"]), int(str(out["addr"]).rsplit(":", 1)[1])
        raise BrokerError("serve/start failed")  # pragma: no cover - loop always returns/raises

    def _start_admin(self) -> None:
        # The admin endpoint sees every bucket under objects_dir and is bound to loopback
        # whatever bind_host says: only the hub process itself uses it. Objects arrive
        # through the grants' own endpoints, which this endpoint's VFS does not see, so its
        # directory cache (5 min by default) must be off: with it, a commit right after an
        # upload found files "missing" and a dataset delete left files behind.
        self._admin_serve, self._admin_port = self._serve(
            str(self.objects_dir), self._admin_port, "127.0.0.1", self._admin_key, {"dir_cache_time": "0s"}
        )
        self._save()

    def _arm(self, live: _Live) -> None:
        """Create the combine chain for the grant's prefix and start its endpoint."""
        parts = _prefix_parts(live.spec.prefix)
        leaf = self.objects_dir / self.bucket / Path(*parts)
        leaf.mkdir(parents=True, exist_ok=True)
        # Remote names carry the key id: rclone caches Fs objects by name, so a re-created
        # grant with another scope must never reuse a name. combine refuses upstream names
        # containing '/', hence one combine level per prefix component.
        base = "r_" + live.key_id.lower()
        names = [f"{base}_{i}" for i in range(len(parts) + 1)]
        labels = [self.bucket, *parts]  # names[i] exposes one directory called labels[i]
        for i in range(len(parts), -1, -1):
            target = str(leaf) if i == len(parts) else f"{names[i + 1]}:"
            self._rc(
                "config/create",
                {
                    "name": names[i],
                    "type": "combine",
                    "parameters": {"upstreams": _quote_upstream(f"{labels[i]}={target}")},
                    "opt": {"nonInteractive": True},
                },
            )
        live.remotes = tuple(names)
        read_only = live.spec.access == Access.read
        extra = {"read_only": True, "etag_hash": ""} if read_only else {}
        # rclone listens on loopback only; clients reach it through the gate (gate.py), which
        # owns the grant's advertised port.
        live.serve_id, live.inner_port = self._serve(f"{names[0]}:", None, "127.0.0.1", live.key_id, extra)
        inner = ("127.0.0.1", live.inner_port)
        # After an rcd restart the grant's front is still open: point it at the new endpoint,
        # so its public port (what clients hold) never closes, nor can be taken meanwhile.
        gid = live.spec.grant_id
        if live.port is None or not self._gate.retarget(live.port, inner, gid):
            try:
                live.port = self._gate.open(self.bind_host, live.port, inner, read_only=read_only, owner=gid)
            except GateError as exc:
                raise BrokerError(str(exc)) from None
        self._remember(live)

    def _disarm(self, live: _Live) -> None:
        """Stop the grant's endpoint, cut its open connections, drop its remotes.

        Needs no lock of the broker's: callers take the grant out of ``_live`` first, so
        a slow stop never holds up another grant.
        """
        serve_id, inner, remotes = live.serve_id, live.inner_port, live.remotes
        live.serve_id = None
        live.remotes = ()
        # The gate first: its port closes and every relayed connection is cut at once.
        self._gate.close(live.port)
        if serve_id is not None and self._rcd.alive():
            self._stop_serve(serve_id, inner)
        for name in remotes:
            if self._rcd.alive():
                try:
                    self._rc("config/delete", {"name": name})
                except RcError:
                    pass  # best effort: a stale combine remote grants nothing without a serve
        if remotes and self._rcd.alive():
            # rclone keeps every Fs it built (one per combine level of each grant) in its fs
            # cache, and entries a serve used never expired: measured ~9 per upload and
            # download, 541 after 60 of them, still there after 8 idle minutes — a hub's rcd
            # grew without bound. Clearing drops the cache's references only: live
            # endpoints keep their own Fs (checked by a test) and new ones build theirs.
            try:
                self._rc("fscache/clear", {})
            except (RcError, BrokerError):
                pass  # memory only; the next revocation tries again

    def _stop_serve(self, serve_id: str, port: int | None) -> None:
        """``serve/stop``, cutting the endpoint's open connections so it returns at once.

        serve/stop closes the listener first and then waits for open connections (up to
        rclone's fixed deadline) while holding rclone's serve lock; see ``rcd.py``.
        """
        failure: list[BaseException] = []

        def stop() -> None:
            try:
                self._rc("serve/stop", {"id": serve_id})
            except RcError as exc:
                if "not found" not in exc.rc_message.lower():
                    failure.append(exc)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)

        stopper = threading.Thread(target=stop, name="dshub-serve-stop", daemon=True)
        stopper.start()
        wait = 0.005
        while stopper.is_alive():
            if port is not None:
                self._rcd.cut_connections(port)
            stopper.join(wait)
            wait = min(wait * 2, 0.2)
        if failure:
            raise failure[0]

    def _answer(self, live: _Live) -> tuple[Location, Credentials]:
        assert live.port is not None
        if self.advertise_url:
            u = urlsplit(self.advertise_url)
            host = u.hostname or "127.0.0.1"
            endpoint = f"{u.scheme or 'http'}://{_host_port(host, live.port)}"
        else:
            endpoint = f"http://{_host_port(self.bind_host if self.bind_host not in ('0.0.0.0', '::', '') else '127.0.0.1', live.port)}"
        loc = Location(
            endpoint=endpoint, bucket=self.bucket, prefix=live.spec.prefix, region=self.region, provider="Other"
        )
        creds = Credentials(
            access_key_id=live.key_id,
            secret_access_key=self._secret_for(live.key_id),
            session_token=None,
            expiry=live.spec.expires_at,
        )
        return loc, creds

    # --- Broker protocol ----------------------------------------------------------------

    def grant(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        """Start an endpoint that serves only ``spec.prefix`` (read-only for read grants).

        Granting an id that is already live with the same scope returns its current
        credentials with the new expiry (like :meth:`refresh`); a different scope replaces
        the endpoint and its keys.
        """
        _prefix_parts(spec.prefix)
        return self._call(lambda: self._grant_locked(spec, reuse_saved=False))

    def refresh(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        """Same keys and endpoint with the new expiry while the endpoint is alive.

        If the endpoint is gone (revoked, expired, or never restored) a new one is started
        on the same port if free, with a **new key id**: credentials that were revoked
        never start working again. After an rcd crash endpoints are re-armed with their old
        keys by the supervisor, so a refresh then keeps the keys.
        """
        _prefix_parts(spec.prefix)
        return self._call(lambda: self._grant_locked(spec, reuse_saved=True))

    def revoke(self, grant_id: str, *, lapsed_by: datetime | None = None) -> None:
        """Stop the grant's endpoint now (its port closes, its key dies). Idempotent.
        ``lapsed_by``: only if the grant still expires by then (not renewed meanwhile)."""
        if self._thread is None:
            with self._lock:  # not started: just forget it
                self._live.pop(grant_id, None)
                if self._saved.pop(grant_id, None) is not None:
                    self._save()
            return
        self._call(lambda: self._revoke_locked(grant_id, lapsed_by))  # the stop itself runs unlocked

    def restore(self, grants: list[GrantSpec]) -> None:
        """Re-create the endpoints of grants that were live before a hub restart.

        Same port (if free) and same key id as before, taken from ``ports.json``, so
        clients holding credentials carry on. Expired grants are skipped; ports.json
        entries of grants not listed are dropped.
        """
        now = _now()
        wanted = {g.grant_id for g in grants}
        with self._lock:
            self._pending.update({g.grant_id: g for g in grants if g.expires_at > now})

        def do() -> None:
            with self._lock:
                for gid in [g for g in self._saved if g not in wanted and g not in self._live]:
                    del self._saved[gid]
                self._save()
            # One grant per lock hold: the hub serves requests while this runs (see app.py),
            # and a client's refresh of a grant not yet restored re-arms it itself.
            for spec in grants:
                if self._stopping.is_set():
                    break
                self._restore_one(spec.grant_id)

        self._call(do)

    def _restore_one(self, grant_id: str) -> None:
        with self._lock:
            spec = self._pending.pop(grant_id, None)
        if spec is None or spec.expires_at <= _now():
            return
        try:
            self._grant_locked(spec, reuse_saved=True)
        except BrokerError as exc:
            log.error("could not restore grant %s: %s", spec.grant_id, exc)

    def advertised_location(self, grant_id: str, stored: Location) -> Location:
        """The endpoint the broker runs for the grant, else the stored one (renewed there).
        A grant a restart has not re-armed yet is re-armed now: its saved port may be taken."""
        with self._lock:
            pending = grant_id in self._pending
        if pending:
            self._call(lambda: self._restore_one(grant_id))
        with self._lock:
            live = self._live.get(grant_id)
            if live is not None and live.serve_id is not None and live.port is not None:
                return self._answer(live)[0]
        return stored

    def storage(self) -> StorageAccess:
        """The admin endpoint (loopback only) over every bucket in objects_dir."""
        self._call(lambda: None)
        with self._lock:
            if self._admin_serve is None:
                raise BrokerError("admin endpoint is not running")
            return StorageAccess(
                endpoint=f"http://127.0.0.1:{self._admin_port}",
                bucket=self.bucket,
                region=self.region,
                access_key_id=self._admin_key,
                secret_access_key=self._secret_for(self._admin_key),
                local_root=self.objects_dir / self.bucket,
            )

    # --- internals ------------------------------------------------------------------------

    def _call(self, fn: Any) -> Any:
        """Run ``fn`` with rcd up; if rcd died underneath, relaunch once and retry."""
        for attempt in range(2):
            self._ensure_rcd()
            try:
                return fn()
            except BrokerError:
                if attempt == 0 and not self._rcd.alive() and not self._stopping.is_set():
                    continue
                raise
        raise BrokerError("rclone rcd keeps dying")  # pragma: no cover

    def _grant_locked(self, spec: GrantSpec, *, reuse_saved: bool) -> tuple[Location, Credentials]:
        with self._lock:
            live = self._live.get(spec.grant_id)
            if live is not None and (live.spec.prefix, live.spec.access) == (spec.prefix, spec.access):
                live.spec = spec
                self._pending.pop(spec.grant_id, None)
                if live.serve_id is None:  # re-arm failed earlier, try again
                    self._arm(live)
                return self._answer(live)
            if live is not None:  # scope changed: new endpoint, new keys
                self._revoke_locked(spec.grant_id)
            saved = self._saved.get(spec.grant_id) if reuse_saved else None
            if saved and (saved.get("prefix"), saved.get("access")) == (spec.prefix, spec.access.value):
                live = _Live(spec=spec, key_id=str(saved["key_id"]), port=saved.get("port"))
            else:
                port = saved.get("port") if saved else None
                live = _Live(spec=spec, key_id=self._new_key_id(), port=port or spec.port)
            try:
                self._arm(live)
            except BaseException:
                self._disarm(live)
                raise
            self._live[spec.grant_id] = live
            self._pending.pop(spec.grant_id, None)  # served now: a later restore step must not undo it
            return self._answer(live)

    def _revoke_locked(self, grant_id: str, lapsed_by: datetime | None = None) -> None:
        with self._lock:
            current = self._live.get(grant_id)
            if lapsed_by is not None and current is not None and current.spec.expires_at > lapsed_by:
                return  # refreshed after the caller saw it lapse: the new credentials stay
            self._pending.pop(grant_id, None)
            live = self._forget(grant_id)
        if live is not None:
            self._disarm(live)

    def _forget(self, grant_id: str) -> _Live | None:
        """Take a grant out of the broker's books (under the lock); the caller disarms it."""
        with self._lock:
            live = self._live.pop(grant_id, None)
            if self._saved.pop(grant_id, None) is not None:
                self._save()
            return live

    # Handy for tests and the hub's health endpoint.
    def rcd_pid(self) -> int | None:
        """pid of the running rclone rcd (None when stopped)."""
        return self._rcd.pid if self._rcd.alive() else None

    def live_grants(self) -> dict[str, GrantSpec]:
        """Grants whose endpoints the broker currently runs (copy)."""
        with self._lock:
            return {g: replace(lv.spec) for g, lv in self._live.items()}
