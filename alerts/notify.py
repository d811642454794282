"""Notifications: what is said when, the channels that say it, and the outbox behind them.

When an alert fires, is still firing a reminder interval later, or resolves, one
notification per channel is written to the `notifications` table in the same transaction
as the state change (the outbox), then delivered. So a channel that is down, slow or
rejecting never blocks the evaluation or the other channels (each channel is delivered
on its own thread) and never loses the alert: an undelivered notification stays in the
outbox and is tried again on the next round, and every attempt is recorded with its
error in `delivery_attempts`.

Channels: `webhook` (generic JSON, or a Slack-compatible `text` + attachment payload)
with a timeout and retries with exponential backoff; `stdout` (one readable line);
`jsonl` (one JSON object per line appended to a file).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from stepscope import __version__
from stepscope.alerts.rule_types import Channel
from stepscope.alerts.state import FIRING, RESOLVED, Alert, AlertState, db_time
from stepscope.output import json_value
from stepscope.timeparse import iso_utc, utc_now

FIRING_KIND, REMINDER_KIND, RESOLVED_KIND = "firing", "reminder", "resolved"
QUEUED, DELIVERED, FAILED, GAVE_UP = "queued", "delivered", "failed", "gave_up"
PAYLOAD_VERSION = 1
#: An undelivered notification is tried again after this, doubling up to the cap ...
REDELIVER_AFTER = timedelta(minutes=1)
REDELIVER_CAP = timedelta(hours=1)
#: ... and given up once it is this old (it stays in the outbox, marked gave_up).
GIVE_UP_AFTER = timedelta(hours=24)
#: HTTP statuses worth retrying: the receiver may accept the same request later.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
SLACK_COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4", "resolved": "#2ca02c"}


# -- what is said -----------------------------------------------------------------------


def due_kind(alert: Alert, previous_state: str | None, at: datetime,
             remind_every: timedelta) -> str | None:
    """Which notification an alert owes after this evaluation, if any.

    Firing: once when it fires (or, if silenced then, when it is first unsilenced), then
    every `remind_every`. Resolved: once, and only if its firing was announced.
    """
    if alert.state == FIRING:
        if not alert.notified_firing:
            return FIRING_KIND
        if alert.notified_at is not None and at - alert.notified_at >= remind_every:
            return REMINDER_KIND
        return None
    if alert.state == RESOLVED and previous_state == FIRING and alert.notified_firing:
        return RESOLVED_KIND
    return None


def summary(alert: Alert) -> str:
    scope = ", ".join(f"{k}={v}" for k, v in sorted(alert.scope.items())) or "all runs"
    condition = alert.detail.get("condition")
    value = _fmt(alert.value)
    text = f"{alert.rule} [{scope}]: {alert.metric} = {value}"
    if condition:
        text += f" (alert when {condition}"
        if alert.threshold is not None:
            text += f"; threshold {_fmt(alert.threshold)}"
        text += ")"
    return text


def payload(alert: Alert, kind: str, at: datetime) -> dict[str, Any]:
    """The generic JSON body of a notification (also what `jsonl` writes)."""
    return json_value({
        "version": PAYLOAD_VERSION, "source": "stepscope", "kind": kind,
        "status": RESOLVED if kind == RESOLVED_KIND else FIRING,
        "summary": summary(alert), "sent_for": iso_utc(at), "alert": alert.to_json(),
    })


def slack_payload(body: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook shape: a text line and one coloured attachment."""
    alert = body["alert"]
    status = body["status"]
    title = {"firing": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED"}[body["kind"]]
    fields = [{"title": "Severity", "value": alert["severity"], "short": True},
              {"title": "Since", "value": alert["since"], "short": True}]
    fields += [{"title": k, "value": str(v), "short": True} for k, v in alert["scope"].items()]
    if alert.get("runbook_url"):
        fields.append({"title": "Runbook", "value": alert["runbook_url"], "short": False})
    color = SLACK_COLORS["resolved" if status == RESOLVED else alert["severity"]]
    return {
        "text": f"[{title}] {body['summary']}",
        "attachments": [{"color": color, "title": alert["rule"],
                         "text": alert.get("description") or "", "fields": fields,
                         "footer": "stepscope"}],
    }


def stdout_line(body: dict[str, Any]) -> str:
    alert = body["alert"]
    tag = {"firing": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED"}[body["kind"]]
    runbook = f" runbook: {alert['runbook_url']}" if alert.get("runbook_url") else ""
    return f"{body['sent_for']} [{tag}] {alert['severity']}: {body['summary']}{runbook}"


# -- the outbox -------------------------------------------------------------------------


def enqueue(db: sqlite3.Connection, alert: Alert, kind: str, channels: tuple[str, ...],
            at: datetime) -> None:
    """Queue one notification per channel, inside the caller's state transaction."""
    body = json.dumps(payload(alert, kind, at), sort_keys=True)
    for channel in channels:
        db.execute(
            "INSERT INTO notifications (fingerprint, rule, kind, channel, created_at, status,"
            " next_attempt_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.fingerprint, alert.rule, kind, channel, db_time(at), QUEUED, db_time(at), body))


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retryable: bool = True
    duration_ms: float = 0.0


class Dispatcher:
    """Delivers the outbox: each channel on its own thread, each attempt recorded."""

    def __init__(self, state: AlertState, channels: dict[str, Channel], *,
                 stdout: TextIO | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = utc_now):
        self.state = state
        self.channels = channels
        self.stdout = stdout
        self.sleep = sleep
        self.clock = clock

    def dispatch(self) -> dict[str, int]:
        """Deliver every notification that is due; returns counts by final status."""
        now = self.clock()
        self._give_up_old(now)
        rows = self.state.read(
            "SELECT * FROM notifications WHERE status IN (?, ?) AND next_attempt_at <= ?"
            " ORDER BY id", (QUEUED, FAILED, db_time(now)))
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_channel.setdefault(row["channel"], []).append(row)
        counts = {DELIVERED: 0, FAILED: 0}
        if not by_channel:
            return counts
        with ThreadPoolExecutor(max_workers=len(by_channel),
                                thread_name_prefix="stepscope-notify") as pool:
            results = pool.map(self._deliver_channel, by_channel.items())
            for delivered, failed in results:
                counts[DELIVERED] += delivered
                counts[FAILED] += failed
        return counts

    def _give_up_old(self, now: datetime) -> None:
        with self.state.transaction() as db:
            db.execute("UPDATE notifications SET status = ? WHERE status = ? AND created_at < ?",
                       (GAVE_UP, FAILED, db_time(now - GIVE_UP_AFTER)))

    def _deliver_channel(self, item: tuple[str, list[dict[str, Any]]]) -> tuple[int, int]:
        name, rows = item
        delivered = failed = 0
        for row in rows:
            ok = self._deliver_one(name, row)
            delivered += ok
            failed += not ok
        return delivered, failed

    def _deliver_one(self, name: str, row: dict[str, Any]) -> bool:
        channel = self.channels.get(name)
        body = json.loads(row["payload"])
        tries = 1 + (channel.retries if channel is not None and channel.type == "webhook" else 0)
        attempt_no = int(row["attempts"])
        result = Attempt(False, error=f"no channel named {name!r} in the rules file", retryable=False)
        for i in range(tries):
            if channel is not None:
                result = self._attempt(channel, body)
            attempt_no += 1
            self._record(row["id"], name, attempt_no, result)
            if result.ok or not result.retryable:
                break
            if i + 1 < tries:
                self.sleep(channel.backoff.total_seconds() * (2 ** i))
        self._finish(row, attempt_no, result)
        return result.ok

    def _attempt(self, channel: Channel, body: dict[str, Any]) -> Attempt:
        started = time.monotonic()
        try:
            if channel.type == "stdout":
                out = self.stdout or sys.stdout
                out.write(stdout_line(body) + "\n")
                out.flush()
                result = Attempt(True)
            elif channel.type == "jsonl":
                append_jsonl(Path(channel.path or ""), body)
                result = Attempt(True)
            else:
                result = post_webhook(channel, body)
        except Exception as exc:  # a channel must never break delivery of the others
            result = Attempt(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
        return Attempt(result.ok, result.status_code, result.error, result.retryable,
                       (time.monotonic() - started) * 1000)

    def _record(self, notification_id: int, channel: str, attempt: int, result: Attempt) -> None:
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO delivery_attempts (notification_id, channel, attempt, at, ok,"
                " status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (notification_id, channel, attempt, db_time(self.clock()), int(result.ok),
                 result.status_code, result.error, round(result.duration_ms, 3)))

    def _finish(self, row: dict[str, Any], attempts: int, result: Attempt) -> None:
        now = self.clock()
        with self.state.transaction() as db:
            if result.ok:
                db.execute("UPDATE notifications SET status = ?, attempts = ?, delivered_at = ?,"
                           " last_error = NULL WHERE id = ?",
                           (DELIVERED, attempts, db_time(now), row["id"]))
                return
            rounds = max(1, attempts)
            wait = min(REDELIVER_AFTER * (2 ** min(rounds - 1, 16)), REDELIVER_CAP)
            status = FAILED if result.retryable else GAVE_UP
            db.execute("UPDATE notifications SET status = ?, attempts = ?, last_error = ?,"
                       " next_attempt_at = ? WHERE id = ?",
                       (status, attempts, result.error, db_time(now + wait), row["id"]))


# -- channels -----------------------------------------------------------------------------


def post_webhook(channel: Channel, body: dict[str, Any]) -> Attempt:
    """One POST; the caller retries. Errors never show the URL (it often holds a token)."""
    url = channel.url or os.environ.get(channel.url_env or "", "")
    if not url:
        return Attempt(False, error=f"environment variable {channel.url_env} is not set")
    data = slack_payload(body) if channel.format == "slack" else body
    request = urllib.request.Request(
        url, data=json.dumps(data).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"stepscope/{__version__}",
                 **dict(channel.headers)})
    where = _safe_url(url)
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout.total_seconds()) as response:
            response.read(65536)
            return Attempt(True, status_code=response.status)
    except urllib.error.HTTPError as exc:
        return Attempt(False, status_code=exc.code, error=f"{where} answered HTTP {exc.code}",
                       retryable=exc.code in RETRYABLE_STATUS)
    except TimeoutError:
        return Attempt(False, error=f"{where} did not answer within "
                       f"{channel.timeout.total_seconds():g}s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return Attempt(False, error=f"{where} did not answer within "
                           f"{channel.timeout.total_seconds():g}s")
        return Attempt(False, error=f"{where}: {reason}")
    except OSError as exc:
        return Attempt(False, error=f"{where}: {type(exc).__name__}: {exc}")


def append_jsonl(path: Path, body: dict[str, Any]) -> None:
    """Append one line under an advisory lock, so concurrent writers never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def notification_log(state: AlertState, limit: int = 100) -> list[dict[str, Any]]:
    """The latest notifications with their delivery status, newest first."""
    rows = state.read(
        "SELECT id, created_at, rule, kind, channel, status, attempts, delivered_at, last_error,"
        " fingerprint FROM notifications ORDER BY id DESC LIMIT ?", (limit,))
    return rows


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"
