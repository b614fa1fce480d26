"""analytics from the grid features (pandas, vectorized): 1-minute microstructure bars and a daily summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns of features/depth and features/trade_bars the analytics read (loading only these keeps memory low).
DEPTH_INPUT_COLUMNS = [
    "instrument",
    "ts",
    "mid",
    "spread_bps",
    "imbalance_5",
    "best_bid",
    "best_ask",
    "bid_size",
    "ask_size",
]
TRADE_INPUT_COLUMNS = ["instrument", "ts", "volume", "notional", "signed_volume", "trades"]
#: The order-flow imbalance levels the book minutes sum (features/book has ofi_k for k up to its book_depth).
BOOK_OFI_LEVELS = (1, 10, 50)
#: Columns of features/book the book minutes read: what 25 snapshot levels cannot show.
BOOK_INPUT_COLUMNS = [
    "instrument",
    "ts",
    "mid",
    "bid_depth_25",
    "ask_depth_25",
    "bid_depth_25bps",
    "ask_depth_25bps",
    "bid_depth_100bps",
    "ask_depth_100bps",
    "imbalance_100bps",
    "bid_levels",
    "ask_levels",
    "crossed",
    "locked",
    "messages",
    "staleness_ms",
    *(f"ofi_{k}" for k in BOOK_OFI_LEVELS),
]
#: The book minutes' columns a daily summary averages (the OFI columns are summed).
BOOK_DAILY_MEANS = ("depth_25_levels_mean", "depth_25bps_mean", "depth_100bps_mean", "levels_mean")


def order_flow_imbalance(depth: pd.DataFrame) -> pd.Series:
    """Level-1 order-flow imbalance e_n of Cont, Kukanov & Stoikov (2014) between consecutive grid rows.

    e_n = 1[Pb_n >= Pb_n-1] qb_n - 1[Pb_n <= Pb_n-1] qb_n-1 - 1[Pa_n <= Pa_n-1] qa_n + 1[Pa_n >= Pa_n-1] qa_n-1
    (0 for the first row of an instrument's day and wherever either row has no book).
    """
    g = depth.groupby(["instrument", depth["ts"].dt.floor("1D")], sort=False)
    pb, qb, pa, qa = depth["best_bid"], depth["bid_size"], depth["best_ask"], depth["ask_size"]
    pb0, qb0, pa0, qa0 = (g[c].shift(1) for c in ("best_bid", "bid_size", "best_ask", "ask_size"))
    e = (
        np.where(pb >= pb0, qb, 0.0)
        - np.where(pb <= pb0, qb0, 0.0)
        - np.where(pa <= pa0, qa, 0.0)
        + np.where(pa >= pa0, qa0, 0.0)
    )
    return pd.Series(np.nan_to_num(e, nan=0.0), index=depth.index)


def microstructure_1m(depth: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """One row per instrument and UTC minute: mid OHLC, log return, realized volatility from the grid's mid
    returns, mean spread (bps) and level-5 imbalance, volume, VWAP, signed volume and level-1 OFI.

    Every value depends on its own UTC day only (differences never cross midnight), so a partition comes out
    the same whether it is computed alone or in a ranged run with its neighbours.
    """
    depth = depth.sort_values(["instrument", "ts"]).reset_index(drop=True)
    depth["minute"] = depth["ts"].dt.floor("1min")
    depth["log_mid"] = np.log(depth["mid"])
    depth["r"] = depth.groupby(["instrument", depth["ts"].dt.floor("1D")], sort=False)["log_mid"].diff()
    depth["r2"] = depth["r"] ** 2
    depth["ofi"] = order_flow_imbalance(depth)
    book = depth.groupby(["instrument", "minute"], sort=True).agg(
        mid_open=("mid", "first"),
        mid_high=("mid", "max"),
        mid_low=("mid", "min"),
        mid_close=("mid", "last"),
        realized_variance=("r2", "sum"),
        spread_bps_mean=("spread_bps", "mean"),
        imbalance_5_mean=("imbalance_5", "mean"),
        ofi_1=("ofi", "sum"),
    )
    bars = bars.assign(minute=bars["ts"].dt.floor("1min"))
    flow = bars.groupby(["instrument", "minute"], sort=True).agg(
        volume=("volume", "sum"),
        notional=("notional", "sum"),
        signed_volume=("signed_volume", "sum"),
        trades=("trades", "sum"),
    )
    out = book.join(flow, how="outer").reset_index()
    prev_close = out.groupby(["instrument", out["minute"].dt.floor("1D")], sort=False)["mid_close"].shift(1)
    out["log_return"] = np.log(out["mid_close"] / prev_close.fillna(out["mid_open"]))
    out["realized_vol"] = np.sqrt(out["realized_variance"])
    out["vwap"] = out["notional"] / out["volume"].where(out["volume"] > 0)
    columns = [
        "instrument",
        "minute",
        "mid_open",
        "mid_high",
        "mid_low",
        "mid_close",
        "log_return",
        "realized_vol",
        "spread_bps_mean",
        "imbalance_5_mean",
        "volume",
        "notional",
        "vwap",
        "signed_volume",
        "trades",
        "ofi_1",
    ]
    return out[columns]


def book_1m(book: pd.DataFrame) -> pd.DataFrame:
    """One row per instrument and UTC minute of the whole rebuilt book (features/book): mean two-sided depth at 25
    levels (all a book_snapshot_25 holds) and within 25 and 100 bps of the mid, the 100 bps imbalance, mean levels
    per side, the order-flow imbalance at 1/10/50 levels summed over the minute, messages applied, the share of
    grid rows crossed or locked and the largest staleness. Minutes without a book have NULL means."""
    book = book.assign(
        minute=book["ts"].dt.floor("1min"),
        depth_25_levels=book["bid_depth_25"] + book["ask_depth_25"],
        depth_25bps=book["bid_depth_25bps"] + book["ask_depth_25bps"],
        depth_100bps=book["bid_depth_100bps"] + book["ask_depth_100bps"],
        levels=(book["bid_levels"] + book["ask_levels"]) / 2,
        crossed_or_locked=(book["crossed"].astype("boolean") | book["locked"].astype("boolean")).astype(
            "Float64"
        ),
    )
    ofi = {f"ofi_{k}": (f"ofi_{k}", "sum") for k in BOOK_OFI_LEVELS}
    out = book.groupby(["instrument", "minute"], sort=True).agg(
        depth_25_levels_mean=("depth_25_levels", "mean"),
        depth_25bps_mean=("depth_25bps", "mean"),
        depth_100bps_mean=("depth_100bps", "mean"),
        imbalance_100bps_mean=("imbalance_100bps", "mean"),
        levels_mean=("levels", "mean"),
        **ofi,
        rows_with_book=("mid", "count"),
        messages=("messages", "sum"),
        crossed_or_locked_share=("crossed_or_locked", "mean"),
        staleness_ms_max=("staleness_ms", "max"),
    )
    out = out.astype({c: "float64" for c in out.columns if c not in ("messages", "rows_with_book")})
    # a minute without a book has no order flow (NULL), not zero flow
    out.loc[out["rows_with_book"] == 0, list(ofi)] = np.nan
    return out.drop(columns="rows_with_book").reset_index()


def daily_summary(minutes: pd.DataFrame, book_minutes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per instrument and UTC day from the 1-minute bars, and the rebuilt book's minutes if given (mean
    depth at 25 levels and within 25/100 bps, mean levels, summed order-flow imbalance at 1/10/50 levels)."""
    m = minutes.sort_values(["instrument", "minute"]).assign(date=minutes["minute"].dt.floor("1D"))
    g = m.groupby(["instrument", "date"], sort=True)
    out = g.agg(
        mid_open=("mid_open", "first"),
        mid_high=("mid_high", "max"),
        mid_low=("mid_low", "min"),
        mid_close=("mid_close", "last"),
        spread_bps_mean=("spread_bps_mean", "mean"),
        imbalance_5_mean=("imbalance_5_mean", "mean"),
        volume=("volume", "sum"),
        notional=("notional", "sum"),
        signed_volume=("signed_volume", "sum"),
        trades=("trades", "sum"),
        ofi_1=("ofi_1", "sum"),
        minutes_with_book=("mid_close", "count"),
    )
    out["vwap"] = out["notional"] / out["volume"].where(out["volume"] > 0)
    out["realized_vol"] = np.sqrt(g["realized_vol"].apply(lambda s: float((s**2).sum())))
    out["log_return"] = np.log(out["mid_close"] / out["mid_open"])
    if book_minutes is not None:
        b = book_minutes.assign(date=book_minutes["minute"].dt.floor("1D")).groupby(["instrument", "date"])
        deep = b[list(BOOK_DAILY_MEANS)].mean()
        flows = b[[f"ofi_{k}" for k in BOOK_OFI_LEVELS]].sum(min_count=1)  # NULL for a day without a book
        deep[[f"book_ofi_{k}" for k in BOOK_OFI_LEVELS]] = flows.to_numpy()
        out = out.join(deep, how="left")
    return out.reset_index()
