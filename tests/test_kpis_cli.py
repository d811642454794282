"""`stepscope kpis`, `spend` and `prices` on the command line: formats, keys and errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from analytics_store import llm, make_store, root, tool
from click.testing import CliRunner

from stepscope.analytics import KPI_KEYS, STEP_KPI_KEYS
from stepscope.cli import cli

SPECS = [
    root("a", "triage", tenant="acme"), llm("a", "c", "gpt-4o", ttft_s=0.5), tool("a", "t"),
    root("b", "refund", "escalated", tenant="acme"),
    llm("b", "c", "gpt-4o-mini", ttft_s=0.25), llm("b", "d", "gpt-4o"),
    llm("running", "c", "gpt-4o"),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return str(make_store(tmp_path_factory.mktemp("cli") / "store", SPECS).path)


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_json_is_a_list_of_objects_with_the_group_keys_and_exactly_the_kpi_keys(db):
    result = run("kpis", "--db", db, "--format", "json", "--by", "workflow,day")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [list(r) for r in rows] == [["workflow", "day", *KPI_KEYS]] * 3
    refund = next(r for r in rows if r["workflow"] == "refund")
    assert refund["day"] == "2026-11-17"
    assert refund["escalation_rate"] == 1.0
    assert refund["tool_success_rate"] is None            # null, never NaN
    assert refund["cost_per_completed_task_usd"] is None
    assert "NaN" not in result.output


def test_csv_and_table(db):
    result = run("kpis", "--db", db, "--format", "csv", "--by", "model")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == ["model", *KPI_KEYS]
    assert {r["model"]: r["runs"] for r in rows} == {"gpt-4o": "3", "gpt-4o-mini": "1"}
    table = run("kpis", "--db", db, "--by", "model")
    assert table.exit_code == 0
    assert "note: with --by model a run counts under each chat model it used" in table.output
    assert "note: runs still running count in runs and sums but in no rate" in table.output


def test_step_level_figures_per_model_and_per_tool(db):
    result = run("kpis", "--db", db, "--steps", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.output)}
    assert list(rows["gpt-4o"]) == ["model", "step_kind", *STEP_KPI_KEYS]
    assert (rows["gpt-4o"]["calls"], rows["gpt-4o"]["streamed_calls"]) == (3, 1)
    assert rows["gpt-4o"]["ttft_p50_ms"] == 500.0
    tools = json.loads(run("kpis", "--db", db, "--steps", "--by", "tool", "--format",
                           "json").output)
    assert [(t["tool"], t["calls"], t["error_rate"]) for t in tools] == [("lookup_order", 1, 0.0)]


def test_filters(db):
    def runs(*flags):
        result = run("kpis", "--db", db, "--format", "json", *flags)
        assert result.exit_code == 0, result.output
        return {r["workflow"]: r["runs"] for r in json.loads(result.output)}

    assert runs("--workflow", "refund") == {"refund": 1}
    assert runs("--model", "gpt-4o-mini") == {"refund": 1}
    assert runs("--tenant", "acme") == {"triage": 1, "refund": 1}
    assert runs("--since", "2026-11-17T09:00:01Z") == {}
    assert runs("--since", "now-1d", "--now", "2026-11-18T00:00:00Z") == {
        "triage": 1, "refund": 1, None: 1}


@pytest.mark.parametrize(("args", "flag"), [
    (["--by", "colour"], "--by"),
    (["--steps", "--by", "workflow,day"], "--by"),
    (["--since", "last tuesday"], "--since"),
])
def test_usage_errors_exit_2_naming_the_flag(db, args, flag):
    result = run("kpis", "--db", db, *args)
    assert result.exit_code == 2
    assert flag in result.output


def test_a_missing_store_is_a_usage_error(tmp_path):
    result = run("kpis", "--db", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "no store here yet" in result.output


def test_spend_by_workflow_over_the_whole_selection(db):
    result = run("spend", "--db", db, "--by", "workflow", "--bucket", "total", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["workflow"]: r for r in json.loads(result.output)}
    # refund: gpt-4o-mini 0.00021 + gpt-4o 0.0035
    assert rows["refund"]["cost_usd"] == pytest.approx(0.00371)
    assert rows["refund"]["price_sources"].count("genai-prices") == 2


def test_prices_of_a_model_and_of_the_store(db, tmp_path):
    config = tmp_path / "stepscope.toml"
    config.write_text('[[prices]]\nmatch = "gpt-4o"\ninput_per_mtok = 2.0\n'
                      'output_per_mtok = 8.0\neffective_from = 2026-12-01\n')
    result = run("prices", "--model", "gpt-4o", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    library, negotiated = json.loads(result.output)
    assert (library["effective_to"], library["input_per_mtok"]) == ("2026-12-01", 2.5)
    assert library["price_source"].startswith("genai-prices ")
    assert (negotiated["effective_from"], negotiated["input_per_mtok"]) == ("2026-12-01", 2.0)
    assert negotiated["price_source"] == "stepscope.toml prices[0]: gpt-4o"
    at = json.loads(run("prices", "--model", "gpt-4o", "--config", str(config), "--at",
                        "2026-12-05", "--format", "json").output)
    assert [r["input_per_mtok"] for r in at] == [2.0]
    store = json.loads(run("prices", "--db", db, "--format", "json").output)
    assert {(r["request_model"], r["calls"]) for r in store} == {("gpt-4o", 3),
                                                                ("gpt-4o-mini", 1)}
