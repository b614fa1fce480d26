"""Grid features against a straightforward pandas/numpy computation written here, on emulator and real data."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tick_assets.emulator.synth import write_dataset
from tick_assets.features.depth import BAND_BPS, DEPTH_LEVELS, depth_sql
from tick_assets.features.grid import DaySlice
from tick_assets.features.microstructure import microstructure_1m, order_flow_imbalance
from tick_assets.features.trade_bars import trade_bars_sql
from tick_assets.lake import partition_file, write_partition
from tick_assets.lake.schema import lake_select, store_select
from tick_assets_tests.conftest import SAMPLES


def _query(sql: str) -> pd.DataFrame:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(sql).df()


def _read_book(path: Path) -> pd.DataFrame:
    """A stored book_snapshot_25 file as readers see it: one column per level (`asks[0].price`, ...)."""
    return _query(f"SELECT {lake_select('book_snapshot_25')} FROM read_parquet('{path}')")


def _write_book(book: pd.DataFrame, path: Path) -> None:
    """Store a wide book frame in the lake's columns (levels as lists)."""
    with duckdb.connect() as con:
        con.register("book", book)
        con.execute(
            f"COPY (SELECT {store_select('book_snapshot_25')} FROM book) TO '{path}' (FORMAT parquet)"
        )


def _lake_from_emulator(lake: Path, data_type: str, day: dt.date, scale: int = 3000) -> DaySlice:
    src = lake.parent / f"{data_type}.csv.gz"
    write_dataset("binance-futures", "BTCUSDT", data_type, day, scale, src)
    write_partition(
        src, partition_file(lake, f"raw/{data_type}", "binance-futures", "BTCUSDT", day), data_type
    )
    return DaySlice("binance-futures", "BTCUSDT", day)


def _lake_from_sample(
    lake: Path, sample: str, data_type: str, day: dt.date, exchange: str, symbol: str
) -> None:
    src = lake.parent / f"{sample}.gz"
    with open(SAMPLES / sample, "rb") as f, gzip.open(src, "wb") as g:
        shutil.copyfileobj(f, g)
    write_partition(src, partition_file(lake, f"raw/{data_type}", exchange, symbol, day), data_type)


def reference_depth(book: pd.DataFrame, day: DaySlice) -> pd.DataFrame:
    """Last snapshot at or before each grid point, then the features, the obvious way."""
    book = book.reset_index(drop=True)
    last = book.groupby("local_timestamp", sort=True).tail(1)  # the last of equal timestamps, in file order
    last = last.sort_values("local_timestamp", kind="stable")
    grid = np.arange(day.start_us, day.start_us + 86_400_000_000, day.step_us)
    pos = np.searchsorted(last["local_timestamp"].to_numpy(), grid, side="right") - 1
    rows = last.iloc[np.clip(pos, 0, None)].reset_index(drop=True)
    rows[pos < 0] = np.nan
    bid_p = np.stack([rows[f"bids[{i}].price"] for i in range(25)], axis=1)
    bid_q = np.stack([rows[f"bids[{i}].amount"] for i in range(25)], axis=1)
    ask_p = np.stack([rows[f"asks[{i}].price"] for i in range(25)], axis=1)
    ask_q = np.stack([rows[f"asks[{i}].amount"] for i in range(25)], axis=1)
    out = pd.DataFrame({"t": grid})
    out["staleness_ms"] = (grid - rows["local_timestamp"].to_numpy()) / 1000
    bucket = (
        day.start_us
        + np.ceil((book["local_timestamp"] - day.start_us) / day.step_us).astype(np.int64) * day.step_us
    )
    out["updates"] = out["t"].map(bucket.value_counts()).fillna(0)
    out["mid"] = (ask_p[:, 0] + bid_p[:, 0]) / 2
    out["spread_bps"] = (ask_p[:, 0] - bid_p[:, 0]) / out["mid"] * 1e4
    out["microprice"] = (ask_p[:, 0] * bid_q[:, 0] + bid_p[:, 0] * ask_q[:, 0]) / (bid_q[:, 0] + ask_q[:, 0])
    for n in DEPTH_LEVELS:
        b, a = np.nansum(bid_q[:, :n], axis=1), np.nansum(ask_q[:, :n], axis=1)
        out[f"bid_depth_{n}"], out[f"ask_depth_{n}"] = b, a
        out[f"bid_notional_{n}"] = np.nansum(bid_p[:, :n] * bid_q[:, :n], axis=1)
        out[f"imbalance_{n}"] = (b - a) / np.where(b + a == 0, np.nan, b + a)
    mid = out["mid"].to_numpy()[:, None]
    for bps in BAND_BPS:
        out[f"bid_depth_{bps}bps"] = np.nansum(np.where(bid_p >= mid * (1 - bps / 1e4), bid_q, 0), axis=1)
        out[f"ask_depth_{bps}bps"] = np.nansum(np.where(ask_p <= mid * (1 + bps / 1e4), ask_q, 0), axis=1)
    missing = pos < 0
    for column in out.columns:
        if column not in ("t", "updates"):
            out.loc[missing, column] = np.nan
    return out


