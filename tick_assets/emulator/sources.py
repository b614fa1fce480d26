"""What the emulator serves: synthetic days generated on demand, or a folder of real .csv.gz files."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import secrets
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tick_assets.emulator.catalog import CATALOG, GROUP_MEMBER_TYPE, GROUP_TYPES, ExchangeSpec
from tick_assets.tardis.datatypes import DATA_TYPES
from tick_assets.tardis.urls import sanitize_for_file_name

# Bump when the generator's output changes, so cached synthetic files are regenerated.
GENERATOR_VERSION = 4
EMPTY_GZIP = gzip.compress(b"", mtime=0)


def iso(day: dt.date) -> str:
    """Format a day as Tardis's ISO date-time string."""
    return f"{day:%Y-%m-%d}T00:00:00.000Z"


def default_exported_until(now: dt.datetime | None = None) -> dt.date:
    """Tardis publishes a day around 06:00 UTC the next day: return the exclusive end of exported days."""
    now = now or dt.datetime.now(dt.timezone.utc)
    today = now.date()
    return today if now.hour >= 6 else today - dt.timedelta(days=1)


@dataclass(frozen=True)
class Lookup:
    """Result of resolving a dataset request: a file to send, or why there is none."""

    path: Path | None = None
    not_found: str | None = None
    #: The status of a refusal: 400 for what Tardis calls an invalid request (unknown symbol, data type not
    #: offered), 404 for what is not there.
    status: int = 404

    @property
    def refused(self) -> bool:
        """Whether the request is answered with an error rather than a file."""
        return self.not_found is not None


class Source(ABC):
    """A catalog of exchanges and the files of their datasets."""

    @abstractmethod
    def exchange_ids(self) -> list[str]:
        """Ids of every exchange served."""

    @abstractmethod
    def exchange_json(self, exchange: str) -> dict[str, Any] | None:
        """The /v1/exchanges/{exchange} body, or None for an unknown exchange."""

    @abstractmethod
    def lookup(
        self, exchange: str, data_type: str, day: dt.date, symbol: str, generate: bool = True
    ) -> Lookup:
        """Resolve one dataset file; with `generate` False only say whether it would be refused (no work)."""


def _exchange_body(
    exchange: str,
    name: str,
    since: dt.date,
    until: dt.date,
    symbols: list[dict[str, Any]],
    native_ids: dict[str, str] | None = None,
) -> dict[str, Any]:
    native_ids = native_ids or {}
    return {
        "id": exchange,
        "name": name,
        "enabled": True,
        "supportsDatasets": True,
        "availableSince": iso(since),
        "availableChannels": [],
        "availableSymbols": [
            {
                "id": native_ids.get(s["id"], s["id"]),
                "type": s["type"],
                "availableSince": s["availableSince"],
                **({"availableTo": s["availableTo"]} if "availableTo" in s else {}),
            }
            for s in symbols
        ],
        "incidentReports": [],
        "datasets": {
            "formats": ["csv"],
            "exportedFrom": iso(since),
            "exportedUntil": iso(until),
            "stats": {"trades": 0, "bookChanges": 0},
            "symbols": symbols,
        },
    }


