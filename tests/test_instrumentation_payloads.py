"""Real payloads of three OpenAI instrumentations normalise to what they really recorded.

tests/fixtures/instrumentation/ holds OTLP requests exported by the real packages while
the real `openai` client called a fake API; expected.json says what each span states.
Every encoding of the same spans gives the same steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from normalise_helpers import decode

from stepscope.config import Config
from stepscope.ingest.normalise import normalise

FIXTURES = Path(__file__).parent / "fixtures" / "instrumentation"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
STATUS = {0: "unset", 1: "ok", 2: "error"}


def load(stem: str, encoding: str) -> list[dict[str, Any]]:
    path = FIXTURES / f"{stem}.traces.{encoding}"
    raw = decode(path.read_bytes(), "proto" if encoding == "pb" else "json", path.name)
    table = normalise(duckdb.connect(), raw, Config())
    return table.drop_columns(["ingested_at", "source_file"]).to_pylist()


@pytest.fixture(scope="module", params=sorted(EXPECTED["traces"]))
def payload(request) -> tuple[str, dict[str, dict[str, Any]]]:
    rows = load(request.param, "pb")
    return request.param, {row["span_id"]: row for row in rows}


def test_model_calls(payload):
    stem, rows = payload
    for call in EXPECTED["traces"][stem]["model_calls"]:
        row = rows[call["span_id"]]
        assert row["step_kind"] == ("embedding" if call["operation"] == "embeddings" else "llm")
        assert row["status_code"] == STATUS[call["status_code"]]
        assert (row["request_model"], row["response_model"]) == (
            call["request_model"], call["response_model"])
        assert row["provider"] == call["provider"]
        assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (
            call["input_tokens"], call["output_tokens"], call["cached_tokens"]), call["call"]
        error = call["error"]
        if error is None:
            assert (row["error_type"], row["http_status"]) == (None, None)
        else:
            assert row["error_type"] == (error["error_type"] or error["exception_type"])
            assert row["http_status"] == error["http_status"]
            assert row["status_message"] == error["status_message"]


def test_tool_calls(payload):
    stem, rows = payload
    for tool in EXPECTED["traces"][stem]["tool_calls"]:
        row = rows[tool["span_id"]]
        assert (row["step_kind"], row["tool_name"], row["tool_call_id"]) == (
            "tool", tool["tool_name"], tool["tool_call_id"])
        assert row["status_code"] == STATUS[tool["status_code"]]
        assert row["error_type"] == tool["error_type"]


def test_roots_carry_the_trace_level_fields(payload):
    stem, rows = payload
    for root in EXPECTED["traces"][stem]["roots"]:
        row = rows[root["span_id"]]
        assert row["is_root"] is True
        assert (row["workflow"], row["outcome"], row["outcome_source"]) == (
            root["workflow"], root["task_outcome"], "attribute")
        assert (row["tenant_id"], row["session_id"], row["user_id"]) == (
            root["tenant_id"], root["session_id"], root["user_id"])
    roots = [r for r in rows.values() if r["is_root"]]
    assert len(roots) == EXPECTED["traces"][stem]["trace_count"]
    assert all(r["workflow"] is None for r in rows.values() if not r["is_root"])


def test_service_and_counts(payload):
    stem, rows = payload
    expected = EXPECTED["traces"][stem]
    assert len(rows) == expected["span_count"]
    assert {r["service_name"] for r in rows.values()} == {expected["service_name"]}
    assert {r["environment"] for r in rows.values()} == {"staging"}
    assert {r["scope_name"] for r in rows.values()} == set(expected["scopes"])


def test_tokens_add_up_to_what_the_fake_api_answered(payload):
    stem, rows = payload
    answered = EXPECTED["workload"]
    calls = {c["call"]: rows[c["span_id"]] for c in EXPECTED["traces"][stem]["model_calls"]}
    for name, row in calls.items():
        if row["input_tokens"] is not None:
            assert row["input_tokens"] == answered[name]["input_tokens"]
    total = sum(r["input_tokens"] or 0 for r in rows.values())
    assert total == 44 + 15 + 260 + 42


@pytest.mark.parametrize("stem", sorted(EXPECTED["traces"]))
def test_protobuf_and_otlp_json_give_identical_steps(stem):
    assert load(stem, "pb") == load(stem, "json")
