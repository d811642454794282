"""The official OpenTelemetry Python SDK and its OTLP/HTTP exporters, pointed at `stepscope serve`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from serve_harness import ServeProcess, wait_for_rows

from stepscope.store import Store

WORKFLOW = "ticket_triage"
RUNS = 3


def _send_traces_and_logs(port: int) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    resource = Resource.create({"service.name": "support-bot", "service.version": "2.1.0",
                                "deployment.environment.name": "prod"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs")))
    tracer = tracer_provider.get_tracer("support-bot.agent")
    logger = logger_provider.get_logger("opentelemetry.instrumentation.openai_v2")
    for run in range(RUNS):
        with tracer.start_as_current_span(WORKFLOW, attributes={
            "gen_ai.workflow.name": WORKFLOW, "task.outcome": "completed", "tenant.id": "acme",
        }):
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300,
            }):
                logger.emit(event_name="gen_ai.user.message", attributes={"gen_ai.system": "openai"},
                            body={"content": f"Run {run}: my e-mail is jane.doe@example.com"})
                logger.emit(event_name="gen_ai.choice", attributes={"gen_ai.system": "openai"},
                            body={"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Done."}})
            with tracer.start_as_current_span("execute_tool kb_search", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "kb_search",
            }):
                pass
    tracer_provider.shutdown()    # flushes the batch processor through the exporter
    logger_provider.shutdown()


def test_sdk_exporter_spans_arrive_with_workflow_and_tokens(tmp_path):
    db = tmp_path / "db"
    server = ServeProcess(db)
    try:
        _send_traces_and_logs(server.port)
        assert wait_for_rows(db, RUNS * 3) == RUNS * 3
        assert wait_for_rows(db, RUNS * 2, dataset="content_events") == RUNS * 2
    finally:
        assert server.terminate() == 0

    with Store.open(db).connect() as reader:
        roots = reader.execute(
            "SELECT workflow, outcome, tenant_id, service_name, service_version, environment "
            "FROM steps WHERE is_root").fetchall()
        assert roots == [(WORKFLOW, "completed", "acme", "support-bot", "2.1.0", "prod")] * RUNS
        calls = reader.execute(
            "SELECT step_kind, request_model, response_model, provider, "
            "sum(input_tokens), sum(output_tokens), count(*) "
            "FROM steps WHERE NOT is_root GROUP BY ALL ORDER BY step_kind").fetchall()
        assert calls == [
            ("llm", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", RUNS * 1200, RUNS * 300, RUNS),
            ("tool", None, None, None, None, None, RUNS),
        ]
        # Every model call hangs under a root of the workflow, by trace.
        assert reader.execute(
            "SELECT count(*) FROM steps s JOIN steps r ON r.trace_id = s.trace_id AND r.is_root "
            "WHERE s.step_kind = 'llm' AND r.workflow = ?", [WORKFLOW]).fetchone()[0] == RUNS
        # Content events from the log exporter, attached to the model-call spans, redacted.
        events = reader.execute(
            "SELECT e.event_name, e.role, e.content, s.step_kind FROM content_events e "
            "JOIN steps s USING (trace_id, span_id) ORDER BY e.time_ns").fetchall()
        assert events[:2] == [
            ("gen_ai.user.message", "user", "Run 0: my e-mail is [REDACTED:email]", "llm"),
            ("gen_ai.choice", "assistant", "Done.", "llm"),
        ]
        assert len(events) == RUNS * 2


def test_sdk_exporter_runs_are_priced_per_workflow(tmp_path):
    """`stepscope kpis` on the received runs, while the server runs, with an exact user price."""
    db = tmp_path / "db"
    config = tmp_path / "stepscope.toml"
    config.write_text(
        '[[prices]]\nmatch = "gpt-4o-mini*"\nmatch_type = "glob"\n'
        "input_per_mtok = 0.15\noutput_per_mtok = 0.60\n")
    server = ServeProcess(db, "--config", str(config))
    try:
        _send_traces_and_logs(server.port)
        assert wait_for_rows(db, RUNS * 3) == RUNS * 3
        kpis = subprocess.run(
            [sys.executable, "-c", "from stepscope.cli import main; main()", "kpis",
             "--db", str(db), "--config", str(config), "--format", "json"],
            capture_output=True, text=True, timeout=300)
    finally:
        assert server.terminate() == 0
    assert kpis.returncode == 0, kpis.stderr
    (row,) = json.loads(kpis.stdout)
    assert row["workflow"] == WORKFLOW
    assert (row["runs"], row["completed"], row["llm_calls"], row["tool_calls"]) == (RUNS, RUNS, RUNS, RUNS)
    assert (row["input_tokens"], row["output_tokens"]) == (RUNS * 1200, RUNS * 300)
    assert row["unpriced_llm_calls"] == 0
    # Per run: 1200 input tokens at $0.15/M plus 300 output tokens at $0.60/M = $0.00036.
    assert row["cost_usd"] == pytest.approx(RUNS * 0.00036)
    assert row["cost_per_completed_task_usd"] == pytest.approx(0.00036)