def _compare(ours: pd.DataFrame, ref: pd.DataFrame, columns) -> None:
    for column in columns:
        np.testing.assert_allclose(
            ours[column].to_numpy(dtype=float),
            ref[column].to_numpy(dtype=float),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=column,
        )


DEPTH_COLUMNS = (
    ["staleness_ms", "updates", "mid", "spread_bps", "microprice"]
    + [f"{k}_{n}" for n in DEPTH_LEVELS for k in ("bid_depth", "ask_depth", "bid_notional", "imbalance")]
    + [f"{s}_depth_{b}bps" for b in BAND_BPS for s in ("bid", "ask")]
)


@pytest.mark.parametrize("step_ms", [1000, 250])
def test_depth_matches_the_reference_on_emulator_data(tmp_path, step_ms) -> None:
    day = dt.date(2024, 1, 2)
    base = _lake_from_emulator(tmp_path / "lake", "book_snapshot_25", day)
    day_slice = DaySlice(base.exchange, base.symbol, day, step_ms)
    ours = _query(depth_sql(tmp_path / "lake", day_slice))
    book = _read_book(
        partition_file(tmp_path / "lake", "raw/book_snapshot_25", "binance-futures", "BTCUSDT", day)
    )
    ref = reference_depth(book, day_slice)
    assert len(ours) == len(ref) == 86_400_000 // step_ms
    micros = (ours["ts"] - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(microseconds=1)
    assert (micros == ref["t"]).all()
    assert ours["mid"].notna().sum() > 0.9 * len(ours)
    _compare(ours, ref, DEPTH_COLUMNS)


def test_depth_matches_the_reference_on_the_real_sample(tmp_path) -> None:
    day = dt.date(2020, 9, 1)
    _lake_from_sample(
        tmp_path / "lake",
        "nautechsystems__binance-futures_book_snapshot_25_BTCUSDT.csv",
        "book_snapshot_25",
        day,
        "binance-futures",
        "BTCUSDT",
    )
    day_slice = DaySlice("binance-futures", "BTCUSDT", day, 100)
    ours = _query(depth_sql(tmp_path / "lake", day_slice))
    book = _read_book(
        partition_file(tmp_path / "lake", "raw/book_snapshot_25", "binance-futures", "BTCUSDT", day)
    )
    ref = reference_depth(book, day_slice)
    _compare(ours, ref, DEPTH_COLUMNS)
    first = ours["mid"].first_valid_index()
    assert ours.loc[first, "mid"] == pytest.approx((11657.08 + 11657.07) / 2)  # the sample's first book
    assert ours["updates"].sum() == len(book)  # every snapshot of the file counted once (none at day end)


def reference_bars(trades: pd.DataFrame, day: DaySlice) -> pd.DataFrame:
    t = day.start_us + (trades["local_timestamp"] - day.start_us) // day.step_us * day.step_us
    g = trades.assign(
        t=t,
        notional=trades["price"] * trades["amount"],
        buy=trades["amount"].where(trades["side"] == "buy", 0.0),
        sell=trades["amount"].where(trades["side"] == "sell", 0.0),
    ).groupby("t", sort=True)
    bars = pd.DataFrame(
        {
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["amount"].sum(),
            "notional": g["notional"].sum(),
            "trades": g.size(),
            "buy_volume": g["buy"].sum(),
            "sell_volume": g["sell"].sum(),
        }
    )
    grid = pd.DataFrame(index=np.arange(day.start_us, day.start_us + 86_400_000_000, day.step_us))
    out = grid.join(bars)
    for c in ("volume", "notional", "trades", "buy_volume", "sell_volume"):
        out[c] = out[c].fillna(0)
    out["vwap"] = out["notional"] / out["volume"].where(out["volume"] > 0)
    out["signed_volume"] = out["buy_volume"] - out["sell_volume"]
    return out.reset_index(drop=True)


BAR_COLUMNS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "vwap",
    "trades",
    "buy_volume",
    "sell_volume",
    "signed_volume",
]


