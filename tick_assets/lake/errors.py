"""Errors of the lake layer; like the client's, they are final (not retried) and say what to do."""

from __future__ import annotations

from tick_assets.tardis.errors import TardisError


class LakeError(TardisError):
    """A dataset file that cannot become a lake partition."""


class SchemaMismatchError(LakeError):
    """The CSV header differs from the schema we know for the data type (Tardis changed the format)."""


class CsvParseError(LakeError):
    """A value in the CSV does not parse as the type of its column."""