class SyntheticSource(Source):
    """Deterministic synthetic days from the catalog, generated on first request and cached on disk."""

    def __init__(
        self,
        cache_dir: Path,
        scale: int,
        exported_until: dt.date | None = None,
        empty_days: frozenset[dt.date] = frozenset(),
        compresslevel: int = 6,
        catalog: dict[str, ExchangeSpec] = CATALOG,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.scale = scale
        self.exported_until = exported_until
        self.empty_days = empty_days
        self.compresslevel = compresslevel
        self.catalog = catalog
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _until(self) -> dt.date:
        return self.exported_until or default_exported_until()

    def exchange_ids(self) -> list[str]:
        """Ids of every exchange in the catalog."""
        return sorted(self.catalog)

    def exchange_json(self, exchange: str) -> dict[str, Any] | None:
        """Describe a catalog exchange like the real metadata API."""
        spec = self.catalog.get(exchange)
        if spec is None:
            return None
        until = self._until()
        # Like the real API: an active symbol's availableTo is exportedUntil; a delisted one's is its last day.
        symbols = [
            {
                "id": s.id,
                "type": s.type,
                "availableSince": iso(s.available_since),
                "availableTo": iso(min(s.available_to, until) if s.available_to else until),
                "dataTypes": list(s.data_types),
            }
            for s in spec.symbols
        ]
        native = {s.id: spec.native_symbol_id(s.id) for s in spec.symbols}
        body = _exchange_body(spec.id, spec.name, spec.available_since, until, symbols, native)
        # Grouped ids are dataset symbols only (not exchange instruments), each with its own dataTypes.
        body["datasets"]["symbols"] += [
            {
                "id": group,
                "type": GROUP_MEMBER_TYPE[group],
                "availableSince": iso(spec.group_available_since(group)),
                "availableTo": iso(until),
                "dataTypes": list(GROUP_TYPES[group]),
            }
            for group in spec.groups
        ]
        return body

    def lookup(
        self, exchange: str, data_type: str, day: dt.date, symbol: str, generate: bool = True
    ) -> Lookup:
        """Generate (once) and return the synthetic file of a dataset day."""
        spec = self.catalog.get(exchange)
        if spec is None:
            return Lookup(not_found=f"Unknown exchange '{exchange}'")
        if symbol in spec.groups:
            return self._lookup_group(spec, data_type, day, symbol, generate)
        sym = spec.symbol(symbol)
        if sym is None:
            ids = ", ".join([*(s.id for s in spec.symbols), *spec.groups])
            return Lookup(not_found=f"invalid symbol (must be one of {ids})", status=400)
        if data_type not in sym.data_types:
            offered = ", ".join(sym.data_types)
            return Lookup(
                not_found=f"invalid data type '{data_type}' for {symbol} (must be one of {offered})",
                status=400,
            )
        if day >= self._until():
            return Lookup(not_found=f"{day:%Y-%m-%d} has not been exported yet")
        outside = day < sym.available_since or (sym.available_to is not None and day >= sym.available_to)
        if outside or day in self.empty_days:
            return Lookup(path=self._empty_file())
        return Lookup(path=self._generated(exchange, data_type, day, symbol) if generate else None)

    def _cached_path(self, exchange: str, data_type: str, day: dt.date, symbol: str) -> Path:
        return (
            self.cache_dir
            / f"v{GENERATOR_VERSION}-s{self.scale}"
            / exchange
            / data_type
            / f"{day:%Y-%m-%d}_{sanitize_for_file_name(symbol)}.csv.gz"
        )

    def _generated(self, exchange: str, data_type: str, day: dt.date, symbol: str) -> Path:
        """The cached file of one instrument's day, generated (once, under a lock) on first use."""
        path = self._cached_path(exchange, data_type, day, symbol)
        if path.exists():
            return path
        with self._lock_for(path):
            if not path.exists():
                from tick_assets.emulator.synth import write_dataset

                path.parent.mkdir(parents=True, exist_ok=True)
                write_dataset(exchange, symbol, data_type, day, self.scale, path, self.compresslevel)
        return path

    def _lookup_group(
        self, spec: ExchangeSpec, data_type: str, day: dt.date, group: str, generate: bool = True
    ) -> Lookup:
        """A grouped day: every member instrument's rows in one file (the OPTIONS chain is generated whole)."""
        if data_type not in GROUP_TYPES[group]:
            offered = ", ".join(GROUP_TYPES[group])
            return Lookup(
                not_found=f"invalid data type '{data_type}' for {group} (must be one of {offered})",
                status=400,
            )
        if day >= self._until():
            return Lookup(not_found=f"{day:%Y-%m-%d} has not been exported yet")
        if day < spec.group_available_since(group) or day in self.empty_days:
            return Lookup(path=self._empty_file())
        path = self._cached_path(spec.id, data_type, day, group)
        if path.exists() or not generate:
            return Lookup(path=path if generate else None)
        from tick_assets.emulator import derived, groups

        if group == "OPTIONS":
            chain = self._options_chain(spec, day)
            if data_type == "options_chain":
                return Lookup(path=chain)
            write = (
                derived.write_trades_from_chain if data_type == "trades" else derived.write_quotes_from_chain
            )
            with self._lock_for(path):
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write(chain, path, self.compresslevel)
            return Lookup(path=path)
        live = [
            m
            for m in spec.group_members(group)
            if data_type in m.data_types
            and m.available_since <= day
            and (m.available_to is None or day < m.available_to)
        ]
        members = [self._generated(spec.id, data_type, day, m.id) for m in live]
        with self._lock_for(path):
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                groups.write_grouped(members, data_type, path, self.compresslevel)
        return Lookup(path=path)

    def _options_chain(self, spec: ExchangeSpec, day: dt.date) -> Path:
        path = self._cached_path(spec.id, "options_chain", day, "OPTIONS")
        if not path.exists():
            with self._lock_for(path):
                if not path.exists():
                    from tick_assets.emulator.options_chain import write_options_chain

                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_options_chain(
                        spec.id, spec.options_underlying, day, self.scale, path, self.compresslevel
                    )
        return path

    def _lock_for(self, path: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(path, threading.Lock())

    def _empty_file(self) -> Path:
        path = self.cache_dir / "empty.csv.gz"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"empty.{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(EMPTY_GZIP)
            os.replace(tmp, path)
        return path


_FIXTURE_RE = re.compile(
    r"^(?P<exchange>[a-z0-9-]+)_(?P<data_type>" + "|".join(sorted(DATA_TYPES, key=len, reverse=True)) + r")_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_(?P<symbol>.+)\.csv\.gz$"
)


class FixtureSource(Source):
    """A folder of real files named like the official client names them, served byte for byte."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"--fixtures {folder}: not a directory")
        # exchange -> symbol -> data_type -> {date: path}
        self._files: dict[str, dict[str, dict[str, dict[dt.date, Path]]]] = {}
        for path in sorted(self.folder.iterdir()):
            m = _FIXTURE_RE.match(path.name)
            if not m or not path.is_file():
                continue
            day = dt.date.fromisoformat(m["date"])
            by_type = self._files.setdefault(m["exchange"], {}).setdefault(m["symbol"], {})
            by_type.setdefault(m["data_type"], {})[day] = path
        if not self._files:
            raise ValueError(
                f"--fixtures {folder}: no files named like "
                "'{exchange}_{data_type}_{YYYY-MM-DD}_{SYMBOL}.csv.gz' (the tardis-dev download naming)"
            )

    def exchange_ids(self) -> list[str]:
        """Exchanges that have at least one file."""
        return sorted(self._files)

    def exchange_json(self, exchange: str) -> dict[str, Any] | None:
        """Describe what the folder holds for an exchange: symbols, data types and date range."""
        symbols_files = self._files.get(exchange)
        if symbols_files is None:
            return None
        first = {
            symbol: min(d for files in by_type.values() for d in files)
            for symbol, by_type in symbols_files.items()
        }
        last = max(d for by_type in symbols_files.values() for files in by_type.values() for d in files)
        until = last + dt.timedelta(days=1)
        # Every symbol is active, as the real API shows one: its availableTo is the export horizon.
        symbols = [
            {
                "id": symbol,
                "type": "perpetual",
                "availableSince": iso(first[symbol]),
                "availableTo": iso(until),
                "dataTypes": sorted(by_type),
            }
            for symbol, by_type in sorted(symbols_files.items())
        ]
        return _exchange_body(exchange, exchange, min(first.values()), until, symbols)

    def lookup(
        self, exchange: str, data_type: str, day: dt.date, symbol: str, generate: bool = True
    ) -> Lookup:
        """Return the fixture file of a dataset day, if the folder has it (nothing to generate)."""
        by_symbol = self._files.get(exchange)
        if by_symbol is None:
            return Lookup(not_found=f"Unknown exchange '{exchange}'")
        by_type = by_symbol.get(sanitize_for_file_name(symbol))
        if by_type is None:
            return Lookup(
                not_found=f"invalid symbol (must be one of {', '.join(sorted(by_symbol))})", status=400
            )
        files = by_type.get(data_type)
        if files is None:
            offered = ", ".join(sorted(by_type))
            return Lookup(
                not_found=f"invalid data type '{data_type}' for {symbol} (must be one of {offered})",
                status=400,
            )
        path = files.get(day)
        if path is None:
            return Lookup(
                not_found=f"No file for {exchange} {data_type} {symbol} {day:%Y-%m-%d} in the fixtures"
            )
        return Lookup(path=path)
