"""Alert state: the pending → firing → resolved machine and where it is kept.

The steps store is immutable Parquet; alert state is small and changes every minute, so
it lives in its own SQLite database beside the segments (`<db>/alerts.sqlite`), in WAL
mode so that `alerts run`, `serve` and the dashboard can use it from several processes
at once. A replay (`alerts check --at`) uses an in-memory database or a file of its own,
so replaying history never disturbs live state.

Tables: `alerts` (one row per rule and scope value: its current state), `transitions`
(every change of state, the history), `notifications` (the outbox: one row per message
and channel, kept until delivered), `delivery_attempts` (every try, with its error) and
`silences`. The database records its schema version in `meta`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stepscope.timeparse import iso_utc, parse_instant, to_utc

STATE_SCHEMA_VERSION = 1
STATE_FILE = "alerts.sqlite"
BUSY_TIMEOUT_MS = 10_000

PENDING, FIRING, RESOLVED, INACTIVE = "pending", "firing", "resolved", "inactive"
ACTIVE_STATES = (PENDING, FIRING)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    threshold REAL,
    since TEXT NOT NULL,
    pending_since TEXT,
    last_true_at TEXT,
    fired_at TEXT,
    resolved_at TEXT,
    evaluated_at TEXT NOT NULL,
    notified_at TEXT,
    notified_firing INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    detail TEXT NOT NULL DEFAULT '{}',
    runbook_url TEXT,
    description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alerts_by_rule ON alerts (rule, state);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    scope TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    at TEXT NOT NULL,
    value REAL,
    threshold REAL,
    severity TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_time ON transitions (at);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    delivered_at TEXT,
    last_error TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_by_status ON notifications (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT ''
);
"""


class StateError(RuntimeError):
    """The state database cannot be used (newer schema, unreadable); exit status 2."""


