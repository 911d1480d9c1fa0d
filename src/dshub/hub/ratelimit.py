"""Failed-authentication limiter: per client address, a sliding window in memory.

A guessed token costs the attacker one request; without a limit, a local user could try
thousands a second. Once an address has ``limit`` failures within ``window`` seconds, the
hub answers 429 to every request of that address carrying a token until the oldest
failure leaves the window — good tokens included, or the limit would only slow a guess
down when it is wrong. Per process: replicas each keep their own count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from dshub.hub.errors import HubError


class AuthLimiter:
    """Counts failed authentications per client address; see the module docstring."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def check(self, address: str) -> None:
        """Raise 429 when ``address`` is over the limit (0 = no limit)."""
        if self.limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            q = self._failures.get(address)
            if q is None:
                return
            self._trim(q, now)
            if not q:
                del self._failures[address]
                return
            if len(q) < self.limit:
                return
            wait = max(1, math.ceil(q[0] + self.window - now))
        raise HubError(
            429, "too_many_requests",
            f"too many failed authentications from this address ({self.limit} in {self.window:.0f} s, "
            f"the limit); retry in {wait} s with a valid token",
            headers={"Retry-After": str(wait)},
        )

    def failed(self, address: str) -> None:
        """Record one failed authentication of ``address``."""
        if self.limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            q = self._failures.setdefault(address, deque())
            self._trim(q, now)
            q.append(now)
            if len(self._failures) > 10_000:  # many addresses: drop the idle ones
                for a in [a for a, d in self._failures.items() if not d or d[-1] <= now - self.window]:
                    del self._failures[a]
