"""Per-key request limits: a token bucket for the rate and a count of requests in flight.

Fairness: every API key (or, with keys off, every client address) has its own bucket and its own
in-flight count, so one busy caller spends only its own allowance and never another's. Pure apart
from the clock, which is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_TRACKED_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class KeyQuotas:
    rate_per_second: float  # 0: no rate limit
    burst: int
    max_concurrent: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _in_flight: dict[str, int] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        """Spend one request of ``key``'s rate: 0.0 when allowed, else the seconds until it would be."""
        if self.rate_per_second <= 0:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate_per_second

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes nothing, and many client addresses
        (keys off) must not grow the table without end."""
        refill = self.burst / self.rate_per_second
        for key in [key for key, bucket in self._buckets.items() if now - bucket.updated >= refill]:
            del self._buckets[key]

    def enter(self, key: str) -> bool:
        """Count a request of ``key`` in flight, unless it already has ``max_concurrent``."""
        current = self._in_flight.get(key, 0)
        if current >= self.max_concurrent:
            return False
        self._in_flight[key] = current + 1
        return True

    def leave(self, key: str) -> None:
        remaining = self._in_flight.get(key, 1) - 1
        if remaining:
            self._in_flight[key] = remaining
        else:
            self._in_flight.pop(key, None)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
