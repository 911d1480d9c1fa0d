"""What the hub holds of an upload's dataset, asked while the local folder is scanned.

Re-running an unchanged upload (a pipeline's usual case) costs start-up, the scan and
two read-only hub calls — the dataset and the latest version's manifest — before dshub
can say "up to date". The scan waits on the disk and Python,
the calls on the network and the hub, so ``LookAhead`` makes the calls on a thread while
the scan runs. Only reads: a scan error still stops the upload before anything is
created or changed on the hub, and it is reported first (the thread's errors surface
only when its answers are used).

The manifest is read ahead only for a latest version of at most ``MAX_FILES`` files (the entries wait in memory until compared), and it stops
as soon as the comparison finds a difference or the upload no longer needs it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dshub.models import Dataset, ManifestEntry

if TYPE_CHECKING:
    from dshub.api.client import HubClient

# Read ahead at most this many manifest entries (~0.5 KiB each in memory). Larger
# versions are streamed when compared, as without look-ahead.
MAX_FILES = 100_000
_BATCH = 1000


@dataclass(frozen=True)
class Head:
    """The dataset (None: it does not exist)."""

    dataset: Dataset | None


class LookAhead:
    """Start asking the hub about ``owner()/name`` now; take the answers later."""

    def __init__(self, client: HubClient, owner: Callable[[], str], name: str) -> None:
        self._client, self._owner, self._name = client, owner, name
        self._head: Future[Head] = Future()
        self._version: int | None = None  # whose manifest is being read ahead
        self._batches: queue.SimpleQueue[list[ManifestEntry] | BaseException | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="dshub-lookahead", daemon=True).start()

    def head(self) -> Head:
        """The dataset; raises what the hub answered (NotFoundError is not raised: a
        missing dataset is ``Head(None)``)."""
        return self._head.result()

    def manifest(self, version: int) -> Iterator[ManifestEntry] | None:
        """The entries of ``version`` read ahead, or None when they were not (another
        version, too many files). Closing the iterator early (a
        difference found) stops the reading."""
        self.head()  # the thread decided whether to read ahead before answering
        if self._version != version or self._stop.is_set():
            return None
        return self._entries()

    def close(self) -> None:
        """Stop reading (the thread ends at its next batch)."""
        self._stop.set()

    def _entries(self) -> Iterator[ManifestEntry]:
        try:
            while (batch := self._batches.get()) is not None:
                if isinstance(batch, BaseException):
                    raise batch
                yield from batch
        finally:
            self._stop.set()

    def _run(self) -> None:
        from dshub.errors import NotFoundError

        try:
            owner = self._owner()
            try:
                ds: Dataset | None = self._client.get_dataset(owner, self._name)
            except NotFoundError:
                ds = None
        except BaseException as e:  # handed to head()'s caller
            self._head.set_exception(e)
            return
        if ds is not None and ds.latest_version and ds.file_count <= MAX_FILES:
            self._version = ds.latest_version
        self._head.set_result(Head(ds))
        if self._version is None:
            return
        try:
            batch: list[ManifestEntry] = []
            for e in self._client.iter_manifest(owner, self._name, self._version):
                if self._stop.is_set():
                    break  # leaving the loop closes the stream
                batch.append(e)
                if len(batch) >= _BATCH:
                    self._batches.put(batch)
                    batch = []
            self._batches.put(batch)
            self._batches.put(None)  # also after a stop: nobody waits for more
        except BaseException as e:  # raised where the entries are read
            self._batches.put(e)
