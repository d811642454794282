"""Global filters: the query-string form a view is shared by."""

from __future__ import annotations

from datetime import UTC, date, datetime

from stepscope.dashboard.filters import (
    DEFAULT_RANGE,
    GlobalFilters,
    custom_range,
    filters_from_query,
    merge_query,
    normalise_range,
    range_dates,
)
from stepscope.timeparse import Window

NOW = datetime(2026, 11, 16, 12, tzinfo=UTC)


def accessor(query: dict[str, list[str]]):
    return lambda key: query.get(key, [])


def test_filters_round_trip_through_the_query_string():
    filters = GlobalFilters(range="24h", workflows=("refund_request", "kb_answer"),
                            models=("gpt-4o",), tenants=("globex",))
    query = filters.to_query()
    assert query == {"range": "24h", "workflow": ["refund_request", "kb_answer"],
                     "model": ["gpt-4o"], "tenant": ["globex"]}
    assert filters_from_query(accessor({k: v if isinstance(v, list) else [v]
                                        for k, v in query.items()})) == filters


def test_the_default_range_and_empty_dimensions_stay_out_of_the_url():
    assert GlobalFilters().to_query() == {}
    assert filters_from_query(accessor({})) == GlobalFilters(range=DEFAULT_RANGE)


def test_a_relative_range_ends_at_now():
    assert GlobalFilters(range="7d").window(NOW) == Window(datetime(2026, 11, 9, 12, tzinfo=UTC), NOW)


def test_ranges_are_normalised_and_bad_ones_fall_back_to_the_default():
    assert normalise_range(" 168h ") == "168h"
    assert normalise_range("2026-11-01..2026-11-08") == "2026-11-01T00:00:00Z..2026-11-08T00:00:00Z"
    assert normalise_range("last tuesday") == DEFAULT_RANGE
    assert normalise_range("2026-11-08..2026-11-01") == DEFAULT_RANGE
    assert normalise_range(None) == DEFAULT_RANGE


def test_custom_dates_cover_whole_utc_days_inclusive():
    text = custom_range(date(2026, 11, 2), date(2026, 11, 8))
    assert text == "2026-11-02T00:00:00Z..2026-11-09T00:00:00Z"
    assert range_dates(text, NOW) == (date(2026, 11, 2), date(2026, 11, 8))


def test_merging_keeps_page_keys_and_replaces_filter_keys():
    current = {"trace": ["abc"], "workflow": ["old"], "range": ["24h"]}
    merged = merge_query(current, GlobalFilters(workflows=("new",)))
    assert merged == {"trace": ["abc"], "workflow": ["new"]}
    merged = merge_query(current, GlobalFilters(), page_params={"trace": None, "outcome": "failed"})
    assert merged == {"outcome": ["failed"]}


def test_duplicate_values_in_the_url_count_once():
    filters = filters_from_query(accessor({"workflow": ["a", "a", "", "b"]}))
    assert filters.workflows == ("a", "b")


def test_active_dimensions_name_what_narrows_the_view():
    filters = GlobalFilters(environments=("production",), service_versions=("2.0.0",))
    assert filters.active_dimensions() == [("Environment", ("production",)),
                                           ("Service version", ("2.0.0",))]
