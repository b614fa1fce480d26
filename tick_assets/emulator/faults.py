"""Fault injection for the emulator: seeded, per-request decisions and a server-side rate limit."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass

#: Fault kinds in the order their probabilities are stacked.
#: New kinds go last, so a seed gives the same decisions for the kinds that existed before.
FAULT_KINDS = ("throttle", "server_error", "reset", "truncate", "stall", "html", "cdn_400")


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities (0..1) of each fault per dataset request, and their parameters."""

    throttle: float = 0.0  # 429 with Retry-After
    server_error: float = 0.0  # 500/502/503
    reset: float = 0.0  # connection reset after part of the body
    truncate: float = 0.0  # a complete HTTP response whose gzip body is cut short
    stall: float = 0.0  # part of the body, then silence for `stall_seconds`
    html: float = 0.0  # 200 with an HTML error page instead of gzip
    cdn_400: float = (
        0.0  # the CDN bug that drops query strings: 400 "... ISO 8601 format" (retried by clients)
    )
    seed: int = 0
    retry_after_seconds: int = 1
    stall_seconds: float = 90.0  # longer than the client's default 60 s read timeout
    # Server-side limit in requests/second (0 = none), enforced with a token bucket of `rate_burst`.
    rate_limit: float = 0.0
    rate_burst: int = 1

    def __post_init__(self) -> None:
        total = sum(getattr(self, k) for k in FAULT_KINDS)
        if any(not 0 <= getattr(self, k) <= 1 for k in FAULT_KINDS) or total > 1:
            raise ValueError(f"Fault probabilities must each be in [0, 1] and sum to <= 1 (got {total}).")

    @property
    def any(self) -> bool:
        """Whether any random fault is enabled."""
        return any(getattr(self, k) > 0 for k in FAULT_KINDS)

    def decide(self, path: str, attempt: int) -> str | None:
        """Deterministically pick the fault (or None) for the `attempt`-th request of `path`."""
        if not self.any:
            return None
        digest = hashlib.blake2b(f"{self.seed}|{path}|{attempt}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(self, kind)
            if u < edge:
                return kind
        return None


class ServerRateLimit:
    """The emulated service's own request limit: a token bucket answering how long to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def admit(self) -> float | None:
        """Take a token and return None, or return the seconds until one is available (the 429 case)."""
        if self.rate <= 0:
            return None
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """Format a Retry-After value: whole seconds, at least 1, as HTTP requires."""
    return str(max(1, math.ceil(seconds)))
