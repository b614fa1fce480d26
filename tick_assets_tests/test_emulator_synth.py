"""Tests of the synthetic market generator (tick_assets.emulator.synth) and the Tardis CSV writer (csvout)."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from tick_assets.book import BookReplay
from tick_assets.emulator import catalog, csvout, synth
from tick_assets.tardis import datatypes

DAY = dt.date(2024, 3, 1)
US_PER_DAY = 86_400_000_000
T0 = int(dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000

SYMBOLS = [
    ("binance-futures", "BTCUSDT"),
    ("deribit", "BTC-PERPETUAL"),
    ("bitmex", "XBTUSD"),
    ("binance", "BTCUSDT"),
    ("bitget-futures", "??USDT"),
]
NUMBER_RE = re.compile(r"^-?(0|[1-9]\d*)(\.\d*[1-9])?$")  # shortest form: no exponent, no trailing zeros
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _spec(exchange: str, symbol: str) -> catalog.SymbolSpec:
    spec = catalog.CATALOG[exchange].symbol(symbol)
    assert spec is not None
    return spec


def _write(
    tmp_path: Path, exchange: str, symbol: str, data_type: str, scale: int, day: dt.date = DAY
) -> bytes:
    path = tmp_path / f"{exchange}_{data_type}_{day}_{symbol.replace('?', '_')}_{scale}.csv.gz"
    rows = synth.write_dataset(exchange, symbol, data_type, day, scale, path)
    data = path.read_bytes()
    text = gzip.decompress(data)
    assert text.count(b"\n") == rows + 1
    return data


def _table(
    exchange: str, symbol: str, data_type: str, scale: int, day: dt.date = DAY
) -> dict[str, np.ndarray]:
    t = synth.generate_table(exchange, symbol, data_type, day, scale)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}


def _levels(snap: dict[str, np.ndarray], depth: int) -> tuple[np.ndarray, ...]:
    """(ask prices, ask amounts, bid prices, bid amounts), each (rows, depth)."""
    return tuple(
        np.stack([snap[f"{side}[{k}].{what}"] for k in range(depth)], axis=1)
        for side, what in (("asks", "price"), ("asks", "amount"), ("bids", "price"), ("bids", "amount"))
    )


# ----------------------------------------------------------------------------------------------------------
# file format


@pytest.mark.parametrize(("exchange", "symbol"), SYMBOLS)
def test_file_format_matches_tardis(tmp_path: Path, exchange: str, symbol: str) -> None:
    for data_type in _spec(exchange, symbol).data_types:
        raw = gzip.decompress(_write(tmp_path, exchange, symbol, data_type, 300))
        assert raw.endswith(b"\n")
        assert b"\r" not in raw and b'"' not in raw
        text = raw.decode()
        lines = text[:-1].split("\n")
        assert lines[0] == datatypes.header_line(data_type)
        assert len(lines) > 1
        kinds = [kind for _, kind in datatypes.SCHEMAS[data_type]]
        names = datatypes.columns(data_type)
        for line in lines[1:]:
            cells = line.split(",")
            assert len(cells) == len(kinds), line
            assert cells[0] == exchange and cells[1] == symbol
            for name, kind, cell in zip(names, kinds, cells, strict=True):
                if cell == "":
                    continue
                if kind in ("DOUBLE", "BIGINT"):
                    assert NUMBER_RE.match(cell), f"{data_type}.{name}: {cell!r}"
                    assert "nan" not in cell.lower() and "e" not in cell.lower()
                elif kind == "BOOLEAN":
                    assert cell in ("true", "false")


@pytest.mark.parametrize(
    "data_type", ["book_snapshot_25", "incremental_book_L2", "trades", "derivative_ticker"]
)
def test_file_round_trips_to_the_table(tmp_path: Path, data_type: str) -> None:
    raw = gzip.decompress(_write(tmp_path, "deribit", "ETH-PERPETUAL", data_type, 400))
    types = {name: pa.string() for name, kind in datatypes.SCHEMAS[data_type] if kind == "VARCHAR"}
    parsed = pacsv.read_csv(io.BytesIO(raw), convert_options=pacsv.ConvertOptions(column_types=types))
    table = synth.generate_table("deribit", "ETH-PERPETUAL", data_type, DAY, 400)
    assert parsed.column_names == table.column_names
    for name in table.column_names:
        want = table.column(name)
        got = parsed.column(name).cast(want.type)
        assert got.equals(want), name


@pytest.mark.parametrize(
    "data_type", ["book_snapshot_25", "incremental_book_L2", "trades", "derivative_ticker"]
)
def test_deterministic_bytes_and_days_differ(tmp_path: Path, data_type: str) -> None:
    runs = []
    for name, day in (("a", DAY), ("b", DAY), ("c", DAY + dt.timedelta(days=1))):
        (tmp_path / name).mkdir()
        synth._market.cache_clear()  # regenerate from scratch, not from the cache
        runs.append(_write(tmp_path / name, "binance-futures", "BTCUSDT", data_type, 500, day))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert runs[0] != _write(tmp_path, "binance-futures", "BTCUSDT", data_type, 501)


def test_chunking_does_not_change_output() -> None:
    day = _days_with("bitmex", "XBTUSD", True, True, scale=1500)  # with a reconnect and buffered updates
    for data_type in ("book_snapshot_25", "book_snapshot_5", "quotes", "incremental_book_L2"):
        whole = pa.concat_tables(synth.iter_tables("bitmex", "XBTUSD", data_type, day, 1500))
        chunked = pa.concat_tables(
            synth.iter_tables("bitmex", "XBTUSD", data_type, day, 1500, chunk_events=97)
        )
        assert whole.equals(chunked), data_type


@pytest.mark.parametrize("scale", [1, 2, 50])
def test_tiny_scales_work(tmp_path: Path, scale: int) -> None:
    for data_type in _spec("deribit", "BTC-PERPETUAL").data_types:
        table = synth.generate_table("deribit", "BTC-PERPETUAL", data_type, DAY, scale)
        assert table.num_rows >= 1
        assert table.column_names == list(datatypes.columns(data_type))


# ----------------------------------------------------------------------------------------------------------
# timestamps and schema


@pytest.mark.parametrize(("exchange", "symbol"), SYMBOLS[:4])
def test_timestamps_ordered_and_inside_the_day(exchange: str, symbol: str) -> None:
    for data_type in _spec(exchange, symbol).data_types:
        t = _table(exchange, symbol, data_type, 1000)
        local, ts = t["local_timestamp"], t["timestamp"]
        assert local.dtype == np.int64 and ts.dtype == np.int64
        assert np.all(np.diff(local) >= 0), data_type
        assert np.all(np.diff(ts) >= 0), data_type
        assert np.all(local >= ts), data_type
        assert ts.min() >= T0 and local.max() < T0 + US_PER_DAY, data_type
        if data_type != "incremental_book_L2":  # L2 rows of one message share the local timestamp
            assert np.all(np.diff(local) > 0), data_type


def test_column_types() -> None:
    t = synth.generate_table("binance-futures", "BTCUSDT", "incremental_book_L2", DAY, 200)
    assert t.schema.field("is_snapshot").type == pa.bool_()
    assert t.schema.field("side").type == pa.string()
    assert t.schema.field("price").type == pa.float64()
    d = synth.generate_table("deribit", "BTC-PERPETUAL", "derivative_ticker", DAY, 200)
    assert d.schema.field("funding_timestamp").type == pa.int64()
    assert d.schema.field("predicted_funding_rate").type == pa.float64()


# ----------------------------------------------------------------------------------------------------------
# the book


@pytest.mark.parametrize(("exchange", "symbol"), SYMBOLS[:4])
def test_book_snapshot_25_is_a_valid_book(exchange: str, symbol: str) -> None:
    spec = _spec(exchange, symbol)
    snap = _table(exchange, symbol, "book_snapshot_25", 3000)
    ap, aa, bp, ba = _levels(snap, 25)
    assert np.all(bp[:, 0] < ap[:, 0])  # never crossed
    assert np.all(np.diff(ap, axis=1) > 0) and np.all(np.diff(bp, axis=1) < 0)
    assert np.all(aa > 0) and np.all(ba > 0)
    everything = np.concatenate([ap, aa, bp, ba], axis=1)
    assert np.all(np.any(everything[1:] != everything[:-1], axis=1))  # consecutive rows differ
    ticks = np.concatenate([ap, bp], axis=1) * 10**spec.price_decimals / spec.tick_units
    assert np.allclose(ticks, np.rint(ticks), rtol=0, atol=1e-6)  # on the tick grid
    lots = np.concatenate([aa, ba], axis=1) * 10**spec.amount_decimals / spec.lot_units
    assert np.allclose(lots, np.rint(lots), rtol=0, atol=1e-6)  # whole lots
    rel_range = (bp[:, 0].max() - bp[:, 0].min()) / bp[0, 0]
    assert 0.001 < rel_range < 0.1


def test_snapshot_5_and_quotes_follow_snapshot_25() -> None:
    snap = _table("binance-futures", "ETHUSDT", "book_snapshot_25", 3000)
    top5 = np.concatenate(_levels(snap, 5), axis=1)
    changed = np.concatenate([[True], np.any(top5[1:] != top5[:-1], axis=1)])
    s5 = _table("binance-futures", "ETHUSDT", "book_snapshot_5", 3000)
    assert np.array_equal(np.concatenate(_levels(s5, 5), axis=1), top5[changed])
    assert np.array_equal(s5["local_timestamp"], snap["local_timestamp"][changed])
    assert np.array_equal(s5["timestamp"], snap["timestamp"][changed])

    top1 = np.stack(
        [snap["asks[0].amount"], snap["asks[0].price"], snap["bids[0].price"], snap["bids[0].amount"]], axis=1
    )
    changed = np.concatenate([[True], np.any(top1[1:] != top1[:-1], axis=1)])
    q = _table("binance-futures", "ETHUSDT", "quotes", 3000)
    got = np.stack([q["ask_amount"], q["ask_price"], q["bid_price"], q["bid_amount"]], axis=1)
    assert np.array_equal(got, top1[changed])
    assert np.array_equal(q["local_timestamp"], snap["local_timestamp"][changed])


def _replay_l2(l2: pa.Table, depth: int) -> tuple[list[tuple[int, list, list]], int, int]:
    """Apply L2 rows group by group (plain dicts) like a Tardis reader.

    Rows before the first snapshot are counted and skipped; a snapshot group after updates replaces the book.
    Returns the top `depth` per side after each group, the number of skipped rows and of book resets.
    """
    books: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    out: list[tuple[int, list, list]] = []
    rows = zip(
        *(l2.column(c).to_pylist() for c in ("local_timestamp", "is_snapshot", "side", "price", "amount")),
        strict=True,
    )
    current: int | None = None
    prev_snapshot = False
    seen_snapshot = False
    skipped = 0
    resets = 0

    def emit(local: int) -> None:
        asks = sorted(books["ask"].items())[:depth]
        bids = sorted(books["bid"].items(), reverse=True)[:depth]
        out.append((local, asks, bids))

    for local, is_snapshot, side, price, amount in rows:
        if not seen_snapshot and not is_snapshot:
            skipped += 1
            continue
        if current is not None and local != current:
            emit(current)
        current = local
        if is_snapshot and not prev_snapshot:
            books = {"bid": {}, "ask": {}}
            resets += 1
            seen_snapshot = True
        prev_snapshot = is_snapshot
        if amount == 0:
            del books[side][price]  # deleting a level that is not there would be a generator bug
        else:
            books[side][price] = amount
    if current is not None:
        emit(current)
    return out, skipped, resets


def _l2_shape(l2: pa.Table) -> tuple[int, list[tuple[int, int]]]:
    """(rows before the first snapshot, [(first row, row count) of every snapshot group])."""
    flags = l2.column("is_snapshot").to_numpy(zero_copy_only=False)
    local = l2.column("local_timestamp").to_numpy()
    starts = np.flatnonzero(flags & ~np.concatenate([[False], flags[:-1]]))
    ends = np.flatnonzero(flags & ~np.concatenate([flags[1:], [False]])) + 1
    groups = [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]
    for a, count in groups:
        assert np.all(local[a : a + count] == local[a])  # one message: one receive time
    return (int(starts[0]) if starts.size else len(flags)), groups


def _days_with(exchange: str, symbol: str, reconnect: bool, pre_rows: bool, scale: int = 2000) -> dt.date:
    """The first day from DAY on whose model has (or has not) a reconnect and buffered pre-snapshot rows."""
    for i in range(60):
        day = DAY + dt.timedelta(days=i)
        mk = synth._market(exchange, symbol, day, scale)
        if (mk.reconnects.size > 0) == reconnect and (mk.pre_snapshot[1].size > 0) == pre_rows:
            return day
    raise AssertionError("no such day in 60")


@pytest.mark.parametrize(
    ("exchange", "symbol", "daily_vol", "reconnect", "pre_rows"),
    [
        ("binance-futures", "BTCUSDT", None, True, True),  # sweeps of the whole window and one-tick moves
        ("binance-futures", "BTCUSDT", None, False, False),
        ("deribit", "ETH-PERPETUAL", None, True, False),  # a mix of partial and full window shifts
        ("bitmex", "XBTUSD", 0.0002, True, True),  # moves of a tick or two, spread-only and no-op moves
    ],
)
def test_l2_replay_reproduces_book_snapshot_25(
    monkeypatch: pytest.MonkeyPatch,
    exchange: str,
    symbol: str,
    daily_vol: float | None,
    reconnect: bool,
    pre_rows: bool,
) -> None:
    if daily_vol is not None:
        monkeypatch.setattr(synth, "_DAILY_VOL", daily_vol)
        monkeypatch.setattr(synth, "_market", functools.lru_cache(maxsize=2)(synth._market.__wrapped__))
    day = _days_with(exchange, symbol, reconnect, pre_rows)
    l2 = synth.generate_table(exchange, symbol, "incremental_book_L2", day, 2000)
    snap = _table(exchange, symbol, "book_snapshot_25", 2000, day)
    sides = l2.column("side").to_pylist()
    assert set(sides) == {"bid", "ask"}
    first, groups = _l2_shape(l2)
    assert (first > 0) == pre_rows
    assert (len(groups) > 1) == reconnect
    assert all(count > 50 for _, count in groups)  # 25 levels a side and the deep book beyond them
    assert groups[0][0] == first
    replayed, skipped, resets = _replay_l2(l2, 25)
    assert skipped == first
    assert resets == len(groups)
    ap, aa, bp, ba = _levels(snap, 25)
    # a message that changes only the deep book leaves the top 25 as it was: book_snapshot_25 has no row for it
    changed = [i for i, r in enumerate(replayed) if i == 0 or r[1:] != replayed[i - 1][1:]]
    assert len(changed) == len(snap["local_timestamp"]) <= len(replayed)
    for i, (local, asks, bids) in enumerate(replayed[j] for j in changed):
        assert local == snap["local_timestamp"][i]
        assert asks == list(zip(ap[i].tolist(), aa[i].tolist(), strict=True)), i
        assert bids == list(zip(bp[i].tolist(), ba[i].tolist(), strict=True)), i
    ts = l2.column("timestamp").to_numpy()[first:]
    lt = l2.column("local_timestamp").to_numpy()[first:]
    starts = np.concatenate([[True], lt[1:] != lt[:-1]])
    assert np.array_equal(
        ts[starts][changed], snap["timestamp"]
    )  # one group per snapshot row, same timestamps


@pytest.mark.parametrize(
    ("exchange", "symbol"), [("binance-futures", "BTCUSDT"), ("deribit", "BTC-PERPETUAL")]
)
def test_l2_is_the_models_whole_deep_book(exchange: str, symbol: str) -> None:
    """Replaying the L2 rows gives, after any message, the model's window plus its deep book (hundreds to thousands
    of levels a side over several percent of the price), and never deletes a level that is not there."""
    day = _days_with(exchange, symbol, True, False, scale=5000)
    mk = synth._market(exchange, symbol, day, 5000)
    l2 = synth.generate_table(exchange, symbol, "incremental_book_L2", day, 5000)
    rows = zip(
        *(l2.column(c).to_pylist() for c in ("local_timestamp", "is_snapshot", "side", "price", "amount")),
        strict=True,
    )
    unit = 10.0**-mk.spec.price_decimals * mk.spec.tick_units  # one tick in price units
    checked_events = set(range(1, mk.n, 397)) | {int(e) for e in mk.toggle_event[:5]}
    event_of = {int(t): e for e, t in enumerate(mk.local)}
    books: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    prev_snapshot, absent, checked = False, 0, 0
    pending = None

    def model_book(e: int) -> dict[str, set[float]]:
        out = {}
        for name, side, lo, hi, window in (
            ("ask", synth._ASK, int(mk.ask[e]) + 25, mk.deep_hi, int(mk.ask[e]) + np.arange(25)),
            ("bid", synth._BID, mk.deep_lo, int(mk.bid[e]) - 25, int(mk.bid[e]) - np.arange(25)),
        ):
            deep = np.arange(lo, hi + 1)
            deep = deep[mk.deep_exists(side, deep, np.full(deep.size, e))]
            out[name] = {round(float(p) * unit, 8) for p in np.concatenate([window, deep])}
        return out

    def check(e: int) -> None:
        want = model_book(e)
        for name in ("ask", "bid"):
            assert {round(p, 8) for p in books[name]} == want[name], (e, name)

    for local, is_snapshot, side, price, amount in rows:
        if pending is not None and local != pending[0]:
            check(pending[1])
            checked += 1
            pending = None
        if is_snapshot and not prev_snapshot:
            books = {"bid": {}, "ask": {}}
        prev_snapshot = is_snapshot
        if amount == 0:
            absent += price not in books[side]
            books[side].pop(price, None)
        else:
            books[side][price] = amount
        e = event_of.get(local)
        if e in checked_events:
            pending = (local, e)
    assert absent == 0 and checked > 5
    levels = {name: len(levels) for name, levels in books.items()}
    assert min(levels.values()) > 300, levels
    span = (max(books["ask"]) - min(books["bid"])) / max(books["bid"])
    assert span > 0.05  # several percent of the price


def test_reconnect_snapshot_replaces_the_book() -> None:
    """A mid-day snapshot group is the model's whole book: applied on top of the old book, it would be wrong."""
    day = _days_with("binance-futures", "BTCUSDT", True, False)
    l2 = synth.generate_table("binance-futures", "BTCUSDT", "incremental_book_L2", day, 2000)
    snap = _table("binance-futures", "BTCUSDT", "book_snapshot_25", 2000, day)
    _, groups = _l2_shape(l2)
    local = l2.column("local_timestamp").to_numpy()
    price = l2.column("price").to_numpy()
    side = np.asarray(l2.column("side").to_pylist())
    ap, _, bp, _ = _levels(snap, 25)
    for a, count in groups[1:]:
        row = int(np.searchsorted(snap["local_timestamp"], local[a]))
        assert snap["local_timestamp"][row] == local[a]
        assert 0.1 < row / len(snap["local_timestamp"]) < 0.95  # mid-day
        assert a > 0 and not l2.column("is_snapshot")[a - 1].as_py()  # after updates: discard the book
        got_asks, got_bids = (  # the window's 25 a side come first, the deep book after them
            price[a : a + count][side[a : a + count] == "ask"][:25],
            price[a : a + count][side[a : a + count] == "bid"][:25],
        )
        assert np.array_equal(got_asks, ap[row]) and np.array_equal(got_bids, bp[row])
        # the book before had levels the snapshot does not list: a reader that merges would keep stale levels
        stale = set(ap[row - 1].tolist()) - set(ap[row].tolist()) | set(bp[row - 1].tolist()) - set(
            bp[row].tolist()
        )
        assert stale


