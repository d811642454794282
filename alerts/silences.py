"""Silences: "I know, stop telling me" for a while, and only for what they match.

A silence holds back notifications of matching alerts until it expires; the alerts are
still evaluated and their transitions kept, so the history stays complete and an alert
still firing when its silence ends is announced then. Matchers are `key=value` pairs
on `rule`, `severity`, a scope dimension (`workflow`, `tenant`, ...) or a label; a value
may use shell wildcards (`refund_*`). Every matcher must match.
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from stepscope.alerts.state import Alert, AlertState, db_time
from stepscope.timeparse import iso_utc, parse_instant


class SilenceError(ValueError):
    """A silence that cannot be made as asked (exit status 2)."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    created_by: str = ""
    comment: str = ""

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def matches(self, alert: Alert) -> bool:
        for key, pattern in self.matchers.items():
            if key == "rule":
                value = alert.rule
            elif key == "severity":
                value = alert.severity
            elif key in alert.scope:
                value = alert.scope[key]
            elif key in alert.labels:
                value = alert.labels[key]
            else:
                return False
            if not fnmatch.fnmatchcase(str(value), pattern):
                return False
        return True

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "matchers": dict(self.matchers), "starts_at": iso_utc(self.starts_at),
                "ends_at": iso_utc(self.ends_at), "created_at": iso_utc(self.created_at),
                "created_by": self.created_by, "comment": self.comment}


def parse_matchers(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["rule=tool_success_low", "workflow=refund_*"]` → a matcher mapping."""
    matchers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise SilenceError(f"matcher {item!r}: expected KEY=VALUE, e.g. rule=tool_success_low")
        if key in matchers:
            raise SilenceError(f"matcher {item!r}: {key} is given twice")
        matchers[key] = value
    if not matchers:
        raise SilenceError("a silence needs at least one KEY=VALUE matcher (it would match everything)")
    return matchers


def add_silence(state: AlertState, matchers: dict[str, str], starts_at: datetime,
                ends_at: datetime, created_at: datetime, created_by: str = "",
                comment: str = "") -> Silence:
    if ends_at <= starts_at:
        raise SilenceError("a silence must end after it starts")
    silence = Silence(uuid.uuid4().hex[:12], dict(matchers), starts_at, ends_at, created_at,
                      created_by, comment)
    with state.transaction() as db:
        db.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_at, created_by, comment)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (silence.id, json.dumps(silence.matchers, sort_keys=True), db_time(starts_at),
             db_time(ends_at), db_time(created_at), created_by, comment))
    return silence


def expire_silence(state: AlertState, silence_id: str, at: datetime) -> Silence:
    """End a silence now (kept, for the record, with its new end)."""
    with state.transaction() as db:
        found = db.execute("SELECT id FROM silences WHERE id = ?", (silence_id,)).fetchone()
        if found is None:
            raise SilenceError(f"no silence with id {silence_id!r}")
        db.execute("UPDATE silences SET ends_at = min(ends_at, ?) WHERE id = ?",
                   (db_time(at), silence_id))
    return next(s for s in silences(state) if s.id == silence_id)


def silences(state: AlertState, active_at: datetime | None = None) -> list[Silence]:
    """Every silence, or only those in force at `active_at`."""
    out = [
        Silence(row["id"], json.loads(row["matchers"]), parse_instant(row["starts_at"]),
                parse_instant(row["ends_at"]), parse_instant(row["created_at"]),
                row["created_by"], row["comment"])
        for row in state.read("SELECT * FROM silences ORDER BY starts_at, id")
    ]
    if active_at is not None:
        out = [s for s in out if s.active(active_at)]
    return out


def silenced_by(alert: Alert, active: list[Silence]) -> Silence | None:
    """The first silence in force that matches the alert, if any."""
    return next((s for s in active if s.matches(alert)), None)
