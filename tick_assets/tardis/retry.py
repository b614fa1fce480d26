"""Capped exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures."""

    max_attempts: int = 10
    base_delay: float = 1.0
    max_delay: float = 60.0
    # Pause after a 429 that carries no Retry-After (the official clients wait ~60 s).
    throttle_delay: float = 60.0
    # Upper bound on a server's Retry-After, so one odd header cannot pause every worker for a day.
    max_retry_after: float = 300.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before attempt `attempt + 1` (attempt counts from 1): capped exponential, 'equal jitter'."""
        rng = rng or random
        capped = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return capped / 2 + rng.uniform(0, capped / 2)


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