def test_trade_bars_match_the_reference_and_keep_every_trade(tmp_path) -> None:
    day = dt.date(2020, 2, 22)
    _lake_from_sample(
        tmp_path / "lake", "nautechsystems__tardis_trades.csv", "trades", day, "binance-futures", "BTCUSDT"
    )
    day_slice = DaySlice("binance-futures", "BTCUSDT", day, 1000)
    ours = _query(trade_bars_sql(tmp_path / "lake", day_slice))
    trades = pd.read_parquet(
        partition_file(tmp_path / "lake", "raw/trades", "binance-futures", "BTCUSDT", day)
    )
    in_day = trades[
        (trades["local_timestamp"] >= day_slice.start_us)
        & (trades["local_timestamp"] < day_slice.start_us + 86_400_000_000)
    ]
    assert len(in_day) > 1000
    _compare(ours, reference_bars(in_day, day_slice), BAR_COLUMNS)
    assert ours["trades"].sum() == len(in_day)
    assert ours["volume"].sum() == pytest.approx(in_day["amount"].sum())


def test_trade_bars_on_emulator_data(tmp_path) -> None:
    day_slice = _lake_from_emulator(tmp_path / "lake", "trades", dt.date(2024, 1, 2), scale=30_000)
    ours = _query(trade_bars_sql(tmp_path / "lake", day_slice))
    trades = pd.read_parquet(
        partition_file(tmp_path / "lake", "raw/trades", "binance-futures", "BTCUSDT", "2024-01-02")
    )
    _compare(ours, reference_bars(trades, day_slice), BAR_COLUMNS)