def fingerprint(rule: str, scope: dict[str, str]) -> str:
    """A stable id of one alert: its rule and scope values, whatever their order."""
    text = json.dumps([rule, sorted(scope.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One alert (a rule at one scope value) and where its state machine stands."""

    fingerprint: str
    rule: str
    scope: dict[str, str]
    state: str
    severity: str
    metric: str
    value: float | None
    threshold: float | None
    since: datetime
    evaluated_at: datetime
    pending_since: datetime | None = None
    last_true_at: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    notified_at: datetime | None = None
    notified_firing: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    runbook_url: str | None = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record `alerts check --format json` prints (issue-defined keys first)."""
        return {
            "rule": self.rule, "state": self.state, "severity": self.severity,
            "scope": dict(self.scope), "metric": self.metric, "value": self.value,
            "threshold": self.threshold, "since": iso_utc(self.since),
            "runbook_url": self.runbook_url, "description": self.description,
            "labels": dict(self.labels), "fired_at": iso_utc(self.fired_at),
            "resolved_at": iso_utc(self.resolved_at), "evaluated_at": iso_utc(self.evaluated_at),
            "detail": dict(self.detail), "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Observation:
    """What one evaluation found for one rule and scope value.

    `holds` is True (bad), False (fine) or None: not enough data to say (fewer runs than
    `min_runs`, no budget): an unknown result changes nothing.
    """

    rule: str
    scope: dict[str, str]
    holds: bool | None
    value: float | None
    threshold: float | None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.scope)


@dataclass(frozen=True)
class RuleInfo:
    """The parts of a rule the state machine needs (keeps this module free of YAML)."""

    name: str
    metric: str
    severity: str
    for_: timedelta
    labels: dict[str, str] = field(default_factory=dict)
    keep_firing_for: timedelta = timedelta(0)
    runbook_url: str | None = None
    description: str = ""


def step(previous: Alert | None, obs: Observation, rule: RuleInfo, at: datetime) -> Alert | None:
    """The next state of one alert after one observation (None: no alert, nothing to keep).

    Prometheus semantics: a condition that holds makes the alert pending; once it has held
    on every evaluation for `for` (an unknown clears a pending alert), it fires (at once
    when `for` is 0). A firing alert whose condition no longer holds is resolved — after
    `keep_firing_for` without the condition holding, which keeps a metric hovering at its
    threshold from flapping; a pending one simply goes away.
    """
    if obs.holds is None:
        # Not enough data: a firing alert stays firing (a quiet night resolves nothing),
        # but a pending one must see its condition hold throughout `for`, so it goes away.
        if previous is None:
            return None
        if previous.state == PENDING:
            return replace(previous, state=INACTIVE, since=at, evaluated_at=at)
        return replace(previous, evaluated_at=at)
    if obs.holds:
        if previous is None or previous.state == RESOLVED:
            start = _new_alert(obs, rule, at)
            if rule.for_ <= timedelta(0):
                return replace(start, state=FIRING, fired_at=at)
            return start
        updated = replace(previous, value=obs.value, threshold=obs.threshold, detail=obs.detail,
                          evaluated_at=at, last_true_at=at, severity=rule.severity,
                          labels=rule.labels, runbook_url=rule.runbook_url,
                          description=rule.description)
        if previous.state == PENDING and at - (previous.pending_since or at) >= rule.for_:
            return replace(updated, state=FIRING, since=at, fired_at=at)
        return updated
    if previous is None:
        return None
    if previous.state == FIRING:
        last_true = previous.last_true_at or previous.fired_at or at
        if at - last_true < rule.keep_firing_for:
            return replace(previous, evaluated_at=at, value=obs.value, detail=obs.detail)
        return replace(previous, state=RESOLVED, since=at, resolved_at=at, value=obs.value,
                       threshold=obs.threshold, detail=obs.detail, evaluated_at=at)
    if previous.state == PENDING:
        return replace(previous, state=INACTIVE, since=at, evaluated_at=at, value=obs.value)
    return replace(previous, evaluated_at=at)


def _new_alert(obs: Observation, rule: RuleInfo, at: datetime) -> Alert:
    return Alert(
        fingerprint=obs.fingerprint, rule=obs.rule, scope=dict(obs.scope), state=PENDING,
        severity=rule.severity, metric=rule.metric, value=obs.value, threshold=obs.threshold,
        since=at, pending_since=at, last_true_at=at, evaluated_at=at, labels=dict(rule.labels),
        detail=dict(obs.detail), runbook_url=rule.runbook_url, description=rule.description,
    )


# -- the database -------------------------------------------------------------------------


class AlertState:
    """The SQLite database of alert state. `path=None` keeps it in memory (replays).

    One connection per thread (SQLite connections are not shared across threads); WAL
    journal and a busy timeout let several processes read while one writes.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self._local = threading.local()
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.RLock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._memory_lock if self.path is None else contextlib.nullcontext():
            self._connect().executescript(_SCHEMA)
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(STATE_SCHEMA_VERSION),))
            elif int(row[0]) > STATE_SCHEMA_VERSION:
                raise StateError(
                    f"{self.path}: alert state schema version {row[0]} is newer than this "
                    f"stepscope understands ({STATE_SCHEMA_VERSION}); upgrade stepscope")

    @classmethod
    def for_store(cls, store_path: str | Path) -> AlertState:
        """The live state of a store: `<db>/alerts.sqlite`."""
        return cls(Path(store_path) / STATE_FILE)

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", check_same_thread=False,
                                               isolation_level=None)
            return self._memory
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                      isolation_level=None)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                con.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: cannot open the alert state database: {exc}") from None
            self._local.con = con
        return con

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE, so concurrent writers queue, not deadlock)."""
        with self._memory_lock if self.path is None else contextlib.nullcontext():
            con = self._connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def read(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        with self._memory_lock if self.path is None else contextlib.nullcontext():
            con = self._connect()
            cursor = con.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    # -- alerts ---------------------------------------------------------------------------

    def alerts(self, rule: str | None = None, states: tuple[str, ...] | None = None) -> list[Alert]:
        where, params = [], []
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        return [_alert_from_row(r) for r in self.read(sql + " ORDER BY rule, scope", tuple(params))]

    def alert(self, fp: str) -> Alert | None:
        rows = self.read("SELECT * FROM alerts WHERE fingerprint = ?", (fp,))
        return _alert_from_row(rows[0]) if rows else None

    def save(self, db: sqlite3.Connection, previous: Alert | None, alert: Alert | None) -> None:
        """Write one alert's new state and, when the state changed, a transition."""
        if alert is None:
            return
        before = previous.state if previous else None
        if alert.state != before:
            moves = [(before, alert.state)]
            if alert.state == FIRING and before != PENDING:
                # Fired at once (`for: 0`): the history still shows it was pending first.
                moves = [(before, PENDING), (PENDING, FIRING)]
            for from_state, to_state in moves:
                db.execute(
                    "INSERT INTO transitions (fingerprint, rule, scope, from_state, to_state, at,"
                    " value, threshold, severity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (alert.fingerprint, alert.rule, _dump(alert.scope), from_state, to_state,
                     db_time(alert.since), alert.value, alert.threshold, alert.severity))
        if alert.state == INACTIVE:
            db.execute("DELETE FROM alerts WHERE fingerprint = ?", (alert.fingerprint,))
            return
        db.execute(
            "INSERT OR REPLACE INTO alerts (fingerprint, rule, scope, state, severity, metric, value,"
            " threshold, since, pending_since, last_true_at, fired_at, resolved_at, evaluated_at,"
            " notified_at, notified_firing, labels, detail, runbook_url, description)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.fingerprint, alert.rule, _dump(alert.scope), alert.state, alert.severity,
             alert.metric, alert.value, alert.threshold, db_time(alert.since),
             db_time(alert.pending_since), db_time(alert.last_true_at), db_time(alert.fired_at),
             db_time(alert.resolved_at),
             db_time(alert.evaluated_at), db_time(alert.notified_at), int(alert.notified_firing),
             _dump(alert.labels), _dump(alert.detail), alert.runbook_url, alert.description))

    def forget_rules_except(self, db: sqlite3.Connection, names: set[str]) -> None:
        """Drop the current alerts of rules no longer in the rules file (history is kept)."""
        for row in db.execute("SELECT DISTINCT rule FROM alerts").fetchall():
            if row[0] not in names:
                db.execute("DELETE FROM alerts WHERE rule = ?", (row[0],))

    def transitions(self, since: datetime | None = None, until: datetime | None = None,
                    rule: str | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if since is not None:
            where.append("at >= ?")
            params.append(db_time(since))
        if until is not None:
            where.append("at < ?")
            params.append(db_time(until))
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        sql = ("SELECT id, at, rule, scope, from_state, to_state, value, threshold, severity,"
               " fingerprint FROM transitions"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY at, id")
        rows = self.read(sql, tuple(params))
        for row in rows:
            row["scope"] = json.loads(row["scope"])
            row["at"] = parse_instant(row["at"])
        return rows


def db_time(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so that SQLite orders and compares times as text correctly."""
    if value is None:
        return None
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _time(value: str | None) -> datetime | None:
    return parse_instant(value) if value else None


def _alert_from_row(row: dict[str, Any]) -> Alert:
    return Alert(
        fingerprint=row["fingerprint"], rule=row["rule"], scope=json.loads(row["scope"]),
        state=row["state"], severity=row["severity"], metric=row["metric"], value=row["value"],
        threshold=row["threshold"], since=_time(row["since"]),
        evaluated_at=_time(row["evaluated_at"]), pending_since=_time(row["pending_since"]),
        last_true_at=_time(row["last_true_at"]),
        fired_at=_time(row["fired_at"]), resolved_at=_time(row["resolved_at"]),
        notified_at=_time(row["notified_at"]), notified_firing=bool(row["notified_firing"]),
        labels=json.loads(row["labels"]), detail=json.loads(row["detail"]),
        runbook_url=row["runbook_url"], description=row["description"],
    )
