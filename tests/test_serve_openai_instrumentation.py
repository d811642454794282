"""The official OpenAI instrumentation on the real `openai` client, live into `stepscope serve`.

`tests/fixtures/instrumentation/workload.py` (the app that made the committed payloads)
runs against the local fake OpenAI API and exports straight to the server: traces over
/v1/traces and the message content the instrumentation sends as log events over
/v1/logs. What the server stores must match what the committed payloads of the same
workload give, and the content events must hang on the model-call spans.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from serve_harness import FIXTURES, ServeProcess, fixture, post, wait_for_rows

from stepscope.store import Store

pytest.importorskip("opentelemetry.instrumentation.openai_v2",
                    reason="needs the test extra (opentelemetry-instrumentation-openai-v2)")
sys.path.insert(0, str(FIXTURES))
from fake_openai import start_fake_openai

SUMMARY = """
SELECT s.outcome, count(*) AS steps,
       count(*) FILTER (WHERE t.step_kind = 'llm') AS model_calls,
       sum(t.input_tokens) AS input_tokens, sum(t.output_tokens) AS output_tokens,
       count(*) FILTER (WHERE t.status_code = 'error') AS errors
FROM steps t JOIN steps s ON s.trace_id = t.trace_id AND s.is_root
WHERE t.service_name = ?
GROUP BY ALL ORDER BY s.outcome
"""


def _summary(db, service: str) -> list[tuple]:
    with Store.open(db).connect() as reader:
        return reader.execute(SUMMARY, [service]).fetchall()


def test_openai_v2_instrumentation_live_matches_its_committed_payloads(tmp_path):
    fake = start_fake_openai()
    live_db, reference_db = tmp_path / "live", tmp_path / "reference"
    server = ServeProcess(live_db)
    try:
        env = {**os.environ, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
        run = subprocess.run(
            [sys.executable, str(FIXTURES / "workload.py"), "--instrumentation", "openai-v2",
             "--service-name", "ticket-triage-openai-v2",
             "--openai-base-url", f"http://127.0.0.1:{fake.server_address[1]}/v1",
             "--otlp-endpoint", f"http://127.0.0.1:{server.port}"],
            env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        live_spans = wait_for_rows(live_db, 10)
        live_events = wait_for_rows(live_db, 13, dataset="content_events")
    finally:
        fake.shutdown()
        assert server.terminate() == 0
    assert (live_spans, live_events) == (10, 13)

    reference = ServeProcess(reference_db)
    try:
        assert post(reference.port, "/v1/traces", fixture("openai-v2.traces.pb"))[0] == 200
        assert post(reference.port, "/v1/logs", fixture("openai-v2.logs.pb"))[0] == 200
    finally:
        assert reference.terminate() == 0

    live = _summary(live_db, "ticket-triage-openai-v2")
    assert live == _summary(reference_db, "ticket-triage-openai-v2")
    assert [row[0] for row in live] == ["completed", "escalated"]
    with Store.open(live_db).connect() as reader:
        attached = reader.execute(
            "SELECT e.event_name, s.step_kind, count(*) FROM content_events e "
            "JOIN steps s USING (trace_id, span_id) GROUP BY ALL ORDER BY ALL").fetchall()
        assert attached == [("gen_ai.choice", "llm", 3), ("gen_ai.system.message", "llm", 5),
                            ("gen_ai.user.message", "llm", 5)]
