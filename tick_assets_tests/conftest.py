"""Shared fixtures: emulators on 127.0.0.1 free ports (always stopped) and clients pointed at them."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.tardis import RetryPolicy, TardisClient
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "tardis_real_samples"
EXPORTED_UNTIL = dt.date(2024, 2, 1)
TEST_SCALE = 300
#: The backfill daemon's interval in the test stacks (Dagster's is a fixed 30 s, waited up to twice per backfill:
#: DagsterStack.backfill_interval). The demo and `tick-assets stack` keep Dagster's own.
TEST_BACKFILL_INTERVAL = 2.0


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache for the whole session, so each synthetic day is generated once."""
    return tmp_path_factory.mktemp("emulator-cache")


@pytest.fixture
def start_emulator(synth_cache: Path) -> Iterator[Callable[..., EmulatorServer]]:
    """Factory: start an emulator (free port on 127.0.0.1) with the given faults/config; stopped at teardown."""
    servers: list[EmulatorServer] = []

    def start(faults: FaultConfig | None = None, **overrides) -> EmulatorServer:
        settings = {
            "host": "127.0.0.1",
            "port": 0,
            "cache_dir": synth_cache,
            "scale": TEST_SCALE,
            "exported_until": EXPORTED_UNTIL,
            "faults": faults or FaultConfig(),
        }
        config = EmulatorConfig(**{**settings, **overrides})
        server = EmulatorServer(config).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """A fault-free emulator."""
    return start_emulator()


FAST_RETRY = RetryPolicy(max_attempts=12, base_delay=0.01, max_delay=0.05, throttle_delay=0.2)


def make_client(
    server: EmulatorServer,
    cache_dir: Path,
    *,
    api_key: str | None = "test-key",
    retry: RetryPolicy = FAST_RETRY,
    limiter_config: LimiterConfig | None = None,
    **kwargs,
) -> TardisClient:
    """A client for `server` with fast retries and a private in-memory limiter."""
    limiter = RateLimiter(MemoryBackend(), "test", limiter_config or LimiterConfig(rate=1000, burst=1000))
    return TardisClient(
        cache_dir,
        api_key=api_key,
        datasets_url=server.datasets_url,
        api_url=server.api_url,
        limiter=limiter,
        retry=retry,
        **kwargs,
    )


@pytest.fixture
def client(emulator: EmulatorServer, tmp_path: Path) -> Iterator[TardisClient]:
    """A client with an API key against the fault-free emulator."""
    with make_client(emulator, tmp_path / "cache") as c:
        yield c


@pytest.fixture(scope="session")
def real_fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Tardis samples gzipped under the official client's names (what the Datasets API serves)."""
    import csv

    folder = tmp_path_factory.mktemp("real-fixtures")
    for sample in sorted(SAMPLES.glob("*.csv")):
        with open(sample, newline="") as f:
            reader = csv.DictReader(f)
            first = next(reader)
        stem = sample.stem.split("__", 1)[1]
        data_type = (
            "book_snapshot_25" if "book_snapshot_25" in stem else ("quotes" if "quotes" in stem else "trades")
        )
        day = dt.datetime.fromtimestamp(int(first["local_timestamp"]) / 1e6, dt.timezone.utc).date()
        name = f"{first['exchange']}_{data_type}_{day:%Y-%m-%d}_{first['symbol']}.csv.gz"
        with open(sample, "rb") as src, gzip.open(folder / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder
