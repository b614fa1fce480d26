"""Fault soak: the same backfill of the whole graph against a fault-free and a faulty emulator, compared.

A run here is what a user's backfill does (ranged runs per instrument through Dagster, in process), every
file of the download cache and of the lake (raw, features, analytics) is fingerprinted (rows + an order-independent
checksum of every value), and two data directories must have equal fingerprints.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from tick_assets.assets.partitions import build_partitions
from tick_assets.assets.resources import TardisResource
from tick_assets.definitions import build_definitions
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.stack.materialize import materialize_range, materialize_unpartitioned, partitioned_asset_keys

#: Any non-empty key: the emulator serves every day with one.
SOAK_KEY = "soak-key"


@dataclass
class SoakRun:
    """One backfill of the whole graph: how it ended, what the emulator saw, and the data's fingerprint."""

    seconds: float
    runs: int
    failed_runs: int
    partitions: dict[str, int]
    emulator: dict[str, int]
    fingerprint: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def faults(self) -> dict[str, int]:
        """Faults the emulator injected, by kind."""
        return {k.removeprefix("fault_"): v for k, v in self.emulator.items() if k.startswith("fault_")}


def run_backfill(
    emulator: EmulatorConfig,
    data_dir: Path,
    first_day: dt.date,
    days: int,
    instruments: list[str],
    data_types: list[str],
    read_timeout_seconds: float = 60.0,
    days_per_run: int = 31,
) -> SoakRun:
    """Backfill every partitioned asset for `days` x `instruments` against an emulator started with `emulator`."""
    started = time.monotonic()
    with EmulatorServer(emulator) as server:
        tardis = TardisResource(
            api_key=SOAK_KEY,
            datasets_url=server.datasets_url,
            api_url=server.api_url,
            data_dir=str(data_dir),
            requests_per_second=200,
            burst=20,
            max_attempts=12,
            read_timeout_seconds=read_timeout_seconds,
        )
        defs = build_definitions(
            partitions=build_partitions(first_day.isoformat(), instruments),
            backfill_policy=dg.BackfillPolicy.multi_run(days_per_run),
            data_types=data_types,
            data_dir=data_dir,
            tardis=tardis,
        )
        last_day = first_day + dt.timedelta(days=days - 1)
        with dg.instance_for_test() as instance:
            keys = partitioned_asset_keys(defs)
            runs = materialize_range(defs, keys, instruments, first_day, last_day, instance, days_per_run)
            views_ok = materialize_unpartitioned(defs, dg.AssetKey(["warehouse", "views"]), instance)
            partitions = {
                key.to_user_string(): len(instance.get_materialized_partitions(key)) for key in keys
            }
        stats = server.stats
    counts = {k: int(v) for k, v in stats.get("counts", {}).items()}
    failed = sum(not r.success for r in runs) + (not views_ok)
    return SoakRun(
        time.monotonic() - started, len(runs) + 1, failed, partitions, counts, fingerprint(data_dir)
    )


def _checksum_sql(source: str, columns: list[tuple[str, str]]) -> str:
    # Doubles are rounded to 9 significant digits: parallel aggregation may add the same numbers in another
    # order from run to run, which changes the last bits and nothing a user could see.
    values = [
        f'round("{name}", (9 - ceil(log10(abs("{name}") + 1e-300)))::INTEGER)'
        if kind == "DOUBLE"
        else f'"{name}"'
        for name, kind in columns
    ]
    return f"SELECT count(*), coalesce(sum(hash({', '.join(values)})::HUGEINT), 0) FROM {source}"


def _fingerprint_source(con: duckdb.DuckDBPyConnection, source: str) -> tuple[int, int]:
    columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    rows, checksum = con.execute(_checksum_sql(source, columns)).fetchall()[0]
    return int(rows), int(checksum)


def fingerprint(data_dir: Path) -> dict[str, tuple[int, int]]:
    """(rows, checksum) of every lake file (raw, features, analytics) under `data_dir`."""
    result: dict[str, tuple[int, int]] = {}
    with duckdb.connect() as con:
        for path in sorted((data_dir / "lake").rglob("*.parquet")):
            result[str(path.relative_to(data_dir))] = _fingerprint_source(con, f"read_parquet('{path}')")
    return result


def compare(reference: dict[str, tuple[int, int]], other: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Counts for the reliability matrix: items compared, rows compared, rows missing, extra, and items differing."""
    rows_ref = sum(r for r, _ in reference.values())
    rows_other = sum(r for r, _ in other.values())
    differing = sorted(k for k in reference.keys() | other.keys() if reference.get(k) != other.get(k))
    return {
        "items": len(reference),
        "rows_compared": rows_ref,
        "rows_lost": max(0, rows_ref - rows_other),
        "rows_extra": max(0, rows_other - rows_ref),
        "items_differing": len(differing),
    }


def fingerprint_file(path: Path) -> tuple[int, int]:
    """(rows, checksum) of one Parquet file."""
    with duckdb.connect() as con:
        return _fingerprint_source(con, f"read_parquet('{path}')")
