"""Durations, instants and windows as the interface conventions define them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stepscope.timeparse import (
    TimeSpecError,
    iso_utc,
    parse_duration,
    parse_instant,
    parse_iso_week,
    parse_window,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("5m", timedelta(minutes=5)), ("24h", timedelta(hours=24)),
     ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2))],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "7y", "d7", "", "-1d"])
def test_bad_durations_say_what_was_expected(text):
    with pytest.raises(TimeSpecError, match="expected N followed by s, m, h, d or w"):
        parse_duration(text)


def test_instant_without_offset_is_utc():
    assert parse_instant("2026-11-17T09:00") == datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def test_instant_with_offset_is_converted_to_utc():
    assert parse_instant("2026-11-17T10:00+01:00") == datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def test_instant_with_z():
    assert parse_instant("2026-11-17T09:00:00Z") == datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def test_relative_instants_end_at_now():
    assert parse_instant("now", NOW) == NOW
    assert parse_instant("now-7d", NOW) == NOW - timedelta(days=7)
    assert parse_instant("now+1h", NOW) == NOW + timedelta(hours=1)


def test_bad_instant():
    with pytest.raises(TimeSpecError, match="not an instant"):
        parse_instant("yesterday", NOW)


def test_window_is_half_open_start_end():
    window = parse_window("now-7d..now", NOW)
    assert (window.start, window.end) == (NOW - timedelta(days=7), NOW)


def test_window_from_bare_duration_ends_now():
    window = parse_window("24h", NOW)
    assert (window.start, window.end) == (NOW - timedelta(hours=24), NOW)


def test_window_end_must_follow_start():
    with pytest.raises(TimeSpecError, match="not after its start"):
        parse_window("2026-11-10..2026-11-01", NOW)


def test_iso_week_is_utc_monday_to_monday():
    week = parse_iso_week("2026-W47")
    assert week.start == datetime(2026, 11, 16, tzinfo=UTC)
    assert week.end == datetime(2026, 11, 23, tzinfo=UTC)


def test_iso_utc_spelling():
    assert iso_utc(datetime(2026, 11, 17, 9, 0, tzinfo=UTC)) == "2026-11-17T09:00:00Z"
    assert iso_utc(datetime(2026, 11, 17, 9, 0)) == "2026-11-17T09:00:00Z"
