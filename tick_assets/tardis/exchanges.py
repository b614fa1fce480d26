"""Exchange metadata from /v1/exchanges/{exchange}: symbols, data types and the available date range."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tick_assets.tardis.errors import NotExportedYetError, NotOfferedError, UnavailableError

#: Dataset ids that stand for a whole kind of instrument: one file per day holding every instrument of the
#: kind, each row with its own `symbol` (datasets.symbols[] lists them beside the instruments).
GROUPED_SYMBOLS = ("SPOT", "FUTURES", "PERPETUALS", "OPTIONS")


def is_grouped(symbol: str) -> bool:
    """Whether a dataset symbol id is a grouped one (SPOT, FUTURES, PERPETUALS, OPTIONS)."""
    return symbol.upper() in GROUPED_SYMBOLS


def parse_iso(value: str | None) -> dt.datetime | None:
    """Parse Tardis's ISO date-time strings ('2019-03-30T00:00:00.000Z') into aware UTC datetimes."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def day_start(day: dt.date) -> dt.datetime:
    """Return 00:00 UTC of a day."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class DatasetSymbol:
    """One entry of datasets.symbols[]."""

    id: str
    type: str
    available_since: dt.datetime | None
    available_to: dt.datetime | None
    data_types: tuple[str, ...]


@dataclass(frozen=True)
class ExchangeDetails:
    """The parts of /v1/exchanges/{exchange} that decide what can be downloaded."""

    id: str
    name: str
    available_since: dt.datetime | None
    available_to: dt.datetime | None
    exported_from: dt.datetime | None
    exported_until: dt.datetime | None
    symbols: dict[str, DatasetSymbol]

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ExchangeDetails:
        """Build from the JSON body of /v1/exchanges/{exchange}."""
        datasets = payload.get("datasets") or {}
        symbols = {
            s["id"]: DatasetSymbol(
                id=s["id"],
                type=s.get("type", ""),
                available_since=parse_iso(s.get("availableSince")),
                available_to=parse_iso(s.get("availableTo")),
                data_types=tuple(s.get("dataTypes", ())),
            )
            for s in datasets.get("symbols", ())
        }
        return cls(
            id=payload["id"],
            name=payload.get("name", payload["id"]),
            available_since=parse_iso(payload.get("availableSince")),
            available_to=parse_iso(payload.get("availableTo")),
            exported_from=parse_iso(datasets.get("exportedFrom")),
            exported_until=parse_iso(datasets.get("exportedUntil")),
            symbols=symbols,
        )

    @property
    def data_types(self) -> tuple[str, ...]:
        """Every data type offered for at least one symbol."""
        return tuple(sorted({t for s in self.symbols.values() for t in s.data_types}))

    def last_exported_day(self) -> dt.date | None:
        """The last whole UTC day Tardis has exported, from exportedUntil."""
        if self.exported_until is None:
            return None
        return (self.exported_until - dt.timedelta(days=1)).date()

    def last_available_day(self, symbol: str) -> dt.date | None:
        """The last whole UTC day downloadable for `symbol` (what `check_day` accepts): a day that ends by
        exportedUntil and starts before the symbol's availableTo."""
        entry = self.symbols.get(symbol)
        if entry is None:
            return None
        ends = [self.last_exported_day()]
        if entry.available_to is not None:
            ends.append((entry.available_to - dt.timedelta(microseconds=1)).date())
        known = [d for d in ends if d is not None]
        return min(known) if known else None

    def check_day(self, data_type: str, symbol: str, day: dt.date) -> None:
        """Raise UnavailableError unless `symbol` has `data_type` for the whole UTC `day`.

        The real API gives an active symbol an availableTo equal to exportedUntil, so a day at or after
        availableTo is "not exported yet" when availableTo is the export horizon, and "delisted" only when the
        symbol's data ends before it.
        """
        where = f"{self.id} {data_type} {symbol} {day:%Y-%m-%d}"
        entry = self.symbols.get(symbol)
        if entry is None:
            known = ", ".join(sorted(self.symbols)[:15])
            raise UnavailableError(
                f"{where}: symbol {symbol!r} is not a dataset symbol of {self.id}. "
                f"Use one of datasets.symbols[].id from /v1/exchanges/{self.id} (e.g. {known})."
            )
        if data_type not in entry.data_types:
            raise NotOfferedError(
                f"{where}: Tardis does not offer {data_type!r} for {symbol}; it offers "
                f"{', '.join(entry.data_types)} (datasets.symbols[].dataTypes of /v1/exchanges/{self.id})."
            )
        start = day_start(day)
        if entry.available_since and start < entry.available_since.replace(
            hour=0, minute=0, second=0, microsecond=0
        ):
            raise UnavailableError(
                f"{where}: before the symbol's availableSince {entry.available_since:%Y-%m-%d}. "
                "Start the partition range on or after that day."
            )
        horizon = self.exported_until
        delisted = entry.available_to is not None and (horizon is None or entry.available_to < horizon)
        if delisted and start >= entry.available_to:  # type: ignore[operator]
            last = (entry.available_to - dt.timedelta(microseconds=1)).date()  # type: ignore[operator]
            raise UnavailableError(
                f"{where}: {symbol} was delisted or expired: its data ends on {last:%Y-%m-%d} "
                f"(availableTo {entry.available_to:%Y-%m-%d}, before exportedUntil). Pick earlier days."
            )
        if horizon is not None and start + dt.timedelta(days=1) > horizon:
            raise NotExportedYetError(
                f"{where}: not exported yet: Tardis publishes day {day:%Y-%m-%d} around 06:00 UTC on "
                f"{day + dt.timedelta(days=1):%Y-%m-%d}, retry later (exportedUntil {horizon:%Y-%m-%d %H:%M} UTC)."
            )
