"""A read that outlives its 30-second credential keeps working (issue 7).

The hub runs with ``--credential-ttl 30``; the local broker stops a grant's S3 endpoint at
expiry, so the old credentials really die (checked below with a raw GET). Two paths are
shown: the proactive one (the cache renews the grant before expiry, and an open file picks
up the new endpoint), and the reactive one (a cache that still believes in a dead grant —
clock skew, revocation — gets an error, refreshes once and retries).
"""

from __future__ import annotations

import random
import time

import pytest

from dshub.library.fs import DshubFileSystem, refresh_margin
from tests.conftest import HubFactory
from tests.integration.library_util import CountingTransport, publish

pytestmark = pytest.mark.integration

TTL = 30


def test_read_outlives_a_30_second_credential(hub: HubFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    h = hub("--credential-ttl", str(TTL))
    alice = h.create_user("alice")
    src = random.Random(3).randbytes(2 * 2**20)
    publish(h.url, alice, "alice", "blobs", {"blob.bin": src})

    fs = DshubFileSystem(hub_url=h.url, token=alice, skip_instance_cache=True)
    path = "alice/blobs@v1/blob.bin"
    chunk = 64 * 1024
    started = time.monotonic()
    f = fs.open(f"dshub://{path}", "rb", block_size=chunk, cache_type="none")
    assert f.read(chunk) == src[:chunk]
    cache = fs._grant_cache()
    first = cache.get(fs.hub, "alice", "blobs", 1)
    assert first.renew_at - started <= TTL - refresh_margin(TTL) + 1

    # Sleep past the credential's expiry; the hub stops its endpoint.
    time.sleep(max(0.0, TTL + 3 - (time.monotonic() - started)))
    with pytest.raises(Exception):  # the old credentials are dead: connection refused or 403
        first.client.get_object(Bucket=first.grant.location.bucket, Key=first.key("blob.bin"), Range="bytes=0-9")

    # Proactive: the open file keeps reading; the cache fetched a new grant.
    assert f.read(chunk) == src[chunk:2 * chunk]
    f.seek(len(src) - 1000)
    assert f.read() == src[-1000:]
    second = cache.get(fs.hub, "alice", "blobs", 1)
    assert second.generation > first.generation
    assert second.grant.credentials.access_key_id != first.grant.credentials.access_key_id

    # Reactive: put the dead grant back as if it were still valid; the read refreshes once.
    counter = CountingTransport()
    from dshub.api.client import HubClient

    monkeypatch.setattr(fs, "_hub_client", HubClient(h.url, alice, transport=counter))
    first.renew_at = float("inf")
    cache._grants[("alice", "blobs", 1)] = first
    f.seek(12345)
    assert f.read(1000) == src[12345:13345]
    assert [p for _, p, _ in counter.requests] == ["/api/v1/datasets/alice/blobs/versions/1/credentials"]
    f.close()
    assert time.monotonic() - started < 75
