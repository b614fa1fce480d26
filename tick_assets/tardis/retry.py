"""Retry timing of the official Tardis clients: capped exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures (defaults: tardis-python 4.2 / tardis-node).

    The delay before attempt n + 1 is `min(base_delay * 2**n, max_delay) + uniform(0, jitter)`, doubled after a
    500; a 429 without Retry-After pauses `throttle_delay` more. With the defaults a file gets 30 attempts and
    at most `worst_case_wait_seconds()` of waiting between them.
    """

    max_attempts: int = 30
    base_delay: float = 1.0
    max_delay: float = 120.0
    jitter: float = 0.5
    # Extra pause after a 429 that carries no Retry-After (the official clients add 60 s).
    throttle_delay: float = 60.0
    # Factor on the delay after an HTTP 500 (the official clients double it).
    server_error_factor: float = 2.0
    # Upper bound on a server's Retry-After, so one odd header cannot pause every worker for a day.
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (got {self.max_attempts}).")
        if min(self.base_delay, self.max_delay, self.jitter, self.throttle_delay) < 0:
            raise ValueError("base_delay, max_delay, jitter and throttle_delay must not be negative.")

    def backoff(self, attempt: int, rng: random.Random | None = None, *, status: int | None = None) -> float:
        """Delay after failed attempt `attempt` (counting from 1); `status` 500 multiplies it."""
        rng = rng or random
        delay = min(self.max_delay, self.base_delay * 2**attempt) + rng.uniform(0, self.jitter)
        return delay * self.server_error_factor if status == 500 else delay

    def throttle_pause(self, attempt: int, rng: random.Random | None = None) -> float:
        """Pause after a 429 without Retry-After: the backoff plus `throttle_delay` (62 s after the first)."""
        return self.backoff(attempt, rng) + self.throttle_delay

    def worst_case_wait_seconds(self, *, status: int | None = None) -> float:
        """Total wait between the attempts of one file when every attempt fails (jitter at its maximum)."""
        total = 0.0
        for attempt in range(1, self.max_attempts):
            delay = min(self.max_delay, self.base_delay * 2**attempt) + self.jitter
            total += delay * (self.server_error_factor if status == 500 else 1.0)
            total += self.throttle_delay if status == 429 else 0.0
        return total


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Parse a Retry-After header (seconds or an HTTP date) into seconds, or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())
