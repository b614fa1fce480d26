"""Bad input through the raw asset: each case fails its partition at once (no retry) with an error naming the
cause and what to do, and the partition already stored for that day is left byte for byte as it was."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from tick_assets import settings
from tick_assets.assets.partitions import RANGE_END, RANGE_START, build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.emulator.faults import FaultConfig
from tick_assets.lake import partition_file
from tick_assets_tests.helpers.runs import BTC, materialize, resources

GOOD_DAY, BAD_DAY = "2020-02-21", "2020-02-22"
FILE = "binance-futures_trades_{day}_BTCUSDT.csv.gz"


def _rewrite(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    with gzip.open(path, "rt", newline="") as f:
        lines = f.read().splitlines()
    with gzip.open(path, "wt", newline="") as f:
        f.write("\n".join(change(lines)) + "\n")


def _malformed_row(path: Path) -> None:
    def change(lines: list[str]) -> list[str]:
        cells = lines[2].split(",")
        cells[6] = "12O.5"  # price with a letter O
        return [*lines[:2], ",".join(cells), *lines[3:]]

    _rewrite(path, change)


def _changed_header(path: Path) -> None:
    _rewrite(path, lambda lines: [lines[0].replace("amount", "qty"), *lines[1:]])


def _not_gzip(path: Path) -> None:
    with gzip.open(path, "rb") as f:
        plain = f.read()
    path.write_bytes(plain)


@dataclass(frozen=True)
class Case:
    """One bad input: how the second run is spoiled and what its error must say."""

    name: str
    expect: tuple[str, ...]
    spoil_file: Callable[[Path], None] | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    server_keys: frozenset[str] | None = None
    key: str = "test-key"
    instrument: str = BTC
    day: str = BAD_DAY
    dataset_requests: int = 1  # what the failing run may send: 1 = tried once, never retried


CASES = [
    Case("malformed CSV row", ("CsvParseError", "does not parse as its trades column type"), _malformed_row),
    Case("changed header (schema drift)", ("SchemaMismatchError", "qty"), _changed_header),
    Case("non-gzip body", ("BadContentError", "not gzip", "starts with 'exchange,symbol"), _not_gzip),
    Case("HTML error page with status 200", ("BadContentError", "text/html"), faults=FaultConfig(html=1.0)),
    Case(
        "invalid API key",
        ("UnauthorizedError", "HTTP 401", "TARDIS_API_KEY was rejected"),
        server_keys=frozenset({"the-right-key"}),
        key="a-wrong-key",
    ),
    Case(
        "unknown symbol",
        ("UnavailableError", "'NOPEUSDT' is not a dataset symbol"),
        instrument="binance-futures:NOPEUSDT",
        dataset_requests=0,
    ),
    Case(
        "unknown exchange",
        ("NotFoundError", "Unknown exchange 'nosuch-exchange'"),
        instrument="nosuch-exchange:BTCUSDT",
        dataset_requests=0,
    ),
    Case(
        "date outside availability",
        # The fixtures' availableTo is their exportedUntil, as the real API gives active symbols.
        ("NotExportedYetError", "not exported yet: Tardis publishes day 2020-02-25 around 06:00 UTC"),
        day="2020-02-25",
        dataset_requests=0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_clearly_once_and_keeps_what_is_stored(
    case: Case, start_emulator, real_fixtures_dir, tmp_path
) -> None:
    (sample,) = real_fixtures_dir.glob("binance-futures_trades_*_BTCUSDT.csv.gz")
    folder, data = tmp_path / "fixtures", tmp_path / "data"
    folder.mkdir()
    for day in (GOOD_DAY, BAD_DAY):
        shutil.copy(sample, folder / FILE.format(day=day))
    partitions = build_partitions("2020-02-20", [BTC, "binance-futures:NOPEUSDT", "nosuch-exchange:BTCUSDT"])
    asset = build_raw_asset("trades", partitions_def=partitions)
    instance = dg.DagsterInstance.ephemeral()

    # Both days are stored by a healthy run first.
    healthy = start_emulator(fixtures=folder)
    assert materialize(
        instance,
        [asset],
        resources=resources(healthy, data),
        tags={RANGE_START: f"{GOOD_DAY}|{BTC}", RANGE_END: f"{BAD_DAY}|{BTC}"},
    ).success
    stored = {
        d: partition_file(data / "lake", "raw/trades", "binance-futures", "BTCUSDT", d)
        for d in (GOOD_DAY, BAD_DAY)
    }
    before = {d: (p.read_bytes(), p.stat().st_mtime_ns) for d, p in stored.items()}

    # Then the bad day is asked for again, and Tardis (or the network, or the user) gets it wrong.
    (data / "tardis" / FILE.format(day=BAD_DAY)).unlink()
    if case.spoil_file:
        case.spoil_file(folder / FILE.format(day=BAD_DAY))
    server = start_emulator(fixtures=folder, faults=case.faults, api_keys=case.server_keys)
    result = materialize(
        instance,
        [asset],
        partition_key=f"{case.day}|{case.instrument}",
        resources=resources(server, data, api_key=case.key),
        raise_on_error=False,
    )

    assert not result.success
    message = result.failure_data_for_node("raw__trades").error.message
    assert f"Failure: {case.day}|{case.instrument}: {case.expect[0]}: " in message, message
    for text in case.expect:
        assert text in message, message
    assert case.key not in message
    assert server.stats["counts"].get("dataset_requests", 0) == case.dataset_requests  # never retried
    # What was stored stays as it was, byte for byte, and no temp file is left anywhere.
    assert {d: (p.read_bytes(), p.stat().st_mtime_ns) for d, p in stored.items()} == before
    assert not [p for p in data.rglob("*") if p.name.endswith((".tmp", ".unconfirmed"))]


@pytest.mark.parametrize(
    "instrument, says",
    [
        ("binance-futures:../../etc", "path or control characters"),
        ("binance-futures:..", "path or control characters"),
        ("deribit:BTC\x00", "path or control characters"),
        ("deribit:BTC\\PERP", "path or control characters"),
        ("../x:BTCUSDT", "Invalid exchange '../x'"),
        ("Deribit:BTC-PERPETUAL", "Invalid exchange 'Deribit'"),
        ("binance-futures:a/b", "write the symbol as Tardis ids it, binance-futures:A-B"),
        ("deribit:BTC|PERP", "is not 'exchange:SYMBOL'"),
    ],
)
def test_instruments_with_path_characters_are_refused_before_anything_runs(
    instrument: str, says: str, monkeypatch
) -> None:
    # In code (build_partitions) and in configuration (TICK_ASSETS_INSTRUMENTS, read when the location loads).
    with pytest.raises(ValueError, match=re.escape(says)):
        build_partitions("2024-01-01", ["deribit:BTC-PERPETUAL", instrument])
    if "\x00" in instrument:
        return  # an environment variable cannot hold a NUL byte
    monkeypatch.setenv("TICK_ASSETS_INSTRUMENTS", f"deribit:BTC-PERPETUAL,{instrument}")
    with pytest.raises(ValueError, match=re.escape(says)):
        settings.instruments()
