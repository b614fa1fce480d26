"""Figures the UI shows are rounded in one place: `figure`, its rules by name, and the preview table."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from tick_assets.assets.metadata import figure, figure_rule, figures, preview_markdown


def test_float_artefacts_go_and_meaningful_digits_stay() -> None:
    assert figure(36986.649999999994) == 36986.65
    assert figure(7.587999999999999) == 7.588
    assert figure(0.1 + 0.2) == 0.3
    assert figure(-36986.649999999994) == -36986.65
    assert figure(123456.12345678) == 123456.123457  # 12 significant digits
    assert figure(1e-9) == 1e-9  # a funding rate is not a zero
    assert figure(1.23456789012345e-9) == 1.23456789012e-9
    assert figure(3.2e22) == 3.2e22
    assert figure(1e300) == 1e300


@pytest.mark.parametrize("value", [0, 7, -3, 10**20, True, None, "7.587999999999999"])
def test_ints_and_non_numbers_are_untouched(value: object) -> None:
    assert figure(value) is value


def test_zero_nan_and_infinities() -> None:
    assert figure(0.0) == 0.0
    assert str(figure(-0.0001, decimals=3)) == "0.0"  # no "-0.0"
    assert math.isnan(figure(float("nan")))
    assert figure(float("inf")) == float("inf") and figure(float("-inf")) == float("-inf")
    assert figure(Decimal("7.5880000001")) == 7.5880000001 and isinstance(figure(Decimal("1.5")), float)


def test_rules_by_name() -> None:
    assert figure_rule("download_seconds") == figure_rule("seconds") == {"decimals": 3}  # to the ms
    assert figure_rule("max_exchange_ahead_ms") == {"decimals": 3}  # to the µs
    assert figure_rule("download_mb_per_second") == {"significant": 4}
    assert figure_rule("spread_bps_mean") == figure_rule("mean_spread_bps") == {"significant": 4}
    assert figure_rule("log_return") == figure_rule("realized_vol") == {"significant": 6}
    assert figure_rule("volume") == figure_rule("mid_close") == {}  # sizes and prices: 12 digits


def test_figures_round_a_metadata_dict_by_name() -> None:
    got = figures(
        {
            "dagster/row_count": 86_400,
            "download_seconds": 0.12345678,
            "download_mb_per_second": 12.3456789,
            "mid_close": 36986.649999999994,
            "log_return": 0.000123456789,
            "funding_rate": 1.0000000001e-9,
            "spread_bps_mean": 0.026671823220708,
            "longest_silence_seconds": 61.0000001,
            "path": "/lake/x.parquet",
        }
    )
    assert got == {
        "dagster/row_count": 86_400,
        "download_seconds": 0.123,
        "download_mb_per_second": 12.35,
        "mid_close": 36986.65,
        "log_return": 0.000123457,
        "funding_rate": 1e-9,
        "spread_bps_mean": 0.02667,
        "longest_silence_seconds": 61.0,
        "path": "/lake/x.parquet",
    }


def test_preview_cells_have_no_float_artefacts() -> None:
    md = preview_markdown(
        ("timestamp_utc", "price", "amount", "side", "id"),
        ((dt.datetime(2024, 1, 1, 0, 0, 1), 36986.649999999994, 7.587999999999999, "buy", None),),
    )
    assert md.splitlines()[-1] == "| 2024-01-01 00:00:01.000000 | 36986.65 | 7.588 | buy |  |"