def _small_book_and_bars(start: str, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` one-second grid rows from `start`: a random-walk book and one trade a second at the mid."""
    ts = pd.date_range(start, periods=n, freq="1s", tz="UTC")
    rng = np.random.default_rng(seed)
    bid = 100 + np.cumsum(rng.choice([-0.5, 0, 0.5], size=n))
    depth = pd.DataFrame(
        {
            "instrument": "x:Y",
            "ts": ts,
            "best_bid": bid,
            "best_ask": bid + 0.5,
            "bid_size": rng.uniform(1, 5, n),
            "ask_size": rng.uniform(1, 5, n),
            "mid": bid + 0.25,
            "spread_bps": 0.5 / (bid + 0.25) * 1e4,
            "imbalance_5": rng.uniform(-1, 1, n),
        }
    )
    bars = pd.DataFrame(
        {
            "instrument": "x:Y",
            "ts": ts,
            "volume": 1.0,
            "notional": depth["mid"],
            "signed_volume": 1.0,
            "trades": 1,
        }
    )
    return depth, bars


def test_ofi_and_minute_bars_against_a_loop_over_a_small_frame() -> None:
    depth, bars = _small_book_and_bars("2024-01-02", 180, seed=7)
    expected = [0.0]
    for n in range(1, 180):  # the textbook definition, one event at a time
        p, q = depth.iloc[n], depth.iloc[n - 1]
        e = (p.bid_size if p.best_bid >= q.best_bid else 0) - (q.bid_size if p.best_bid <= q.best_bid else 0)
        e += -(p.ask_size if p.best_ask <= q.best_ask else 0) + (
            q.ask_size if p.best_ask >= q.best_ask else 0
        )
        expected.append(e)
    np.testing.assert_allclose(order_flow_imbalance(depth), expected)
    minutes = microstructure_1m(depth, bars)
    assert list(minutes["volume"]) == [60.0, 60.0, 60.0]
    first = depth.iloc[:60]
    assert minutes["mid_open"][0] == first["mid"].iloc[0] and minutes["mid_close"][0] == first["mid"].iloc[-1]
    r = np.diff(np.log(first["mid"]))
    assert minutes["realized_vol"][0] == pytest.approx(np.sqrt((r**2).sum()))
    assert minutes["ofi_1"][1] == pytest.approx(sum(expected[60:120]))
    assert minutes["vwap"][0] == pytest.approx(first["mid"].mean())


def test_minute_bars_of_a_day_do_not_depend_on_the_days_computed_with_it() -> None:
    # Across midnight: a ranged run holds both days, single-partition runs one each; results must agree.
    depth, bars = _small_book_and_bars("2024-01-02 23:58", 240, seed=3)
    together = microstructure_1m(depth, bars)
    day = depth["ts"].dt.floor("1D")
    alone = pd.concat(
        [microstructure_1m(depth[day == d].copy(), bars[day == d].copy()) for d in day.unique()],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together, alone)
    first_of_day = together[together["minute"] == pd.Timestamp("2024-01-03", tz="UTC")].iloc[0]
    assert first_of_day["log_return"] == pytest.approx(
        np.log(first_of_day["mid_close"] / first_of_day["mid_open"])
    )


def _spoiled_book(tmp_path: Path, spoil) -> tuple[DaySlice, pd.DataFrame]:
    day = dt.date(2024, 1, 2)
    base = _lake_from_emulator(tmp_path / "lake", "book_snapshot_25", day)
    path = partition_file(tmp_path / "lake", "raw/book_snapshot_25", base.exchange, base.symbol, day)
    book = spoil(_read_book(path))
    _write_book(book, path)
    return base, book


def test_depth_of_one_sided_books_and_missing_levels_matches_the_reference(tmp_path) -> None:
    def spoil(book: pd.DataFrame) -> pd.DataFrame:
        one_sided = book.index[100:400]  # no asks at all: no mid, no bands, depth of the bid side only
        for i in range(25):
            book.loc[one_sided, [f"asks[{i}].price", f"asks[{i}].amount"]] = np.nan
        thin = book.index[500:900]  # only 3 bid levels; one ask level has an amount but no price
        for i in range(3, 25):
            book.loc[thin, [f"bids[{i}].price", f"bids[{i}].amount"]] = np.nan
        book.loc[thin, "asks[2].price"] = np.nan
        return book

    day, book = _spoiled_book(tmp_path, spoil)
    ours = _query(depth_sql(tmp_path / "lake", day))
    ref = reference_depth(book, day)
    _compare(ours, ref, DEPTH_COLUMNS)
    affected = ours[ours["mid"].isna() & ours["snapshot_ts"].notna()]
    assert (
        len(affected) > 0
        and (affected["bid_depth_10bps"] == 0).all()
        and (affected["ask_depth_25"] == 0).all()
    )


def test_depth_refuses_a_file_whose_receive_times_go_backwards(tmp_path) -> None:
    def spoil(book: pd.DataFrame) -> pd.DataFrame:
        book.loc[1000, "local_timestamp"] = book.loc[2000, "local_timestamp"]  # a row from the future
        return book

    day, _ = _spoiled_book(tmp_path, spoil)
    with pytest.raises(duckdb.Error, match="local_timestamp goes backwards"):
        _query(depth_sql(tmp_path / "lake", day))


def test_an_instrument_with_a_quote_is_quoted_in_the_feature_sql(tmp_path) -> None:
    """Instrument keys reach SQL as literals, never pasted: a symbol with a quote works (and cannot inject)."""
    from tick_assets.lake import LocalLake, connect, store_query

    day = dt.date(2024, 1, 2)
    _lake_from_emulator(tmp_path / "lake", "trades", day, scale=300)
    lake = LocalLake(tmp_path / "lake")
    odd = DaySlice("binance-futures", "BTC'X", day)
    dest = partition_file(lake.root, "raw/trades", "binance-futures", "BTC'X", day)
    dest.parent.mkdir(parents=True)
    partition_file(lake.root, "raw/trades", "binance-futures", "BTCUSDT", day).rename(dest)
    with connect(lake) as con:
        stored = store_query(con, lake, odd.partition("features/trade_bars"), trade_bars_sql(lake, odd))
        assert con.execute(f"SELECT DISTINCT instrument FROM read_parquet('{stored.path}')").fetchall() == [
            ("binance-futures:BTC'X",)
        ]


# --- features/depth from the per-second file (lake/book_layout.py) against the SQL over the raw file ---


def _with_seconds(lake: Path, day: DaySlice) -> None:
    """Write the day's per-second file as the conversion does (from the raw file as it is now)."""
    from tick_assets.lake import LocalLake
    from tick_assets.lake.book_layout import write_seconds

    relpath = day.partition("raw/book_snapshot_25").relpath
    with duckdb.connect() as con:
        assert write_seconds(con, LocalLake(lake), relpath, lake / relpath, "book_snapshot_25") is not None


def _same_values(a, b) -> bool:
    """Same schema and the same values bit for bit (NaN and -0.0 included), NULLs in the same places."""
    if not a.schema.equals(b.schema):
        return False
    for name in a.column_names:
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if not np.array_equal(np.asarray(x.is_null()), np.asarray(y.is_null())):
            return False
        if x.type == "double":
            x, y = (np.asarray(c.fill_null(0.0)).view(np.int64) for c in (x, y))
            if not np.array_equal(x, y):
                return False
        elif not x.equals(y):
            return False
    return True


def _now_and_before(lake: Path, day: DaySlice):
    """(depth_query's rows, whether it took the numpy path, depth_sql's rows over the raw file)."""
    from tick_assets.features.depth import depth_query
    from tick_assets.lake import LocalLake, connect

    with connect(LocalLake(lake)) as con:
        query = depth_query(con, LocalLake(lake), day)
        now = con.sql(query).to_arrow_table()
        before = con.sql(depth_sql(lake, day, False)).to_arrow_table()
    return now, "FROM features_depth_day" in query, before


@pytest.mark.parametrize("step_ms", [1000, 60_000])
def test_depth_from_the_per_second_file_is_the_raw_files_result_value_for_value(tmp_path, step_ms) -> None:
    base = _lake_from_emulator(tmp_path / "lake", "book_snapshot_25", dt.date(2024, 1, 2))
    day = DaySlice(base.exchange, base.symbol, base.day, step_ms)
    _with_seconds(tmp_path / "lake", day)
    now, fast, before = _now_and_before(tmp_path / "lake", day)
    assert fast and now.num_rows == 86_400_000 // step_ms
    assert _same_values(now, before)
    with duckdb.connect() as con:  # the SQL over the per-second file gives the same rows too
        con.execute("SET TimeZone = 'UTC'")
        assert _same_values(con.sql(depth_sql(tmp_path / "lake", day)).to_arrow_table(), before)
    assert now.column("mid").null_count < 0.1 * now.num_rows


def test_depth_from_the_per_second_file_of_one_sided_books_and_missing_levels(tmp_path) -> None:
    def spoil(book: pd.DataFrame) -> pd.DataFrame:
        for i in range(25):
            book.loc[book.index[100:400], [f"asks[{i}].price", f"asks[{i}].amount"]] = np.nan
        for i in range(3, 25):
            book.loc[book.index[500:900], [f"bids[{i}].price", f"bids[{i}].amount"]] = np.nan
        book.loc[book.index[500:900], "asks[2].price"] = np.nan
        book.loc[book.index[950:960], "bids[4].amount"] = np.nan
        return book

    day, _ = _spoiled_book(tmp_path, spoil)
    _with_seconds(tmp_path / "lake", day)
    now, fast, before = _now_and_before(tmp_path / "lake", day)
    assert fast and _same_values(now, before)
    assert now.column("mid").null_count > before.num_rows - len(before.column("snapshot_ts").drop_null()) > 0


def test_depth_from_the_per_second_file_refuses_receive_times_that_go_backwards(tmp_path) -> None:
    from tick_assets.features.depth import depth_query
    from tick_assets.lake import LocalLake, connect

    def spoil(book: pd.DataFrame) -> pd.DataFrame:
        book.loc[1000, "local_timestamp"] = book.loc[2000, "local_timestamp"]
        return book

    day, _ = _spoiled_book(tmp_path, spoil)
    _with_seconds(tmp_path / "lake", day)
    with connect(LocalLake(tmp_path / "lake")) as con, pytest.raises(duckdb.Error, match="goes backwards"):
        con.sql(depth_query(con, LocalLake(tmp_path / "lake"), day)).fetchall()


def test_a_per_second_file_that_is_not_its_raw_files_is_ignored(tmp_path) -> None:
    """The raw file rewritten after its per-second file (an older writer, a migration): read the raw file."""
    from tick_assets.features.depth import per_second_file

    day = _lake_from_emulator(tmp_path / "lake", "book_snapshot_25", dt.date(2024, 1, 2))
    _with_seconds(tmp_path / "lake", day)
    assert per_second_file(tmp_path / "lake", day) is not None
    assert per_second_file(tmp_path / "lake", DaySlice(day.exchange, day.symbol, day.day, 250)) is None
    path = partition_file(tmp_path / "lake", "raw/book_snapshot_25", day.exchange, day.symbol, day.day)
    book = _read_book(path)
    book.loc[10, "bids[0].amount"] += 1.0  # same rows, same times, one amount changed
    _write_book(book, path)
    assert per_second_file(tmp_path / "lake", day) is None
    now, fast, before = _now_and_before(tmp_path / "lake", day)
    assert not fast and _same_values(now, before)
    assert now.column("bid_size").to_pylist() == before.column("bid_size").to_pylist()


def test_depth_of_an_empty_day_from_its_per_second_file(tmp_path) -> None:
    """A header-only day: an empty per-second file, and a grid of NULL books with 0 updates, as before."""
    from tick_assets.tardis.datatypes import header_line

    day = DaySlice("binance-futures", "BTCUSDT", dt.date(2024, 1, 2))
    src = tmp_path / "empty.csv.gz"
    with gzip.open(src, "wt") as f:
        f.write(header_line("book_snapshot_25") + "\n")
    write_partition(
        src, tmp_path / "lake" / day.partition("raw/book_snapshot_25").relpath, "book_snapshot_25"
    )
    _with_seconds(tmp_path / "lake", day)
    now, fast, before = _now_and_before(tmp_path / "lake", day)
    assert fast and _same_values(now, before)
    assert now.column("snapshot_ts").null_count == 86_400 and sum(now.column("updates").to_pylist()) == 0
