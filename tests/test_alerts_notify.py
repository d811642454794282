"""Notification channels: a real local webhook that fails, hangs, then answers; files; stdout."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stepscope.alerts import notify
from stepscope.alerts.rules import parse_rules
from stepscope.alerts.state import AlertState, Observation, RuleInfo, step

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=UTC)


class Hook:
    """A webhook receiver on 127.0.0.1 answering from a script of behaviours."""

    def __init__(self, script: list[str]):
        self.script = list(script)
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.bodies.append(body)
                hook.paths.append(self.path)
                action = hook.script.pop(0) if hook.script else "ok"
                if action == "hang":
                    time.sleep(1.0)
                code = 500 if action == "500" else 400 if action == "400" else 200
                try:
                    self.send_response(code)
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/SECRET-TOKEN"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory():
    hooks = []

    def make(script):
        hooks.append(Hook(script))
        return hooks[-1]

    yield make
    for h in hooks:
        h.close()


def rules_text(url: str, jsonl: str, fmt: str = "json", retries: int = 2) -> str:
    return f"""
channels:
  hook: {{type: webhook, url: "{url}", format: {fmt}, timeout: 0.3s, retries: {retries},
          backoff: 0.05s}}
  file: {{type: jsonl, path: "{jsonl}"}}
rules:
  - name: tools
    metric: tool_success_rate
    scope: {{workflow: each}}
    window: 1h
    condition: {{op: "<", threshold: 0.98}}
    severity: critical
    runbook_url: https://runbooks.example.org/tools
    channels: [hook, file, stdout]
"""


def firing_alert():
    info = RuleInfo("tools", "tool_success_rate", "critical", timedelta(0),
                    runbook_url="https://runbooks.example.org/tools")
    obs = Observation("tools", {"workflow": "refund_request"}, True, 0.91, 0.98,
                      {"condition": "< 0.98"})
    return step(None, obs, info, T0)


def queue(state, channels, kind=notify.FIRING_KIND):
    with state.transaction() as db:
        notify.enqueue(db, firing_alert(), kind, channels, T0)


def test_webhook_answers_500_then_times_out_then_succeeds(hook_factory, tmp_path):
    hook = hook_factory(["500", "hang", "ok"])
    rules = parse_rules(rules_text(hook.url, str(tmp_path / "a.jsonl")))
    state = AlertState()
    queue(state, ("hook",))
    counts = notify.Dispatcher(state, rules.channels, clock=lambda: T0).dispatch()
    assert counts == {"delivered": 1, "failed": 0}
    attempts = state.read("SELECT attempt, ok, status_code, error FROM delivery_attempts ORDER BY id")
    assert [(a["attempt"], a["ok"], a["status_code"]) for a in attempts] == [
        (1, 0, 500), (2, 0, None), (3, 1, 200)]
    assert attempts[0]["error"].endswith("answered HTTP 500")
    assert "did not answer within 0.3s" in attempts[1]["error"]
    assert all("SECRET" not in (a["error"] or "") for a in attempts)
    row = state.read("SELECT status, attempts FROM notifications")[0]
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    body = hook.bodies[-1]
    assert (body["kind"], body["status"], body["alert"]["rule"]) == ("firing", "firing", "tools")
    assert body["alert"]["scope"] == {"workflow": "refund_request"}
    assert body["alert"]["value"] == 0.91 and body["alert"]["threshold"] == 0.98
    assert hook.paths[-1] == "/hooks/SECRET-TOKEN"


def test_a_failing_webhook_blocks_neither_other_channels_nor_loses_the_alert(hook_factory, tmp_path):
    hook = hook_factory(["500", "500", "500"])
    jsonl = tmp_path / "alerts.jsonl"
    rules = parse_rules(rules_text(hook.url, str(jsonl)))
    state = AlertState()
    out = io.StringIO()
    queue(state, ("hook", "file", "stdout"))
    clock = [T0]
    dispatcher = notify.Dispatcher(state, rules.channels, stdout=out, clock=lambda: clock[0])
    assert dispatcher.dispatch() == {"delivered": 2, "failed": 1}
    line = json.loads(jsonl.read_text())
    assert line["summary"] == ("tools [workflow=refund_request]: tool_success_rate = 0.91 "
                               "(alert when < 0.98; threshold 0.98)")
    assert "[FIRING] critical: tools [workflow=refund_request]" in out.getvalue()
    assert "runbook: https://runbooks.example.org/tools" in out.getvalue()
    failed = state.read("SELECT status, attempts, last_error FROM notifications WHERE channel = 'hook'")[0]
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    # not due yet: nothing is sent again at once
    assert dispatcher.dispatch() == {"delivered": 0, "failed": 0}
    clock[0] = T0 + notify.REDELIVER_CAP
    assert dispatcher.dispatch() == {"delivered": 1, "failed": 0}
    assert len(hook.bodies) == 4
    assert jsonl.read_text().count("\n") == 1


def test_client_errors_are_not_retried(hook_factory, tmp_path):
    hook = hook_factory(["400"])
    rules = parse_rules(rules_text(hook.url, str(tmp_path / "a.jsonl")))
    state = AlertState()
    queue(state, ("hook",))
    notify.Dispatcher(state, rules.channels, clock=lambda: T0).dispatch()
    assert len(hook.bodies) == 1
    assert state.read("SELECT status FROM notifications")[0]["status"] == "gave_up"


def test_slack_payload(hook_factory, tmp_path):
    hook = hook_factory([])
    rules = parse_rules(rules_text(hook.url, str(tmp_path / "a.jsonl"), fmt="slack"))
    state = AlertState()
    queue(state, ("hook",), kind=notify.REMINDER_KIND)
    notify.Dispatcher(state, rules.channels, clock=lambda: T0).dispatch()
    body = hook.bodies[0]
    assert body["text"] == ("[STILL FIRING] tools [workflow=refund_request]: tool_success_rate = "
                            "0.91 (alert when < 0.98; threshold 0.98)")
    attachment = body["attachments"][0]
    assert attachment["color"] == notify.SLACK_COLORS["critical"]
    assert {"title": "workflow", "value": "refund_request", "short": True} in attachment["fields"]
    assert {"title": "Runbook", "value": "https://runbooks.example.org/tools",
            "short": False} in attachment["fields"]


def test_url_from_the_environment(hook_factory, tmp_path, monkeypatch):
    hook = hook_factory([])
    rules = parse_rules("""
channels:
  hook: {type: webhook, url_env: STEPSCOPE_TEST_HOOK, retries: 0}
rules: []
""")
    state = AlertState()
    queue(state, ("hook",))
    monkeypatch.delenv("STEPSCOPE_TEST_HOOK", raising=False)
    first = notify.Dispatcher(state, rules.channels, clock=lambda: T0)
    assert first.dispatch() == {"delivered": 0, "failed": 1}
    error = state.read("SELECT error FROM delivery_attempts")[0]["error"]
    assert error == "environment variable STEPSCOPE_TEST_HOOK is not set"
    monkeypatch.setenv("STEPSCOPE_TEST_HOOK", hook.url)
    later = notify.Dispatcher(state, rules.channels, clock=lambda: T0 + timedelta(days=1, hours=1))
    # older than GIVE_UP_AFTER: given up, still in the outbox for the record
    assert later.dispatch() == {"delivered": 0, "failed": 0}
    assert state.read("SELECT status FROM notifications")[0]["status"] == "gave_up"
