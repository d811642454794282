"""Chart layout: fixed margins that fit the tick labels, automargin only on axes of names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from stepscope.dashboard import charts

DAY = datetime(2026, 11, 9, tzinfo=UTC)


def series(values: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"bucket_start": [DAY + timedelta(days=i) for i in range(len(values))],
                         "workflow": ["refund"] * len(values), "value": values})


def automargin(axis) -> bool:
    return bool(axis.automargin)


def test_time_series_have_fixed_margins_and_no_automargin():
    fig = charts.line_chart(series([0.9, 0.95]), x="bucket_start", y="value", color="workflow",
                            percent=True, title="Tool-call success rate")
    assert not automargin(fig.layout.xaxis) and not automargin(fig.layout.yaxis)
    assert not automargin(fig.layout.template.layout.xaxis)
    assert not automargin(fig.layout.template.layout.yaxis)
    assert fig.layout.margin.l == charts.LEFT_MARGIN
    assert fig.layout.margin.b == charts.BOTTOM_MARGIN
    titled = charts.line_chart(series([1.0, 2.0]), x="bucket_start", y="value", y_title="ms")
    assert titled.layout.margin.l == charts.LEFT_MARGIN + charts.Y_TITLE_PX


def test_dollar_axes_get_room_for_their_largest_label():
    assert charts.money_margin(None) == charts.LEFT_MARGIN
    assert charts.money_margin(12.5) == charts.LEFT_MARGIN
    assert charts.money_margin(1_234_567) == charts.CHAR_PX * len("$1,234,567") + 16
    small = charts.stacked_bars(series([3.0, 4.0]), x="bucket_start", y="value",
                                color="workflow", money=True)
    assert small.layout.margin.l == charts.LEFT_MARGIN
    # two days stacked on one bar: the tallest stack decides, not the largest value
    big = pl.concat([series([600_000.0]), series([700_000.0]).with_columns(
        pl.lit("triage").alias("workflow"))])
    wide = charts.stacked_bars(big, x="bucket_start", y="value", color="workflow", money=True)
    assert wide.layout.margin.l == charts.money_margin(1_300_000)
    burn = charts.budget_burn(series([1.0, 2.0]), day="bucket_start", cost="value",
                              budget=2_000_000.0, month_end=DAY + timedelta(days=21),
                              projection=10.0)
    assert burn.layout.margin.l == charts.money_margin(2_000_000)


def test_axes_of_names_keep_automargin():
    mix = pl.DataFrame({"workflow": ["a_rather_long_workflow_name"], "uncached_input_tokens": [10],
                        "cached_input_tokens": [5], "output_tokens": [3], "total_tokens": [18]})
    assert automargin(charts.token_mix(mix, label="workflow").layout.yaxis)
    pair = charts.category_pair(["gpt-4o-2024-11-20"], [0.5], [0.7], title="Responded model")
    assert automargin(pair.layout.xaxis)
