"""Tests of the synthetic Deribit options_chain day (tick_assets.emulator.options_chain)."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tick_assets.emulator import options_chain as oc
from tick_assets.lake.schema import csv_columns_struct
from tick_assets.tardis import datatypes

UTC = dt.timezone.utc
#: A Friday: the quarterly BTC-29MAR24 expires at 08:00, so the day holds both listings.
DAY = dt.date(2024, 3, 29)
SCALE = 30_000
T0 = int(dt.datetime(2024, 3, 29, tzinfo=UTC).timestamp()) * 1_000_000
ROLL = T0 + 8 * 3_600_000_000
US_PER_DAY = 86_400_000_000
MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
SYMBOL_RE = re.compile(rf"^BTC-([1-9]\d?)({MONTHS})(\d\d)-([1-9]\d*)-([CP])$")
INDEX_RE = re.compile(rf"^(SYN\.)?BTC-([1-9]\d?(?:{MONTHS})\d\d)$")


@functools.cache
def _tables(day: dt.date = DAY, scale: int = SCALE, chunk_rows: int = oc.CHUNK_ROWS) -> tuple[pa.Table, ...]:
    return tuple(oc.iter_options_chain_tables("deribit", "BTC", day, scale, chunk_rows=chunk_rows))


@functools.cache
def _frame() -> pd.DataFrame:
    return pa.concat_tables(_tables()).to_pandas()


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("options_chain") / "deribit_options_chain_2024-03-29_OPTIONS.csv.gz"
    assert oc.write_options_chain("deribit", "BTC", DAY, SCALE, path, 6) == SCALE
    return path


def _code(us: np.ndarray | pd.Series) -> list[str]:
    return [oc.expiry_code(dt.datetime.fromtimestamp(int(u) / 1e6, UTC)) for u in us]


# -------------------------------------------------------------------------------------------------------------
# file format


def test_header_columns_and_types_match_the_schema(chain_file: Path) -> None:
    with gzip.open(chain_file, "rt", newline="") as f:
        header = f.readline()
        first = f.readline()
    assert header == datatypes.header_line("options_chain") + "\n"
    assert len(first.rstrip("\n").split(",")) == 24
    arrow_type = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}
    expected = pa.schema([(n, arrow_type[t]) for n, t in datatypes.SCHEMAS["options_chain"]])
    for table in _tables():
        assert table.schema.equals(expected)


def test_row_count_is_scale_and_chunks_are_bounded() -> None:
    assert sum(t.num_rows for t in _tables()) == SCALE
    small = _tables(chunk_rows=7_001)
    assert [t.num_rows for t in small] == [7_001] * 4 + [SCALE - 4 * 7_001]
    for scale in (1, 2, 17):
        assert sum(t.num_rows for t in _tables(scale=scale)) == scale


def test_chunking_does_not_change_the_rows() -> None:
    assert pa.concat_tables(_tables(chunk_rows=7_001)).equals(pa.concat_tables(_tables()))


def test_same_inputs_give_the_same_bytes(chain_file: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.csv.gz"
    oc.write_options_chain("deribit", "BTC", DAY, SCALE, again, 6)
    assert again.read_bytes() == chain_file.read_bytes()
    other = pa.concat_tables(_tables(day=DAY + dt.timedelta(days=1)))
    assert other.num_rows == SCALE
    assert not other.column("mark_price").equals(pa.concat_tables(_tables()).column("mark_price"))


def test_numbers_print_in_plain_shortest_form(chain_file: Path) -> None:
    with gzip.open(chain_file, "rt") as f:
        lines = f.read().splitlines()[1:]
    text = "\n".join(lines)
    assert not re.search(r"\d[eE][-+]?\d", text)  # no exponent notation
    assert not re.search(r"(^|,)-0(,|$)", text, re.M)  # no negative zero
    assert not re.search(r"\.\d*0(,|$)", text, re.M)  # no trailing zeros
    assert '"' not in text
    # illiquid strikes: empty bid cells (price, amount and IV together) appear in real-looking lines
    assert sum(",,," in line for line in lines) > len(lines) // 20


def test_duckdb_reads_the_file_with_the_lake_types(chain_file: Path) -> None:
    con = duckdb.connect()
    source = (
        f"read_csv('{chain_file}', header = true, columns = {csv_columns_struct('options_chain')}, "
        "auto_detect = false, compression = 'gzip', delim = ',', quote = '\"', escape = '\"')"
    )
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    assert [(r[0], r[1]) for r in described] == list(datatypes.SCHEMAS["options_chain"])
    n, bids, asks, last, lo, hi, puts = con.execute(
        "SELECT count(*), count(bid_price), count(ask_price), count(last_price), min(local_timestamp), "
        f"max(local_timestamp), count(*) FILTER (type = 'put') FROM {source}"
    ).fetchall()[0]
    assert n == SCALE
    assert 0.5 * n < bids < n and 0.8 * n < asks < n and 0.3 * n < last < n
    assert lo >= T0 and hi < T0 + US_PER_DAY
    assert 0.4 * n < puts < 0.6 * n


# -------------------------------------------------------------------------------------------------------------
# time and order


def test_timestamps_are_ordered_and_received_after_sent() -> None:
    df = _frame()
    ts, local = df["timestamp"].to_numpy(), df["local_timestamp"].to_numpy()
    assert (np.diff(local) >= 0).all() and (np.diff(ts) >= 0).all()
    assert (local >= ts).all()
    assert (local >= T0).all() and (local < T0 + US_PER_DAY).all()
    assert (ts % 1000 == 0).all()  # Deribit stamps milliseconds
    assert (ts >= T0 - 10_000_000).all()  # the first ones may be sent just before midnight
    latency = local - ts
    assert 10_000 < np.median(latency) < 100_000


def test_several_instruments_share_each_timestamp() -> None:
    df = _frame()
    per_ts = df.groupby("timestamp")["symbol"].agg(["size", "nunique"])
    assert per_ts["size"].mean() > 5 and per_ts["size"].max() >= 10
    assert (per_ts["nunique"] == per_ts["size"]).mean() > 0.99  # a burst lists distinct instruments
    assert df["symbol"].nunique() > 300


# -------------------------------------------------------------------------------------------------------------
# instruments and listing


def test_symbols_strikes_types_and_expiries_agree() -> None:
    df = _frame().drop_duplicates("symbol")
    parts = df["symbol"].str.extract(SYMBOL_RE.pattern)
    assert parts.notna().all().all(), df["symbol"][parts.isna().any(axis=1)].head()
    assert ((parts[0] + parts[1] + parts[2]) == pd.Series(_code(df["expiration"]), index=df.index)).all()
    assert (parts[3].astype(float) == df["strike_price"]).all()
    assert (parts[4].map({"C": "call", "P": "put"}) == df["type"]).all()
    # every expiry at 08:00 UTC, every strike listed as a call and a put
    assert (df["expiration"] % US_PER_DAY == 8 * 3_600_000_000).all()
    pairs = df.groupby(["expiration", "strike_price"])["type"].nunique()
    assert (pairs == 2).mean() > 0.9


def test_underlying_index_is_the_future_on_fridays_and_synthetic_otherwise() -> None:
    df = _frame().drop_duplicates(["expiration", "underlying_index"])
    m = df["underlying_index"].str.extract(INDEX_RE.pattern)
    assert m[1].notna().all()
    assert (m[1] == pd.Series(_code(df["expiration"]), index=df.index)).all()
    friday = pd.to_datetime(df["expiration"], unit="us").dt.weekday == 4
    assert (m[0].isna() == friday).all()
    assert "BTC-29MAR24" in set(df["underlying_index"]) and "SYN.BTC-30MAR24" in set(df["underlying_index"])


def test_expired_options_drop_out_at_0800_and_new_expiries_list_then() -> None:
    df = _frame()
    ts, expiry = df["timestamp"], df["expiration"]
    assert (expiry > ts).all()  # the exact rule: an option is published only before its expiry
    assert not ((ts >= ROLL) & (expiry <= ROLL)).any()  # today's expiry is gone from 08:00 on
    before, after = set(expiry[ts < ROLL]), set(expiry[ts >= ROLL])
    assert ROLL in before
    new = after - before
    assert new and all(ts[expiry.isin(new)] >= ROLL)
    assert (
        new
        == {
            int(e.timestamp()) * 1_000_000
            for e in oc.listed_expiries(dt.datetime(2024, 3, 29, 8, tzinfo=UTC))
        }
        - before
    )


def test_listed_expiries_follow_deribits_calendar() -> None:
    listing = oc.listed_expiries(dt.datetime(2024, 3, 10, 7, 59, tzinfo=UTC))
    codes = {oc.expiry_code(e): kind for e, kind in listing.items()}
    assert codes == {
        "10MAR24": "daily",
        "11MAR24": "daily",
        "12MAR24": "daily",
        "13MAR24": "daily",
        "15MAR24": "weekly",
        "22MAR24": "weekly",
        "29MAR24": "quarterly",
        "26APR24": "monthly",
        "31MAY24": "monthly",
        "28JUN24": "quarterly",
        "27SEP24": "quarterly",
        "27DEC24": "quarterly",
    }
    later = oc.listed_expiries(dt.datetime(2024, 3, 10, 8, tzinfo=UTC))
    assert min(later) == dt.datetime(2024, 3, 11, 8, tzinfo=UTC)
    for e, kind in later.items():
        assert (e.hour, e.minute) == (8, 0)
        if kind != "daily":
            assert e.weekday() == 4
        if kind in ("monthly", "quarterly"):
            assert (e + dt.timedelta(weeks=1)).month != e.month
        if kind == "quarterly":
            assert e.month in (3, 6, 9, 12)


def test_strike_grids_are_finer_near_the_money_and_for_near_expiries() -> None:
    df = _frame().drop_duplicates(["expiration", "strike_price"])
    spot = float(_frame()["underlying_price"].iloc[0])
    steps = {}
    for expiry, g in df.groupby("expiration"):
        k = np.sort(g["strike_price"].to_numpy())
        gaps = np.diff(k)
        near = gaps[np.abs(np.log(k[:-1] / spot)) < 0.05]
        far = gaps[np.abs(np.log(k[:-1] / spot)) > 0.4]
        steps[expiry] = near.min()
        if far.size:
            assert far.min() > near.max()
    days = {e: (e - T0) / US_PER_DAY for e in steps}
    daily = [s for e, s in steps.items() if days[e] < 4]
    longer = [s for e, s in steps.items() if days[e] > 30]
    assert max(daily) < min(longer)
    assert set(steps.values()) <= {500.0, 1000.0}


# -------------------------------------------------------------------------------------------------------------
# prices and greeks


def test_put_call_parity_holds_on_marks() -> None:
    df = _frame()
    keys = ["timestamp", "expiration", "strike_price", "underlying_price"]
    calls = df[df["type"] == "call"].drop_duplicates(keys)
    puts = df[df["type"] == "put"].drop_duplicates(keys)
    pairs = calls.merge(puts, on=keys, suffixes=("_c", "_p"))
    assert len(pairs) > 1000
    gap = (
        pairs["mark_price_c"]
        - pairs["mark_price_p"]
        - (1.0 - pairs["strike_price"] / pairs["underlying_price"])
    )
    assert gap.abs().max() < 3e-6


def test_greeks_signs_and_ranges() -> None:
    df = _frame()
    call = df["type"] == "call"
    assert df.loc[call, "delta"].between(0, 1).all() and df.loc[~call, "delta"].between(-1, 0).all()
    assert (df["gamma"] >= 0).all() and (df["vega"] >= 0).all() and (df["theta"] <= 0).all()
    assert (df.loc[call, "rho"] >= 0).all() and (df.loc[~call, "rho"] <= 0).all()
    # the same strike's call and put share gamma, vega and theta; deltas differ by one
    keys = ["timestamp", "expiration", "strike_price"]
    pairs = df[call].merge(df[~call], on=keys, suffixes=("_c", "_p"))
    assert ((pairs["delta_c"] - pairs["delta_p"]) - 1).abs().max() <= 2e-5
    assert (pairs["vega_c"] == pairs["vega_p"]).all()


def test_implied_vols_are_percent_and_quotes_bracket_the_mark() -> None:
    df = _frame()
    assert df["mark_iv"].between(20, 250).all()
    assert 30 < df["mark_iv"].median() < 120
    bid, ask = df.dropna(subset=["bid_price"]), df.dropna(subset=["ask_price"])
    assert (bid["bid_price"] <= bid["mark_price"]).all() and (ask["ask_price"] >= ask["mark_price"]).all()
    with_iv = bid.dropna(subset=["bid_iv"])
    assert (with_iv["bid_iv"] <= with_iv["mark_iv"] + 0.01).all() and (with_iv["bid_iv"] > 1).all()
    assert (ask["ask_iv"] >= ask["mark_iv"] - 0.01).all()
    # prices in BTC on Deribit's ticks: 0.0001 below 0.005, 0.0005 above; sizes in 0.1 contracts
    for col in ("bid_price", "ask_price", "last_price"):
        units = df[col].dropna() * 1e4
        assert np.allclose(units, np.rint(units), atol=1e-6)
        assert (np.rint(units[units >= 50]) % 5 == 0).all()
    amounts = pd.concat([bid["bid_amount"], ask["ask_amount"]]) * 10
    assert np.allclose(amounts, np.rint(amounts), atol=1e-6) and amounts.min() >= 1
    assert (df["open_interest"] >= 0).all()
    assert 20_000 < df["underlying_price"].median() < 80_000


def test_illiquid_strikes_have_empty_cells() -> None:
    df = _frame()
    assert (df["bid_price"].isna() == df["bid_amount"].isna()).all()
    assert (df["ask_price"].isna() == df["ask_amount"].isna()).all()
    assert (df["ask_price"].isna() == df["ask_iv"].isna()).all()
    assert df.loc[df["bid_price"].isna(), "bid_iv"].isna().all()
    wing = df["delta"].abs() < 0.02
    atm = df["delta"].abs().between(0.3, 0.7)
    assert df.loc[wing, "bid_price"].isna().mean() > 0.4
    assert df.loc[atm, "bid_price"].isna().mean() < 0.15
    assert df.loc[wing, "last_price"].isna().mean() > df.loc[atm, "last_price"].isna().mean()


def test_greeks_reproduce_the_tardis_docs_sample_row() -> None:
    # deribit,BTC-9JUN20-9875-P,1591574399413000,...,0.02210436,62.89,SYN.BTC-9JUN20,9756.36,
    # -0.61752,0.00103,2.24964,-53.05655,-0.22796
    years = np.array([(1591689600000000 - 1591574399413000) / (365 * US_PER_DAY)])
    args = (np.array([9756.36]), np.array([9875.0]), years, np.array([0.6289]), np.array([False]))
    g = oc.deribit_greeks(*args)
    assert g["delta"][0] == pytest.approx(-0.61752, abs=2e-5)
    assert g["gamma"][0] == pytest.approx(0.00103, abs=1e-5)
    assert g["vega"][0] == pytest.approx(2.24964, abs=1e-4)
    assert g["theta"][0] == pytest.approx(-53.05655, rel=1e-4)
    assert g["rho"][0] == pytest.approx(-0.22796, abs=2e-5)
    assert oc.black76_usd(*args)[0] / 9756.36 == pytest.approx(0.02210436, rel=2e-3)


def test_norm_cdf_is_accurate() -> None:
    x = np.linspace(-8, 8, 4001)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    assert np.max(np.abs(oc.norm_cdf(x) / exact - 1)) < 2e-7


# -------------------------------------------------------------------------------------------------------------
# parameters


def test_a_callers_price_path_drives_strikes_and_underlying() -> None:
    def flat(ts: np.ndarray) -> np.ndarray:
        return np.full(np.shape(ts), 10_000.0)

    table = pa.concat_tables(oc.iter_options_chain_tables("deribit", "BTC", DAY, 3_000, flat)).to_pandas()
    days = (table["expiration"] - table["timestamp"]) / US_PER_DAY
    implied_basis = np.log(table["underlying_price"] / 10_000.0) / (days / 365)
    assert implied_basis[days > 30].between(0.0, 0.2).all()
    assert table["strike_price"].between(2_000, 50_000).all()
    assert (table["strike_price"] % 125 == 0).all()  # the step scales with the price (125 USD at 10k)


def test_eth_chain_and_bad_arguments() -> None:
    eth = pa.concat_tables(oc.iter_options_chain_tables("deribit", "ETH", DAY, 500)).to_pandas()
    assert eth["symbol"].str.match(rf"^ETH-[1-9]\d?({MONTHS})\d\d-\d+-[CP]$").all()
    assert eth["underlying_index"].str.match(r"^(SYN\.)?ETH-").all()
    with pytest.raises(ValueError, match="deribit only"):
        oc.iter_options_chain_tables("okex-options", "BTC", DAY, 10)
    with pytest.raises(ValueError, match="unknown underlying"):
        oc.iter_options_chain_tables("deribit", "DOGE", DAY, 10)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="scale"):
            oc.iter_options_chain_tables("deribit", "BTC", DAY, bad)  # type: ignore[arg-type]
