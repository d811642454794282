"""A known history for the dashboard tests, sent through ingest as real OTLP payloads.

Two weeks before NOW (2026-11-16T00:00Z, a Monday), hand-chosen so that every figure
the pages show can be worked out on paper:

* `refund_request` (service billing-agent): in the previous week (Nov 2-8) 2 runs a
  day, all completed; in the current week (Nov 9-15) 4 runs a day, 3 completed and 1
  escalated. Each run: root span 2 s, one `gpt-4o` call (1000 input, 100 output
  tokens: $0.0035 at $2.50 / $10 per million), one `issue_refund` tool call. Version
  1.0.0 until Nov 12 12:00, then 1.1.0 (a release marker). On Nov 13 the first two
  runs' tool calls fail with HTTP 429 "Rate limit exceeded for tool issue_refund,
  retry after 30s" (a failure cluster, new in the current week).
* `kb_answer` (service helpcenter-bot, version 2.0.0): 2 runs a day in both weeks,
  all completed, root span 1 s; one `gpt-4o-mini` call (1000 input, 100 output tokens:
  $0.00021) and one call to `acme-llm-1`, a model with no known price (unpriced).

So in the current week: 42 runs, 35 completed, 7 escalated (completion 83.3%), spend
28 x $0.0035 + 14 x $0.00021 = $0.10094; in the previous week 28 runs, all completed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from otlp_builders import (
    SPAN_KIND_CLIENT,
    STATUS_ERROR,
    exception_event,
    request_of,
    resource_spans,
    span,
    to_protobuf,
)

from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths
from stepscope.store import Store
from stepscope.stores import open_store

NOW = datetime(2026, 11, 16, tzinfo=UTC)
NOW_TEXT = "2026-11-16T00:00:00Z"
WEEK = timedelta(days=7)
RELEASE_AT = datetime(2026, 11, 12, 12, tzinfo=UTC)
FAILURE_DAY = datetime(2026, 11, 13, tzinfo=UTC)
RATE_LIMIT_MESSAGE = "Rate limit exceeded for tool issue_refund, retry after 30s"

CURRENT_RUNS = 42
CURRENT_COMPLETED = 35
CURRENT_ESCALATED = 7
PREVIOUS_RUNS = 28
CURRENT_SPEND_USD = 28 * 0.0035 + 14 * 0.00021


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000


class _Ids:
    def __init__(self) -> None:
        self.trace = 0
        self.span = 0

    def next_trace(self) -> int:
        self.trace += 1
        return self.trace

    def next_span(self) -> int:
        self.span += 1
        return self.span


def _root(ids: _Ids, trace: int, workflow: str, outcome: str, start: datetime, duration_ms: float,
          tenant: str):
    root = ids.next_span()
    return root, span(
        f"invoke_agent {workflow}", trace=trace, span=root, start_ns=_ns(start),
        duration_ms=duration_ms,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": workflow,
                    "task.outcome": outcome, "tenant.id": tenant, "session.id": f"s-{trace}",
                    "user.id": f"user-{trace % 3}"},
    )


def _llm(ids: _Ids, trace: int, parent: int, model: str, start: datetime, provider: str = "openai"):
    return span(
        f"chat {model}", trace=trace, span=ids.next_span(), parent=parent, kind=SPAN_KIND_CLIENT,
        start_ns=_ns(start) + 10_000_000, duration_ms=600,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.system": provider,
                    "gen_ai.request.model": model, "gen_ai.response.model": model,
                    "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                    "gen_ai.response.finish_reasons": ["stop"]},
    )


def _tool(ids: _Ids, trace: int, parent: int, start: datetime, failed: bool):
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "issue_refund",
                  "gen_ai.tool.call.id": f"call_{trace}"}
    events = []
    if failed:
        attributes.update({"error.type": "RateLimitError", "http.response.status_code": 429})
        events = [exception_event("RateLimitError", RATE_LIMIT_MESSAGE, _ns(start) + 900_000_000)]
    return span(
        "execute_tool issue_refund", trace=trace, span=ids.next_span(), parent=parent,
        start_ns=_ns(start) + 700_000_000, duration_ms=300, attributes=attributes, events=events,
        status=STATUS_ERROR if failed else 0, status_message=RATE_LIMIT_MESSAGE if failed else "",
    )


def _refund_runs(ids: _Ids) -> dict[str, list]:
    by_version: dict[str, list] = {"1.0.0": [], "1.1.0": []}
    for day in range(14):
        midnight = NOW - 2 * WEEK + timedelta(days=day)
        current = day >= 7
        for i in range(4 if current else 2):
            start = midnight + timedelta(hours=9 + 2 * i)
            trace = ids.next_trace()
            outcome = "escalated" if current and i == 3 else "completed"
            root_id, root = _root(ids, trace, "refund_request", outcome, start, 2000,
                                  tenant="globex" if i % 2 else "initech")
            failed = midnight == FAILURE_DAY and i < 2
            spans = [root, _llm(ids, trace, root_id, "gpt-4o", start),
                     _tool(ids, trace, root_id, start, failed)]
            by_version["1.1.0" if start >= RELEASE_AT else "1.0.0"].extend(spans)
    return by_version


def _kb_runs(ids: _Ids) -> list:
    spans = []
    for day in range(14):
        midnight = NOW - 2 * WEEK + timedelta(days=day)
        for i in range(2):
            start = midnight + timedelta(hours=10 + 3 * i)
            trace = ids.next_trace()
            root_id, root = _root(ids, trace, "kb_answer", "completed", start, 1000, tenant="globex")
            spans += [root, _llm(ids, trace, root_id, "gpt-4o-mini", start),
                      _llm(ids, trace, root_id, "acme-llm-1", start + timedelta(seconds=1),
                           provider="acme")]
    return spans


def _resource(service: str, version: str) -> dict[str, str]:
    return {"service.name": service, "service.version": version,
            "deployment.environment.name": "production"}


def write_payloads(out: Path, *, workflows: tuple[str, ...] = ("refund_request", "kb_answer")
                   ) -> list[Path]:
    """The fixture's OTLP/HTTP protobuf bodies, one file per service and version."""
    out.mkdir(parents=True, exist_ok=True)
    ids = _Ids()
    groups = []
    if "refund_request" in workflows:
        for version, spans in _refund_runs(ids).items():
            groups.append((f"billing-agent-{version}", resource_spans(
                spans, _resource("billing-agent", version))))
    if "kb_answer" in workflows:
        groups.append(("helpcenter-bot-2.0.0", resource_spans(
            _kb_runs(ids), _resource("helpcenter-bot", "2.0.0"))))
    files = []
    for name, group in groups:
        path = out / f"{name}.binpb"
        path.write_bytes(to_protobuf(request_of(group)))
        files.append(path)
    return files


