"""Tardis.dev access layer: Datasets API client, shared rate limiter, schemas. No Dagster imports."""

from tick_assets.tardis.client import DownloadResult, TardisClient
from tick_assets.tardis.datatypes import DATA_TYPES, SCHEMAS
from tick_assets.tardis.errors import (
    BadContentError,
    BadRequestError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RetriesExhaustedError,
    TardisError,
    TardisHTTPError,
    TransientError,
    UnauthorizedError,
    UnavailableError,
)
from tick_assets.tardis.exchanges import ExchangeDetails
from tick_assets.tardis.ratelimit import LimiterConfig, RateLimiter, sqlite_limiter
from tick_assets.tardis.retry import RetryPolicy

__all__ = [
    "DATA_TYPES",
    "SCHEMAS",
    "BadContentError",
    "BadRequestError",
    "DownloadResult",
    "ExchangeDetails",
    "ForbiddenError",
    "InvalidRequestError",
    "LimiterConfig",
    "NotFoundError",
    "RateLimiter",
    "RetriesExhaustedError",
    "RetryPolicy",
    "TardisClient",
    "TardisError",
    "TardisHTTPError",
    "TransientError",
    "UnauthorizedError",
    "UnavailableError",
    "sqlite_limiter",
]
