"""Workflow, outcome and tenant come from the root span, through the configuration."""

from __future__ import annotations

from normalise_helpers import by_name, config, steps
from otlp_builders import STATUS_ERROR, STATUS_OK, span

ROOT_FIELDS = ("workflow", "outcome", "outcome_source", "tenant_id")


def fields(row: dict) -> tuple:
    return tuple(row[f] for f in ROOT_FIELDS)


def test_root_carries_workflow_outcome_tenant_and_children_do_not():
    rows = by_name(steps([
        span("ticket_triage", trace=1, span=1, attributes={
            "gen_ai.workflow.name": "triage", "task.outcome": "Resolved", "tenant.id": "acme"}),
        span("chat", trace=1, span=2, parent=1, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.workflow.name": "triage",
            "tenant.id": "acme", "task.outcome": "failed"}),
    ]))
    assert rows["ticket_triage"]["is_root"] is True
    assert fields(rows["ticket_triage"]) == ("triage", "completed", "attribute", "acme")
    assert rows["chat"]["is_root"] is False
    assert fields(rows["chat"]) == (None, None, None, None)


def test_outcome_values_match_case_insensitively_and_others_are_unknown():
    rows = steps([
        span(f"run {i}", trace=i, span=i, attributes={"task.outcome": value})
        for i, value in enumerate(["SUCCESS", " handoff ", "Abandoned", "maybe"], start=1)
    ])
    assert [(r["outcome"], r["outcome_source"]) for r in rows] == [
        ("completed", "attribute"), ("escalated", "attribute"), ("failed", "attribute"),
        ("unknown", "attribute")]


def test_outcome_from_root_status_when_absent_is_marked_as_such():
    rows = steps([
        span("ok run", trace=1, span=1, status=STATUS_OK),
        span("unset run", trace=2, span=2),
        span("failed run", trace=3, span=3, status=STATUS_ERROR, status_message="crashed"),
    ])
    assert [(r["outcome"], r["outcome_source"]) for r in rows] == [
        ("completed", "status"), ("completed", "status"), ("failed", "status")]


def test_workflow_falls_back_to_root_name_unless_disabled():
    spans = [span("nightly_digest", trace=1, span=1)]
    assert steps(spans)[0]["workflow"] == "nightly_digest"
    cfg = config(workflow={"fallback_to_root_name": False})
    assert steps(spans, cfg)[0]["workflow"] is None


def test_configured_keys_replace_the_defaults():
    cfg = config(
        workflow={"attributes": ["app.flow"]},
        outcome={"attribute": "result", "completed": ["done"], "escalated": ["to_human"],
                 "failed": ["gave_up"]},
        tenant={"attributes": ["org"]},
    )
    rows = steps([
        span("a", trace=1, span=1, attributes={
            "app.flow": "refunds", "result": "TO_HUMAN", "org": "initech",
            "gen_ai.workflow.name": "ignored", "tenant.id": "ignored"}),
        span("b", trace=2, span=2, attributes={"result": "completed"}),
    ], cfg)
    assert fields(rows[0]) == ("refunds", "escalated", "attribute", "initech")
    assert fields(rows[1]) == ("b", "unknown", "attribute", None)


def test_tenant_from_resource_when_the_root_span_lacks_it():
    rows = steps([span("run", trace=1, span=1)],
                 resource={"service.name": "api", "tenant.id": "globex"})
    assert rows[0]["tenant_id"] == "globex"


def test_first_configured_workflow_key_wins():
    rows = steps([span("run", trace=1, span=1, attributes={
        "traceloop.workflow.name": "second", "gen_ai.workflow.name": "first"})])
    assert rows[0]["workflow"] == "first"


def test_a_span_whose_parent_is_elsewhere_is_not_a_root():
    rows = steps([span("chat", trace=1, span=2, parent=1, attributes={"task.outcome": "done"})])
    assert (rows[0]["is_root"], rows[0]["parent_span_id"]) == (False, "0000000000000001")
    assert fields(rows[0]) == (None, None, None, None)
