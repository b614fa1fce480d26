"""Typed errors of the Tardis client; every message says what to do next."""

from __future__ import annotations


class TardisError(Exception):
    """Base class of every error raised by the Tardis client."""

    #: Whether a retry of the same request may succeed.
    retryable: bool = False


class InvalidRequestError(TardisError, ValueError):
    """A bad exchange, data type, symbol or date, found before any request is sent."""


class UnavailableError(TardisError):
    """The requested day lies outside what Tardis has (symbol lifetime or export horizon)."""


class NotExportedYetError(UnavailableError):
    """The day is after datasets.exportedUntil: Tardis has not published it yet (retry later)."""


class NotOfferedError(UnavailableError):
    """Tardis does not offer this data type for this symbol (datasets.symbols[].dataTypes)."""


class TardisHTTPError(TardisError):
    """The server answered with an error status."""

    def __init__(self, status: int, url: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class BadRequestError(TardisHTTPError):
    """HTTP 400."""


class UnauthorizedError(TardisHTTPError):
    """HTTP 401: no key, a wrong key, or a key without access to this day."""


class ForbiddenError(TardisHTTPError):
    """HTTP 403."""


class NotFoundError(TardisHTTPError):
    """HTTP 404: unknown exchange, data type or symbol."""


class BadContentError(TardisError):
    """The server answered 200 with a body that is not a gzip file (e.g. an HTML error page)."""


class TransientError(TardisError):
    """A failure worth retrying: 429, 5xx, a network error, a timeout, a truncated or corrupt body."""

    retryable = True

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        throttled: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        #: The HTTP status when the server answered (500 doubles the backoff), else None.
        self.status = status


class CancelledError(TardisError):
    """The caller asked to stop (run terminated, Ctrl-C) during a download; nothing was written."""


class RetriesExhaustedError(TardisError):
    """A transient failure that persisted through every allowed attempt."""
