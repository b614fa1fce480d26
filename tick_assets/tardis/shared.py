"""Build a client whose limiter state is shared machine-wide through DATA_DIR/ratelimit.sqlite, or by every
machine through a limiter server (`limiter_url`, e.g. postgresql://...)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from tick_assets.tardis.client import TardisClient
from tick_assets.tardis.ratelimit import LimiterConfig, open_limiter
from tick_assets.tardis.retry import RetryPolicy


def shared_client(
    data_dir: Path,
    *,
    api_key: str | None,
    datasets_url: str,
    api_url: str,
    limiter: LimiterConfig,
    retry: RetryPolicy | None = None,
    limiter_url: str | None = None,
    **client_options: float,
) -> TardisClient:
    """Return a client caching into DATA_DIR/tardis, rate limited per datasets host across all processes (of
    every machine that shares `limiter_url`, if given)."""
    data_dir = Path(data_dir)
    host = urllib.parse.urlsplit(datasets_url).netloc
    return TardisClient(
        data_dir / "tardis",
        api_key=api_key,
        datasets_url=datasets_url,
        api_url=api_url,
        limiter=open_limiter(limiter_url or data_dir / "ratelimit.sqlite", key=host, config=limiter),
        retry=retry,
        **client_options,
    )
