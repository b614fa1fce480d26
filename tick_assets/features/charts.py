"""The daily chart: mid, spread, imbalance and volume over one day, rendered to PNG with matplotlib."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt
import pandas as pd


def daily_chart_png(minutes: pd.DataFrame, title: str) -> bytes:
    """Four stacked panels over the day's 1-minute bars: mid (close), spread (bps), level-5 imbalance, volume."""
    m = minutes.sort_values("minute")
    fig, axes = plt.subplots(4, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    axes[0].plot(m["minute"], m["mid_close"], lw=0.9)
    axes[0].set_ylabel("mid")
    axes[1].plot(m["minute"], m["spread_bps_mean"], lw=0.8, color="tab:orange")
    axes[1].set_ylabel("spread (bps)")
    axes[2].plot(m["minute"], m["imbalance_5_mean"], lw=0.8, color="tab:green")
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set_ylabel("imbalance (5 lvls)")
    axes[3].bar(m["minute"], m["volume"].fillna(0), width=1 / 1440, color="tab:purple")
    axes[3].set_ylabel("volume")
    axes[3].set_xlabel("UTC")
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