def test_some_days_reconnect_and_some_start_with_buffered_updates() -> None:
    shapes = []
    for i in range(20):
        day = DAY + dt.timedelta(days=i)
        l2 = synth.generate_table("deribit", "BTC-PERPETUAL", "incremental_book_L2", day, 1000)
        first, groups = _l2_shape(l2)
        shapes.append((first, len(groups)))
        lt = l2.column("local_timestamp").to_numpy()
        ts = l2.column("timestamp").to_numpy()
        assert first <= synth._PRE_SNAPSHOT_MAX_ROWS
        if first:  # buffered updates: received before the snapshot, which comes a fraction of a second in
            assert lt[first - 1] < lt[first] and ts[first - 1] <= ts[first]
            assert lt[0] >= T0 + (day - DAY).days * US_PER_DAY
    firsts, counts = zip(*shapes, strict=True)
    assert 0 in firsts and any(f > 0 for f in firsts)
    assert 1 in counts and any(c > 1 for c in counts)
    assert max(counts) <= 3


def test_reconnects_and_pre_snapshot_rows_are_deterministic(tmp_path: Path) -> None:
    day = _days_with("bitmex", "XBTUSD", True, True, scale=3000)
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        synth._market.cache_clear()
        runs.append(_write(tmp_path / name, "bitmex", "XBTUSD", "incremental_book_L2", 3000, day))
    assert runs[0] == runs[1]
    text = gzip.decompress(runs[0]).decode().split("\n")
    assert ",false," in text[1] and text[1].startswith("bitmex,XBTUSD,")  # starts with buffered updates


