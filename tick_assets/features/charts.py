"""The daily chart: mid, spread, imbalance and volume over one day (and the whole book's depth and order flow),
rendered to PNG with matplotlib."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt
import pandas as pd


def daily_chart_png(minutes: pd.DataFrame, title: str, book_minutes: pd.DataFrame | None = None) -> bytes:
    """Stacked panels over the day's 1-minute bars: mid (close), spread (bps), level-5 imbalance, volume; with the
    rebuilt book's minutes also two-sided depth at 25 levels against within 25 and 100 bps (log scale), and the
    cumulative order-flow imbalance at 1, 10 and 50 levels."""
    m = minutes.sort_values("minute")
    panels = 4 if book_minutes is None else 6
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2 * panels), sharex=True, constrained_layout=True)
    axes[0].plot(m["minute"], m["mid_close"], lw=0.9)
    axes[0].set_ylabel("mid")
    axes[1].plot(m["minute"], m["spread_bps_mean"], lw=0.8, color="tab:orange")
    axes[1].set_ylabel("spread (bps)")
    axes[2].plot(m["minute"], m["imbalance_5_mean"], lw=0.8, color="tab:green")
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set_ylabel("imbalance (5 lvls)")
    axes[3].bar(m["minute"], m["volume"].fillna(0), width=1 / 1440, color="tab:purple")
    axes[3].set_ylabel("volume")
    if book_minutes is not None:
        b = book_minutes.sort_values("minute")
        for column, label in (
            ("depth_25_levels_mean", "25 levels (a snapshot)"),
            ("depth_25bps_mean", "within 25 bps"),
            ("depth_100bps_mean", "within 100 bps"),
        ):
            axes[4].plot(b["minute"], b[column], lw=0.8, label=label)
        axes[4].set_yscale("log")
        low, high = axes[4].get_ylim()
        axes[4].set_ylim(low, high * 4)  # room for the legend above the lines
        axes[4].set_ylabel("depth, both sides\n(whole book)")
        axes[4].legend(loc="upper left", fontsize="small", ncol=3)
        for k in (1, 10, 50):
            axes[5].plot(
                b["minute"], b[f"ofi_{k}"].fillna(0).cumsum(), lw=0.8, label=f"{k} level{'s' * (k > 1)}"
            )
        axes[5].axhline(0, color="grey", lw=0.5)
        axes[5].set_ylabel("cumulative OFI")
        axes[5].legend(loc="upper left", fontsize="small", ncol=3)
    axes[-1].set_xlabel("UTC")
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
