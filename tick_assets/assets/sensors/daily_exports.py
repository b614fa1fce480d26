"""The daily sensor: request each instrument's next raw day once Tardis has exported it (exportedUntil)."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from tick_assets.assets.partitions import DATE, INSTRUMENT, parse_partition_key, split_instrument
from tick_assets.assets.resources import TardisResource
from tick_assets.tardis.errors import TardisError
from tick_assets.tardis.exchanges import ExchangeDetails
from tick_assets.tardis.urls import normalize_symbol

DAILY_SENSOR = "tardis_daily_exports"
#: How often the sensor asks /v1/exchanges; Tardis publishes a day once, usually around 06:00 UTC the next day.
CHECK_EVERY_SECONDS = 15 * 60
#: Days requested per instrument and tick: a long gap is caught up over several ticks, not in one burst of runs.
MAX_DAYS_PER_TICK = 7


def days_to_request(
    last_exported: dt.date | None, last_requested: dt.date | None, first_day: dt.date
) -> list[dt.date]:
    """Days to request now: the exported days after the last one requested, oldest first and at most
    MAX_DAYS_PER_TICK (a missed day is caught up, never skipped); with nothing requested yet, only the newest
    exported day (history is a backfill's job)."""
    if last_exported is None or last_exported < first_day:
        return []
    if last_requested is None:
        return [last_exported]
    start = max(last_requested + dt.timedelta(days=1), first_day)
    count = min((last_exported - start).days + 1, MAX_DAYS_PER_TICK)
    return [start + dt.timedelta(days=i) for i in range(max(count, 0))]


def latest_materialized_days(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> dict[str, dt.date]:
    """Instrument -> its newest materialized day of `asset_key`, from one read of the materialized partitions
    (one read per tick: one per instrument costs seconds at hundreds of instruments and ~100k partitions)."""
    latest: dict[str, dt.date] = {}
    for key in instance.get_materialized_partitions(asset_key):
        if "|" not in key:
            continue
        day, instrument = parse_partition_key(key)
        if instrument not in latest or day > latest[instrument]:
            latest[instrument] = day
    return latest


def build_daily_sensor(
    raw_assets: list[dg.AssetsDefinition],
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that asks Tardis which days are exported and requests the raw partitions of the new ones; the
    features and analytics follow through their automation conditions."""
    date_dim = partitions_def.get_partitions_def_for_dimension(DATE)
    instruments = partitions_def.get_partitions_def_for_dimension(INSTRUMENT).get_partition_keys()
    first_day = dt.date.fromisoformat(date_dim.get_first_partition_key())
    raw_keys = [a.key for a in raw_assets]

    @dg.sensor(
        name=DAILY_SENSOR,
        description="Requests each instrument's raw partitions for a day once Tardis's exportedUntil covers it "
        "(asks /v1/exchanges/<exchange>); catches up missed days. Off by default.",
        target=raw_assets,
        minimum_interval_seconds=CHECK_EVERY_SECONDS,
        default_status=default_status,
    )
    def tardis_daily_exports(context: dg.SensorEvaluationContext, tardis: TardisResource):
        cursor: dict[str, str] = json.loads(context.cursor or "{}")
        requests, notes = [], []
        details: dict[str, ExchangeDetails | None] = {}
        exported: dict[str, dt.date | None] = {}
        materialized: dict[str, dt.date] | None = None  # read once, and only if an instrument has no cursor
        with tardis.build_client() as client:
            for instrument in instruments:
                exchange, symbol = split_instrument(instrument)
                if exchange not in details:
                    try:
                        details[exchange] = client.exchange_details(exchange, refresh=True)
                        exported[exchange] = details[exchange].last_exported_day()
                    except TardisError as exc:  # one exchange down must not hold back the others
                        details[exchange] = None
                        notes.append(f"{exchange}: {exc}")
                found = details[exchange]
                if found is None:
                    continue
                # An active symbol's availableTo is exportedUntil; a delisted one's ends its days.
                last_day = found.last_available_day(normalize_symbol(symbol))
                last = dt.date.fromisoformat(cursor[instrument]) if instrument in cursor else None
                if last is None:
                    if materialized is None:
                        materialized = latest_materialized_days(context.instance, raw_keys[0])
                    last = materialized.get(instrument)
                for day in days_to_request(last_day, last, first_day):
                    key = dg.MultiPartitionKey({DATE: day.isoformat(), INSTRUMENT: instrument})
                    requests.append(dg.RunRequest(run_key=f"{DAILY_SENSOR}:{key}", partition_key=key))
                    cursor[instrument] = day.isoformat()
        summary = (
            ", ".join(f"{e}: exported through {d}" for e, d in exported.items() if d) or "nothing exported"
        )
        if not requests:
            return dg.SkipReason(f"no new day ({summary}){'; ' + '; '.join(notes) if notes else ''}")
        context.log.info(f"requesting {len(requests)} partitions ({summary})")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return tardis_daily_exports
