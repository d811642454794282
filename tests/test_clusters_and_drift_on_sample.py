"""The planted incidents of the bundled sample, found where ground_truth.json says.

The sample is ingested once per session through the real pipeline (OTLP files ->
ingest -> store); a second store gets the same files in reverse order, to show that
cluster ids depend on the failures alone.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner

from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.drift import Side, drift_findings
from stepscope.analytics.filters import Filters
from stepscope.cli import cli
from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths, iter_input_files
from stepscope.sample_traces import bundled_sample_dir, bundled_traces_dir
from stepscope.store import Store
from stepscope.timeparse import Window, parse_instant

CLUSTER_KEYS = ["cluster_id", "label", "count", "error_type", "http_status", "workflows", "tools",
                "models", "service_versions", "first_seen", "last_seen", "is_new", "trend",
                "trend_start", "trend_bucket", "example_trace_ids", "member_ids"]
FINDING_KEYS = ["metric", "workflow", "model", "baseline", "current", "effect_size", "p_value",
                "severity", "likely_cause"]


@pytest.fixture(scope="session")
def truth() -> dict[str, dict[str, Any]]:
    data = json.loads((bundled_sample_dir() / "ground_truth.json").read_text())
    return {incident["id"]: incident for incident in data["incidents"]}


def _ingest(path, files) -> Store:
    store = Store.open(path, create=True)
    report = ingest_paths(store, files, Config())
    assert report.rejected == []
    return store


@pytest.fixture(scope="session")
def reversed_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    files = list(iter_input_files([bundled_traces_dir()]))
    assert len(files) > 10
    return _ingest(tmp_path_factory.mktemp("sample-reversed") / "db", files[::-1])


@pytest.fixture(scope="session")
def con(sample_store: Store):
    with sample_store.connect() as connection:
        yield connection


def _instant(text: str | None) -> datetime | None:
    return parse_instant(text) if text else None


def _window(spec: dict[str, str]) -> Window:
    return Window(parse_instant(spec["start"]), parse_instant(spec["end"]))


def _side(spec: dict[str, str]) -> Side:
    return Side(window=_window(spec))


# -- failure clusters ---------------------------------------------------------------------


def test_the_429_burst_is_one_cluster_with_the_ground_truth_count(con, truth) -> None:
    burst = truth["issue-refund-429-burst"]
    details = burst["details"]
    rows = [r for r in failure_clusters(con).to_dicts() if r["http_status"] == 429]
    assert len(rows) == 1
    (cluster,) = rows
    assert cluster["count"] == details["failed_steps"] == 61
    assert cluster["error_type"] == details["error_type"]
    assert cluster["label"] == details["template"]
    assert cluster["tools"] == [burst["tool"]]
    assert cluster["workflows"] == [burst["workflow"]]
    assert cluster["first_seen"] == parse_instant(details["first_seen"])
    assert cluster["last_seen"] == parse_instant(details["last_seen"])
    assert len(cluster["member_ids"]) == 1
    # All of it falls inside the incident's three hours.
    inside = failure_clusters(con, Filters(since=_instant(burst["start"]), until=_instant(burst["end"])))
    assert inside.filter(inside["cluster_id"] == cluster["cluster_id"])["count"].to_list() == [61]


def test_the_day_12_error_is_the_one_new_cluster(con, truth) -> None:
    incident = truth["settings-schema-error"]
    details = incident["details"]
    current = _window(incident["current_window"])
    frame = failure_clusters(con, Filters(since=current.start, until=current.end),
                             baseline=_window(incident["baseline_window"]))
    new = [r for r in frame.to_dicts() if r["is_new"]]
    assert len(new) == 1
    (cluster,) = new
    assert (cluster["error_type"], cluster["http_status"]) == (details["error_type"], details["http_status"])
    assert cluster["count"] == details["failed_steps"]
    assert cluster["tools"] == [incident["tool"]]
    assert cluster["first_seen"] == parse_instant(details["first_seen"])
    # Before its start it was never seen.
    before = failure_clusters(con, Filters(until=_instant(incident["start"])))
    assert cluster["cluster_id"] not in before["cluster_id"].to_list()


def test_one_outage_seen_by_two_tools_is_shown_as_one_cluster_with_both_ids(con) -> None:
    (zendesk,) = [r for r in failure_clusters(con).to_dicts() if r["error_type"] == "ZendeskAPIError"]
    assert zendesk["tools"] == ["create_ticket", "update_ticket"]
    assert len(zendesk["member_ids"]) == 2
    assert zendesk["cluster_id"] in zendesk["member_ids"]


def test_cluster_ids_survive_reingesting_in_another_order(con, reversed_store: Store, truth) -> None:
    incident = truth["settings-schema-error"]
    calls = [dict(), dict(filters=Filters(since=_instant(incident["start"])))]
    with reversed_store.connect() as other:
        for kwargs in calls:
            expected = failure_clusters(con, **kwargs)
            again = failure_clusters(other, **kwargs)
            assert again["cluster_id"].to_list() == expected["cluster_id"].to_list()
            assert again.equals(expected)


# -- drift --------------------------------------------------------------------------------


def _findings(con, incident: dict[str, Any]) -> list[dict[str, Any]]:
    frame = drift_findings(con, _side(incident["baseline_window"]), _side(incident["current_window"]))
    return frame.to_dicts()


def _one(findings: list[dict], metric: str, workflow: str, model: str | None = None) -> dict:
    matches = [f for f in findings
               if (f["metric"], f["workflow"], f["model"]) == (metric, workflow, model)]
    assert len(matches) == 1, f"no single {metric} finding for {workflow}/{model}: {findings}"
    return matches[0]


def test_release_v2_doubles_p95_run_latency_and_is_named_as_the_cause(con, truth) -> None:
    incident = truth["release-v2-latency"]
    finding = _one(_findings(con, incident), "run_latency_ms", incident["workflow"])
    effect = incident["effect"]
    assert finding["baseline"]["p95"] == pytest.approx(effect["baseline"], rel=1e-9)
    assert finding["current"]["p95"] == pytest.approx(effect["current"], rel=1e-9)
    assert finding["current"]["p95"] / finding["baseline"]["p95"] == pytest.approx(effect["factor"])
    assert finding["severity"] == "critical"
    assert finding["p_value"] <= 0.01
    version = incident["details"]["service_version_after"][0]
    assert finding["likely_cause"].startswith(f"service_version {version} of {incident['service']}")


def test_release_v2_by_service_version_selection(con, truth) -> None:
    incident = truth["release-v2-latency"]
    details = incident["details"]
    frame = drift_findings(con, Side(service_version=details["service_version_before"]),
                           Side(service_version=details["service_version_after"][0]),
                           filters=Filters(workflows=(incident["workflow"],)))
    finding = _one(frame.to_dicts(), "run_latency_ms", incident["workflow"])
    assert finding["current"]["p95"] / finding["baseline"]["p95"] > 1.8
    assert "service_version 2.0.0" in finding["likely_cause"]


def test_model_swap_raises_output_tokens_and_names_the_new_model(con, truth) -> None:
    incident = truth["triage-model-swap"]
    findings = _findings(con, incident)
    finding = _one(findings, "output_tokens_per_call", incident["workflow"])
    assert finding["effect_size"] > 1.2
    assert finding["current"]["mean"] / finding["baseline"]["mean"] > 1.2
    assert finding["likely_cause"].startswith(f"model {incident['model']}")
    cost = _one(findings, "cost_per_run_usd", incident["workflow"])
    assert cost["effect_size"] > 1.5
    assert cost["likely_cause"].startswith(f"model {incident['model']}")


def test_silent_model_version_update_is_a_finding(con, truth) -> None:
    incident = truth["gpt-4o-silent-update"]
    details = incident["details"]
    finding = _one(_findings(con, incident), "responded_model_version", incident["workflow"],
                   incident["model"])
    assert {s["value"]: s["share"] for s in finding["baseline"]["shares"]} == incident["effect"]["baseline"]
    assert {s["value"]: s["share"] for s in finding["current"]["shares"]} == incident["effect"]["current"]
    assert finding["baseline"]["n"] == sum(details["calls_baseline"].values())
    assert finding["current"]["n"] == sum(details["calls_current"].values())
    assert finding["effect_size"] == pytest.approx(1.0)
    assert finding["severity"] in ("warning", "critical")
    assert finding["likely_cause"] == (f"responded model version {details['response_model_after']} "
                                       f"(first seen {details['new_version_first_seen']})")


# -- the commands --------------------------------------------------------------------------


def _run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_clusters_json_has_exactly_the_cluster_keys(sample_store: Store, truth) -> None:
    incident = truth["settings-schema-error"]
    out = json.loads(_run("clusters", "--db", str(sample_store.path), "--format", "json",
                          "--since", incident["current_window"]["start"],
                          "--baseline", f"{incident['baseline_window']['start']}.."
                                        f"{incident['baseline_window']['end']}"))
    assert all(list(row) == CLUSTER_KEYS for row in out)
    new = [row for row in out if row["is_new"]]
    assert [row["error_type"] for row in new] == ["SettingsSchemaError"]
    assert new[0]["first_seen"] == incident["details"]["first_seen"]
    table = _run("clusters", "--db", str(sample_store.path), "--workflow", "refund_request")
    assert "RateLimitError" in table and "SettingsSchemaError" not in table


def test_drift_json_has_exactly_the_finding_keys(sample_store: Store, truth) -> None:
    incident = truth["release-v2-latency"]
    b, c = incident["baseline_window"], incident["current_window"]
    out = json.loads(_run("drift", "--db", str(sample_store.path), "--format", "json",
                          "--baseline", f"{b['start']}..{b['end']}",
                          "--current", f"{c['start']}..{c['end']}"))
    assert out and all(list(row) == FINDING_KEYS for row in out)
    assert {row["severity"] for row in out} <= {"info", "warning", "critical"}
    latency = [r for r in out if (r["metric"], r["workflow"]) == ("run_latency_ms", "kb_answer")]
    assert latency[0]["baseline"]["p95"] == pytest.approx(incident["effect"]["baseline"])
    # The default windows end at --now: the last 24 hours against the 7 days before.
    table = _run("drift", "--db", str(sample_store.path), "--now", incident["current_window"]["end"])
    assert "severity" in table.splitlines()[0]


def test_drift_rejects_a_side_it_cannot_read(sample_store: Store) -> None:
    result = CliRunner().invoke(cli, ["drift", "--db", str(sample_store.path), "--baseline", "lastweek"])
    assert result.exit_code == 2
    assert "--baseline" in result.output
    result = CliRunner().invoke(cli, ["drift", "--db", str(sample_store.path),
                                      "--current", "service_version=2.0.0"])
    assert result.exit_code == 2
