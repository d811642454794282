"""`stepscope report`: the weekly review, as Markdown and as an HTML e-mail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from analytics_store import T0, llm, make_store, root, tool
from click.testing import CliRunner

from stepscope.analytics.report import weekly_report
from stepscope.analytics.report_render import render_html, render_markdown
from stepscope.cli import cli
from stepscope.commands.analytics_cmds import last_full_week
from stepscope.config import Config

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)          # 2026-W47
BEFORE = MONDAY - timedelta(days=7)                  # 2026-W46


def week_of_runs(prefix: str, monday: datetime, *, completed: int, failed: int, model: str,
                 version: str, latency_ms: float, tool_error: str | None = None) -> list:
    specs = []
    for i in range(completed + failed):
        start = monday + timedelta(days=1, minutes=10 * i)
        run = f"{prefix}{i}"
        failing = i >= completed
        specs += [
            root(run, "triage", "failed" if failing else "completed", start=start,
                 duration_ms=latency_ms + i, version=version),
            llm(run, "c", model, start=start, version=version),
            tool(run, "t", "issue_refund", start=start, version=version,
                 error=tool_error if failing else None,
                 message=f"Rate limit exceeded, retry after {i + 3}s" if failing else None),
        ]
    return specs


SPECS = (
    week_of_runs("old", BEFORE, completed=24, failed=1, model="gpt-4o-mini", version="1.0.0",
                 latency_ms=8_000)
    + week_of_runs("new", MONDAY, completed=18, failed=7, model="gpt-4o", version="1.1.0",
                   latency_ms=12_000, tool_error="RateLimitError")
    + [root("cap", "captions", start=MONDAY + timedelta(days=2), version="1.1.0"),
       llm("cap", "c", "acme-chartwriter-v1", provider="acme", start=MONDAY + timedelta(days=2),
           version="1.1.0")]
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("report") / "store", SPECS)
    with store.connect() as con:
        yield weekly_report(con, "2026-w47", Config())


def test_the_review_covers_the_iso_week_against_the_week_before(report):
    assert report.week == "2026-W47"
    assert (report.window.start, report.window.end) == (MONDAY, MONDAY + timedelta(days=7))
    assert report.previous.start == BEFORE
    totals = {r["metric"]: r for r in report.totals.to_dicts()}
    assert (totals["runs"]["baseline"], totals["runs"]["current"]) == (25.0, 26.0)


def test_markdown_has_every_section_with_week_over_week_changes(report):
    text = render_markdown(report)
    for heading in ("# Weekly agent review — 2026-W47", "## Summary", "## Notable changes",
                    "## Workflows", "## Top cost drivers", "## Top failure reasons",
                    "## Unpriced models"):
        assert heading in text
    assert "Mon 16 Nov 2026 to Sun 22 Nov 2026 (UTC)" in text
    # triage completion 24/25 = 96.0% -> 18/25 = 72.0%
    assert "| triage | 25 (+0%) | 72.0% (-24.0 pts) |" in text
    assert "**triage**: completion rate worsened from 96.0% to 72.0% (-24.0 pts)." in text
    assert "Release **1.1.0** of support-agent first seen Tue 17 Nov 00:00 UTC" in text
    assert "Model **gpt-4o** first used this week (25 calls)." in text
    assert "- acme-chartwriter-v1 (1 call)" in text


def test_failures_are_grouped_and_marked_new(report):
    (failure,) = report.failures.to_dicts()
    assert (failure["count"], failure["error_type"], failure["tools"], failure["is_new"]) == (
        7, "RateLimitError", ["issue_refund"], True)
    text = render_markdown(report)
    assert "New failure **RateLimitError**" in text
    # templates keep their placeholders visible in rendered Markdown
    assert re.search(r"retry after \\<NUM>s", text)


def test_cost_drivers_show_spend_against_last_week(report):
    drivers = report.cost_drivers.to_dicts()
    top = drivers[0]
    assert (top["workflow"], top["model"]) == ("triage", "gpt-4o")
    assert top["cost_usd"] == pytest.approx(25 * 0.0035)
    assert top["previous_cost_usd"] is None


def test_html_is_an_e_mail_with_inline_styles_only(report):
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>")
    assert "<style" not in html and "class=" not in html and "<script" not in html
    assert 'style="color:#cf222e;">-24.0 pts</span>' in html     # worse in red
    assert "<b>triage</b>" in html
    assert "&lt;NUM&gt;" in html


def test_report_command_writes_html_for_the_last_full_week(tmp_path):
    store = make_store(tmp_path / "store", SPECS[:6])
    out = tmp_path / "review.html"
    result = CliRunner().invoke(cli, ["report", "--db", str(store.path), "--format", "html",
                                      "--out", str(out), "--now", "2026-11-20T12:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "2026-W46" in out.read_text()
    assert last_full_week(T0) == "2026-W46"
    assert last_full_week(datetime(2027, 1, 4, tzinfo=UTC)) == "2026-W53"


def test_report_command_rejects_a_bad_week(tmp_path):
    store = make_store(tmp_path / "store", [])
    result = CliRunner().invoke(cli, ["report", "--db", str(store.path), "--week", "2026-47"])
    assert result.exit_code == 2
    assert "ISO week" in result.output