# ----------------------------------------------------------------------------------------------------------
# trades, ticker, liquidations


def _book_in_force(snap: dict[str, np.ndarray], local: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(snap["local_timestamp"], local, side="right") - 1
    assert np.all(idx >= 0)
    return idx


@pytest.mark.parametrize(("exchange", "symbol"), SYMBOLS[:4])
def test_trades_at_the_touch(exchange: str, symbol: str) -> None:
    snap = _table(exchange, symbol, "book_snapshot_25", 3000)
    tr = _table(exchange, symbol, "trades", 3000)
    assert len(tr["price"]) == 1000
    idx = _book_in_force(snap, tr["local_timestamp"])
    buy = tr["side"] == "buy"
    assert set(tr["side"]) == {"buy", "sell"}
    assert np.array_equal(tr["price"][buy], snap["asks[0].price"][idx[buy]])
    assert np.array_equal(tr["price"][~buy], snap["bids[0].price"][idx[~buy]])
    assert np.all(tr["amount"] > 0)


def test_trade_ids() -> None:
    bitmex = _table("bitmex", "XBTUSD", "trades", 600)
    assert all(UUID_RE.match(i) for i in bitmex["id"])
    assert len(set(bitmex["id"])) == len(bitmex["id"])
    binance = _table("binance-futures", "BTCUSDT", "trades", 600)
    ids = np.array([int(i) for i in binance["id"]])
    assert np.all(np.diff(ids) > 0)
    next_day = _table("binance-futures", "BTCUSDT", "trades", 600, DAY + dt.timedelta(days=1))
    assert int(next_day["id"][0]) > ids[-1]


def test_derivative_ticker() -> None:
    deribit = synth.generate_table("deribit", "BTC-PERPETUAL", "derivative_ticker", DAY, 1000)
    assert deribit.num_rows == 100
    assert deribit.column("funding_timestamp").null_count == deribit.num_rows
    assert deribit.column("predicted_funding_rate").null_count == deribit.num_rows
    for name in ("funding_rate", "open_interest", "last_price", "index_price", "mark_price"):
        assert deribit.column(name).null_count == 0

    t = _table("binance-futures", "BTCUSDT", "derivative_ticker", 1000)
    snap = _table("binance-futures", "BTCUSDT", "book_snapshot_25", 1000)
    idx = _book_in_force(snap, t["local_timestamp"])
    mid = (snap["asks[0].price"][idx] + snap["bids[0].price"][idx]) / 2
    for name in ("mark_price", "index_price"):
        assert np.all(np.abs(t[name] / mid - 1) < 0.002), name
    assert np.all(np.abs(t["last_price"] / mid - 1) < 0.01)
    period = 8 * 3600 * 1_000_000
    assert np.array_equal(t["funding_timestamp"], (t["timestamp"] // period + 1) * period)
    assert np.all((t["funding_rate"] > 1e-5) & (t["funding_rate"] < 1e-3))
    assert np.all((t["open_interest"] > 0) & (t["open_interest"] < 1e9))
    tr = _table("binance-futures", "BTCUSDT", "trades", 1000)
    last = np.searchsorted(tr["local_timestamp"], t["local_timestamp"], side="right") - 1
    traded = last >= 0
    assert np.array_equal(t["last_price"][traded], tr["price"][last[traded]])


def test_liquidations() -> None:
    deribit = synth.generate_table("deribit", "BTC-PERPETUAL", "liquidations", DAY, 2000)
    assert deribit.num_rows == 10
    assert deribit.column("id").null_count == deribit.num_rows
    liq = _table("binance-futures", "BTCUSDT", "liquidations", 2000)
    snap = _table("binance-futures", "BTCUSDT", "book_snapshot_25", 2000)
    idx = _book_in_force(snap, liq["local_timestamp"])
    buy = liq["side"] == "buy"
    assert np.all(liq["price"][buy] > snap["asks[0].price"][idx[buy]])
    assert np.all(liq["price"][~buy] < snap["bids[0].price"][idx[~buy]])
    assert all(i.isdigit() for i in liq["id"])


def test_days_join_up() -> None:
    today = _table("binance-futures", "BTCUSDT", "book_snapshot_25", 400)
    tomorrow = _table("binance-futures", "BTCUSDT", "book_snapshot_25", 400, DAY + dt.timedelta(days=1))
    assert today["bids[0].price"][-1] == tomorrow["bids[0].price"][0]
    other = _table("deribit", "BTC-PERPETUAL", "book_snapshot_25", 400)
    assert abs(other["bids[0].price"][0] / today["bids[0].price"][0] - 1) < 0.001  # one BTC price


# ----------------------------------------------------------------------------------------------------------
# errors and csvout


@pytest.mark.parametrize(
    ("exchange", "symbol", "data_type"),
    [
        ("binance", "BTCUSDT", "derivative_ticker"),  # spot: no derivative data
        ("bitget-futures", "??USDT", "quotes"),
        ("deribit", "BTC-PERPETUAL", "book_ticker"),
        ("binance-futures", "BTCUSDT", "options_chain"),
        ("binance-futures", "NOPE", "trades"),
        ("nope", "BTCUSDT", "trades"),
    ],
)
def test_unknown_requests_raise(tmp_path: Path, exchange: str, symbol: str, data_type: str) -> None:
    with pytest.raises(ValueError):
        synth.generate_table(exchange, symbol, data_type, DAY, 100)
    with pytest.raises(ValueError):
        synth.write_dataset(exchange, symbol, data_type, DAY, 100, tmp_path / "x.csv.gz")
    assert not list(tmp_path.iterdir())


def test_bad_scale_raises() -> None:
    with pytest.raises(ValueError):
        synth.generate_table("binance-futures", "BTCUSDT", "trades", DAY, 0)


def test_empty_gzip(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv.gz"
    csvout.write_empty(path)
    assert gzip.decompress(path.read_bytes()) == b""
    empty = synth.generate_table("bitmex", "XBTUSD", "trades", DAY, 100).slice(0, 0)
    assert csvout.write_table(tmp_path / "t.csv.gz", "trades", empty) == 0
    assert gzip.decompress((tmp_path / "t.csv.gz").read_bytes()) == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv.gz", "t.csv.gz"]  # no temp files left


def test_csvout_writes_tardis_lines(tmp_path: Path) -> None:
    table = pa.table(
        {
            "exchange": ["deribit", "deribit"],
            "symbol": ["BTC-PERPETUAL", "BTC-PERPETUAL"],
            "timestamp": pa.array([1, 2], pa.int64()),
            "local_timestamp": pa.array([3, 4], pa.int64()),
            "id": pa.array([None, "7"], pa.string()),
            "side": ["buy", "sell"],
            "price": [9682.0, 0.001],
            "amount": pa.array([None, 42123.4], pa.float64()),
        }
    )
    path = tmp_path / "t.csv.gz"
    assert csvout.write_table(path, "trades", table, compresslevel=1) == 2
    assert gzip.decompress(path.read_bytes()) == (
        b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        b"deribit,BTC-PERPETUAL,1,3,,buy,9682,\n"
        b"deribit,BTC-PERPETUAL,2,4,7,sell,0.001,42123.4\n"
    )
    with pytest.raises(ValueError):
        csvout.write_table(tmp_path / "bad.csv.gz", "quotes", table)
    assert not (tmp_path / "bad.csv.gz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv.gz"]


# ----------------------------------------------------------------------------------------------------------
# realism at scale: compressibility like the real samples, bounded memory

#: (data type, real sample, synthetic exchange, symbol): huobi-dm-swap is not in the catalog, so its quotes are
#: compared with the closest contract there (USD-sized inverse perpetual).
COMPRESSIBILITY_CASES = [
    (
        "book_snapshot_25",
        "nautechsystems__binance-futures_book_snapshot_25_BTCUSDT.csv",
        "binance-futures",
        "BTCUSDT",
    ),
    ("trades", "nautechsystems__tardis_trades.csv", "binance-futures", "BTCUSDT"),
    ("trades", "nautechsystems__bitmex_trades_XBTUSD.csv", "bitmex", "XBTUSD"),
    ("quotes", "nautechsystems__huobi-dm-swap_quotes_BTC-USD.csv", "deribit", "BTC-PERPETUAL"),
]


@pytest.mark.parametrize(("data_type", "sample", "exchange", "symbol"), COMPRESSIBILITY_CASES)
def test_gzip_bytes_per_row_like_the_real_samples(
    data_type: str, sample: str, exchange: str, symbol: str
) -> None:
    """The head of a day (as many rows as the real head) gzips within 30% of the real head's bytes per row."""
    from tick_assets_tests.conftest import SAMPLES

    body = (SAMPLES / sample).read_bytes().split(b"\n", 1)[1]
    rows = body.count(b"\n")
    real = csvout.gzip_bytes_per_row(body)
    ratios = []
    for week in range(3):  # the median of three days: one head of 10 rows can hit a sweep of the book
        day = DAY + dt.timedelta(days=7 * week)
        head = next(synth.iter_tables(exchange, symbol, data_type, day, 500_000)).slice(0, rows)
        assert head.num_rows == rows
        ratios.append(csvout.gzip_bytes_per_row(csvout.csv_rows(head)) / real)
    assert 0.7 <= float(np.median(ratios)) <= 1.3, ratios


def test_sizes_look_typed_by_people() -> None:
    """Trade sizes span decades with many round and one-lot sizes; resting sizes drift by small orders."""
    tr = _table("binance-futures", "BTCUSDT", "trades", 30_000)
    amount = tr["amount"]
    assert np.quantile(amount, 0.75) / np.quantile(amount, 0.25) > 10
    assert 0.04 < np.mean(amount == 0.001) < 0.15
    lots = np.rint(amount * 1000).astype(np.int64)
    unit = (10 ** np.floor(np.log10(lots))).astype(np.int64)
    assert np.mean(lots % unit == 0) > 0.3  # one significant digit: 0.001, 0.02, 0.3, 2
    ids = np.array([int(i) for i in tr["id"]])
    assert np.all(np.diff(ids) == 1)  # binance trade ids are consecutive
    ts = tr["timestamp"]
    assert 0.25 < np.mean(np.diff(ts) == 0) < 0.6  # fills of one taker order share the exchange time
    q = _table("binance-futures", "BTCUSDT", "quotes", 30_000)
    bid, size = q["bid_price"], q["bid_amount"]
    nudged = (bid[1:] == bid[:-1]) & (size[1:] != size[:-1])
    assert np.mean(nudged) > 0.2
    assert np.median(np.abs(size[1:] - size[:-1])[nudged] / size[:-1][nudged]) < 0.1


def test_memory_per_chunk_does_not_grow_with_the_day() -> None:
    """Peak Python/numpy memory while streaming a day is the model plus one chunk, whatever the day's size."""
    import gc
    import tracemalloc

    def peak_while_streaming(scale: int) -> tuple[int, int]:
        synth._market.cache_clear()
        gc.collect()
        tracemalloc.start()
        # the model, O(scale): the day's and what it keeps of the previous day's (the book it opens with)
        assert len(synth._market("deribit", "BTC-PERPETUAL", DAY, scale).previous) == DAY.weekday()
        model, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rows = 0
        for data_type in ("incremental_book_L2", "book_snapshot_25"):
            for table in synth.iter_tables(
                "deribit", "BTC-PERPETUAL", data_type, DAY, scale, chunk_events=5_000
            ):
                rows += table.num_rows
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert rows > scale
        return model, peak - model

    small_model, small_peak = peak_while_streaming(20_000)
    big_model, big_peak = peak_while_streaming(200_000)
    assert big_model > 5 * small_model
    assert big_peak < 1.5 * small_peak + 2_000_000  # per-chunk temporaries: independent of the day's size
    assert big_peak < 60_000_000
    synth._market.cache_clear()


def _closing_and_opening_books(day: dt.date, scale: int) -> tuple[tuple, tuple]:
    """The whole L2 book `day` closes with (replayed) and the one the next day's first snapshot opens with."""
    books = []
    for d in (day, day + dt.timedelta(days=1)):
        l2 = synth.generate_table("binance-futures", "BTCUSDT", "incremental_book_L2", d, scale)
        cols = {c: l2.column(c).to_numpy(zero_copy_only=False) for c in l2.column_names}
        is_ask = cols["side"] == "ask"
        if d == day:
            replay = BookReplay([])
            replay.feed(cols["local_timestamp"], cols["is_snapshot"], is_ask, cols["price"], cols["amount"])
            books.append(replay.book())
        else:
            first = int(np.flatnonzero(cols["is_snapshot"])[0])
            run = first + int(np.argmin(cols["is_snapshot"][first:]))  # the first snapshot group ends there
            snap = slice(first, run)
            price, amount, ask = cols["price"][snap], cols["amount"][snap], is_ask[snap]
            books.append(
                (np.column_stack([price[~ask], amount[~ask]]), np.column_stack([price[ask], amount[ask]]))
            )
    return books[0], books[1]


def _same_sizes(closing: tuple, opening: tuple) -> tuple[int, int]:
    """(levels priced in both books, of them with the same size), both sides, within the price range both days'
    far books cover (each day's spans 5% around its own open)."""
    both = same = 0
    for a, b in zip(closing, opening, strict=True):
        lo, hi = max(a[:, 0].min(), b[:, 0].min()), min(a[:, 0].max(), b[:, 0].max())
        a, b = (x[(x[:, 0] >= lo) & (x[:, 0] <= hi)] for x in (a, b))
        common, ia, ib = np.intersect1d(a[:, 0], b[:, 0], return_indices=True)
        assert (
            len(common) == len(a) == len(b)
        )  # the same levels: the touch, the spread and the far book carry over
        both += len(common)
        same += int((a[ia, 1] == b[ib, 1]).sum())
    return both, same


def test_a_day_opens_with_the_book_the_previous_day_closed_with_and_a_week_at_rest() -> None:
    """Like a real feed, the next day's first L2 snapshot is the book the day ended with: every level and size
    within the range both days' far books cover (within the UTC week; the model starts each Monday at rest)."""
    for day in (dt.date(2024, 1, 2), dt.date(2024, 1, 5)):  # Tuesday -> Wednesday, Friday -> Saturday
        both, same = _same_sizes(*_closing_and_opening_books(day, 20_000))
        assert both > 3_000 and same == both, day
    both, same = _same_sizes(*_closing_and_opening_books(dt.date(2024, 1, 7), 20_000))  # Sunday -> Monday
    assert same < 0.8 * both