def build_store(tmp: Path, *, workflows: tuple[str, ...] = ("refund_request", "kb_answer"),
                db: str | None = None) -> Path:
    """Ingest the fixture's payloads into a new store under `tmp` (or the store `db`
    names, e.g. a ClickHouse URL); returns the store path (or `db`)."""
    files = write_payloads(tmp / "otlp", workflows=workflows)
    store = open_store(db or tmp / "store", create=True)
    report = ingest_paths(store, files, Config(), workers=1)
    assert not report.rejected, report.rejected
    return db or store.path


def no_cost_store(tmp: Path) -> Path:
    """Runs that called a tool and no model: there is nothing to price."""
    ids = _Ids()
    spans = []
    for day in range(3):
        start = NOW - timedelta(days=3 - day) + timedelta(hours=9)
        trace = ids.next_trace()
        root_id, root = _root(ids, trace, "refund_request", "completed", start, 2000, "globex")
        spans += [root, _tool(ids, trace, root_id, start, failed=False)]
    path = tmp / "otlp-no-cost" / "tools-only.binpb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_protobuf(request_of(resource_spans(spans, _resource("billing-agent", "1.0.0")))))
    store = Store.open(tmp / "store-no-cost", create=True)
    report = ingest_paths(store, [path], Config(), workers=1)
    assert not report.rejected, report.rejected
    return store.path


# -- running the app in tests ----------------------------------------------------------------

APP_DIR = Path(__import__("stepscope.dashboard", fromlist=["x"]).__file__).resolve().parent
APP = str(APP_DIR / "app.py")
PAGES = ("page_overview.py", "page_cost.py", "page_reliability.py", "page_drift.py",
         "page_alerts.py", "page_traces.py")


def run_page(monkeypatch, db: Path | str, page: str | None = None, *, query: dict | None = None,
             config: Path | None = None, now: str = NOW_TEXT, cwd: Path | None = None):
    """Run the app with Streamlit's AppTest on `page` (default: the Overview) and return it.

    The working directory is the store's parent (or `cwd`, for a store named by URL), so
    no stray ./stepscope.toml is read.
    """
    from streamlit.testing.v1 import AppTest

    monkeypatch.chdir(cwd or Path(db).parent)
    monkeypatch.setenv("STEPSCOPE_DB", str(db))
    monkeypatch.setenv("STEPSCOPE_NOW", now)
    if config is None:
        monkeypatch.delenv("STEPSCOPE_CONFIG", raising=False)
    else:
        monkeypatch.setenv("STEPSCOPE_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if page is not None and page != "page_overview.py":
        at.switch_page(page).run()
    return at


def markdown_text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def metrics(at) -> dict[str, tuple[str, str | None]]:
    """KPI cards as {label: (value, delta)}."""
    return {m.label: (m.value, m.delta) for m in at.metric}


ALERT_RULES = """
version: 1
rules:
  - name: tool_call_success_low
    description: Fewer than 98% of a workflow's tool calls succeeded.
    metric: tool_success_rate
    scope: {workflow: each}
    window: 24h
    condition: {op: "<", threshold: 0.98}
    min_runs: 1
    for: 0s
    severity: critical
    runbook_url: https://runbooks.example/tool-success
  - name: escalation_rate_high
    description: More than a fifth of a workflow's runs went to a human.
    metric: escalation_rate
    scope: {workflow: each}
    window: 24h
    condition: {op: ">", threshold: 0.2}
    min_runs: 1
    for: 0s
    severity: warning
    runbook_url: https://runbooks.example/escalations
"""
#: The tool failures of Nov 13 fire the first rule at 12:00 and clear by Nov 14 12:00;
#: refund_request's escalations (1 in 4 runs) keep the second firing at NOW.
ALERT_INSTANTS = (datetime(2026, 11, 13, 12, tzinfo=UTC), datetime(2026, 11, 14, 12, tzinfo=UTC), NOW)


def evaluate_alerts(db: Path, tmp: Path) -> None:
    """Evaluate ALERT_RULES at ALERT_INSTANTS into the store's alert state, as `alerts run` does."""
    from stepscope.alerts.replay import replay
    from stepscope.alerts.rules import load_rules
    from stepscope.alerts.state import AlertState

    rules = tmp / "rules.yaml"
    rules.write_text(ALERT_RULES)
    state = AlertState.for_store(db)
    try:
        for result in replay(Store.open(db), load_rules(rules), Config(), list(ALERT_INSTANTS),
                             state=state):
            assert not result.errors, result.errors
    finally:
        state.close()
