"""`stepscope alerts ...`: validate rules, check them (a CI gate), run them, silence, history."""

from __future__ import annotations

import getpass
import logging
import signal
import sys
from datetime import timedelta
from typing import Any

import click

from stepscope.cli import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    cli,
    config_option,
    db_option,
    duration_option_value,
    emit,
    format_option,
    get_config,
    instant_option_value,
    now_option,
    open_store,
    resolve_now,
)
from stepscope.timeparse import format_duration, utc_now

_RULES_HELP = "Rules file (YAML); default: the rules shipped with stepscope."


def _rules_option(f):
    return click.option("--rules", "rules_path", default=None,
                        type=click.Path(dir_okay=False), help=_RULES_HELP)(f)


def _state_option(f):
    return click.option(
        "--state", "state_path", default=None, type=click.Path(dir_okay=False),
        help="Alert state database (SQLite); default: DB/alerts.sqlite.")(f)


def _load_rules(rules_path: str | None):
    from stepscope.alerts.rules import RulesError, default_rules_path, load_rules

    try:
        return load_rules(rules_path or default_rules_path())
    except RulesError as exc:
        click.echo(f"Error: --rules: {len(exc.problems)} problem(s) in {exc.source}:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)


def _state(db: str, state_path: str | None):
    from stepscope.alerts.state import AlertState, StateError

    try:
        if state_path:
            return AlertState(state_path)
        open_store(db)
        return AlertState.for_store(db)
    except StateError as exc:
        click.echo(f"Error: --state: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _alert_rows(alerts: list, fmt: str) -> list[dict[str, Any]]:
    from stepscope.alerts.status import scope_text

    records = [a.to_json() for a in alerts]
    if fmt == "json":
        return records
    keys = ("rule", "state", "severity", "scope", "metric", "value", "threshold", "since",
            "runbook_url")
    return [{k: scope_text(r[k]) if k == "scope" else r[k] for k in keys} for r in records]


@cli.group()
def alerts() -> None:
    """Alert rules: validate, check (a CI release gate), run continuously, silence."""


@alerts.command("validate")
@click.argument("rules_file", type=click.Path(dir_okay=False))
@format_option("table", "json")
def alerts_validate(rules_file: str, fmt: str) -> None:
    """Check a rules file; every problem names the rule and the field (exit 2 on any)."""
    from stepscope.alerts.rules import RulesError, load_rules

    try:
        ruleset = load_rules(rules_file)
    except RulesError as exc:
        if fmt == "json":
            emit({"file": rules_file, "valid": False, "problems": exc.problems}, "json")
        else:
            for problem in exc.problems:
                click.echo(f"{rules_file}: {problem}", err=True)
            click.echo(f"{len(exc.problems)} problem(s)", err=True)
        sys.exit(EXIT_USAGE)
    summary = {"file": rules_file, "valid": True, "rules": len(ruleset.rules),
               "channels": sorted(ruleset.channels)}
    if fmt == "json":
        emit({**summary, "problems": []}, "json")
    else:
        click.echo(f"{rules_file}: {len(ruleset.rules)} rules, channels: "
                   f"{', '.join(sorted(ruleset.channels))} — valid")


@alerts.command("check")
@_rules_option
@db_option
@config_option
@click.option("--at", "at_text", default=None,
              help="Evaluate as of this instant (ISO-8601 or now-2h) to replay history.")
@now_option
@_state_option
@click.option("--step", default="5m", show_default=True,
              help="Without --state: the spacing of the rounds replayed over the longest `for`.")
@format_option("table", "json")
def alerts_check(rules_path: str | None, db: str, config_path: str | None, at_text: str | None,
                 now_text: str | None, state_path: str | None, step: str, fmt: str) -> None:
    """Evaluate the rules once; exit 0 when nothing fires, 1 when something fires.

    A release gate for CI: run it against the store after a canary or a replayed test
    set. Without --state it replays in memory the rounds a live `alerts run` would have
    made over the longest `for` before the instant, so `for` is honoured and live state
    is never touched; with --state FILE it makes one round on that state (repeated
    --at calls walk history). Bad rules or configuration exit 2. Lists pending and firing
    alerts, and those that resolved at this instant.
    """
    from stepscope.alerts.replay import check

    ruleset = _load_rules(rules_path)
    config = get_config(config_path)
    store = open_store(db)
    now = resolve_now(now_text)
    at = instant_option_value(at_text, "--at", now) or now or utc_now()
    every = duration_option_value(step, "--step")
    state = None
    if state_path:
        state = _state(db, state_path)
    result = _guard_state(lambda: check(store, ruleset, config, at, state=state, step=every))
    for error in result.errors:
        click.echo(f"Error: {error}", err=True)
    emit(_alert_rows(result.reportable(), fmt), fmt)
    if result.errors:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_REJECTED if result.firing else EXIT_OK)


def _guard_state(call):
    from stepscope.alerts.state import StateError

    try:
        return call()
    except StateError as exc:
        click.echo(f"Error: --state: {exc}", err=True)
        sys.exit(EXIT_USAGE)


@alerts.command("replay")
@_rules_option
@db_option
@config_option
@click.option("--since", required=True, help="First round (ISO-8601 or now-14d).")
@click.option("--until", default="now", show_default=True, help="Last round.")
@click.option("--every", default="1h", show_default=True, help="Time between rounds.")
@now_option
@format_option()
def alerts_replay(rules_path: str | None, db: str, config_path: str | None, since: str,
                  until: str, every: str, now_text: str | None, fmt: str) -> None:
    """What the rules would have done over a period: every change of state, in memory.

    Tune thresholds, `for` and windows against history before putting rules live; live
    state is not touched and nothing is sent.
    """
    from stepscope.alerts.replay import replay, replay_instants
    from stepscope.alerts.status import scope_text

    ruleset = _load_rules(rules_path)
    config = get_config(config_path)
    store = open_store(db)
    now = resolve_now(now_text)
    instants = replay_instants(instant_option_value(since, "--since", now),
                               instant_option_value(until, "--until", now),
                               duration_option_value(every, "--every"))
    rows, errors = [], []
    for result in replay(store, ruleset, config, instants):
        errors.extend(result.errors)
        rows.extend({"at": result.at, "rule": a.rule, "scope": scope_text(a.scope),
                     "from_state": before, "to_state": a.state, "severity": a.severity,
                     "metric": a.metric, "value": a.value, "threshold": a.threshold}
                    for before, a in result.changes)
    for error in errors:
        click.echo(f"Error: {error}", err=True)
    emit(rows, fmt)
    if errors:
        sys.exit(EXIT_USAGE)


@alerts.command("run")
@_rules_option
@db_option
@config_option
@_state_option
@click.option("--every", default="60s", show_default=True, help="Time between evaluation rounds.")
@click.option("--once", is_flag=True, help="Make one round, deliver its notifications, exit.")
@now_option
def alerts_run(rules_path: str | None, db: str, config_path: str | None, state_path: str | None,
               every: str, once: bool, now_text: str | None) -> None:
    """Evaluate continuously and send notifications; SIGTERM or Ctrl-C stops cleanly.

    State (pending/firing/resolved, history, the notification outbox, silences) is kept
    in DB/alerts.sqlite. A firing alert notifies once, then every `remind_every`, and
    once on resolve; undelivered notifications are retried on later rounds. The rules
    file is read again when it changes. With --now, rounds run as if the clock had been
    set to that instant when the command started (to try rules on recorded data).
    """
    from stepscope.alerts.engine import AlertRunner
    from stepscope.alerts.evaluate import Evaluator
    from stepscope.alerts.rules import default_rules_path

    _load_rules(rules_path)  # fail fast, exit 2, on a broken file
    interval = duration_option_value(every, "--every")
    if interval <= timedelta(0):
        raise click.BadParameter("must be longer than zero", param_hint="--every")
    config = get_config(config_path)
    store = open_store(db)
    state = _state(db, state_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)

    def report(result) -> None:
        firing = len(result.firing)
        changes = ", ".join(f"{a.rule} {a.state}" for _, a in result.changes) or "no change"
        click.echo(f"{result.at.isoformat(timespec='seconds')}: {firing} firing; {changes}",
                   err=True)

    offset = (resolve_now(now_text) - utc_now()) if now_text else timedelta(0)
    runner = AlertRunner(store, rules_path or default_rules_path(), config, state=state,
                         every=interval, on_round=report, clock=lambda: utc_now() + offset)
    if once:
        with Evaluator(store, config) as evaluator:
            _guard_state(lambda: runner.run_once(evaluator))
        runner.deliver(wait=True)
        return

    def stop(signum: int, _frame: object) -> None:
        click.echo(f"received {signal.Signals(signum).name}; stopping after this round", err=True)
        runner.stop(timeout=0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"evaluating {len(runner.ruleset.rules)} rules every {format_duration(interval)} "
               f"against {db}", err=True)
    _guard_state(runner.run_forever)
    click.echo("stopped", err=True)


@alerts.command("status")
@db_option
@_state_option
@now_option
@click.option("--recent", default="24h", show_default=True,
              help="Also list alerts resolved within this long.")
@format_option()
def alerts_status(db: str, state_path: str | None, now_text: str | None, recent: str,
                  fmt: str) -> None:
    """The alerts `alerts run` keeps: firing and pending, then recently resolved."""
    from stepscope.alerts.status import alerts_frame

    if not state_path:
        open_store(db)
    frame = alerts_frame(db, now=resolve_now(now_text), state_path=state_path,
                         recent=duration_option_value(recent, "--recent"))
    if fmt != "json":
        frame = frame.drop("description", "labels", "fingerprint", "evaluated_at")
    emit(frame, fmt)


@alerts.command("history")
@db_option
@_state_option
@click.option("--since", help="Only changes at or after this instant (ISO-8601 or now-7d).")
@click.option("--until", help="Only changes before this instant.")
@click.option("--rule", default=None, help="Only this rule.")
@click.option("--notifications", is_flag=True,
              help="List notifications and their delivery instead of state changes.")
@now_option
@format_option()
def alerts_history(db: str, state_path: str | None, since: str | None, until: str | None,
                   rule: str | None, notifications: bool, now_text: str | None, fmt: str) -> None:
    """Every pending/firing/resolved transition, or every notification and its delivery."""
    from stepscope.alerts.notify import notification_log
    from stepscope.alerts.status import open_state, transitions_frame

    if not state_path:
        open_store(db)
    now = resolve_now(now_text)
    if notifications:
        state = open_state(db, state_path)
        emit(notification_log(state) if state else [], fmt)
        return
    emit(transitions_frame(db, since=instant_option_value(since, "--since", now),
                           until=instant_option_value(until, "--until", now), rule=rule,
                           state_path=state_path), fmt)


@alerts.group("silence")
def alerts_silence() -> None:
    """Hold back notifications of matching alerts until a silence expires."""


@alerts_silence.command("add")
@click.argument("matchers", nargs=-1, required=True)
@db_option
@_state_option
@click.option("--for", "duration", default=None, help="How long, e.g. 2h (default 2h).")
@click.option("--until", "until_text", default=None, help="Until this instant instead.")
@click.option("--comment", default="", help="Why (shown in `silence list`).")
@click.option("--by", "created_by", default=None, help="Who (default: the current user).")
@now_option
@format_option("table", "json")
def silence_add(matchers: tuple[str, ...], db: str, state_path: str | None, duration: str | None,
                until_text: str | None, comment: str, created_by: str | None,
                now_text: str | None, fmt: str) -> None:
    """Silence alerts matching KEY=VALUE (rule, severity, scope or label; wildcards * ?)."""
    from stepscope.alerts.silences import SilenceError, add_silence, parse_matchers

    now = resolve_now(now_text) or utc_now()
    if duration and until_text:
        raise click.UsageError("give --for or --until, not both")
    ends = instant_option_value(until_text, "--until", now) if until_text else \
        now + duration_option_value(duration or "2h", "--for")
    try:
        silence = add_silence(_state(db, state_path), parse_matchers(matchers), now, ends, now,
                              created_by if created_by is not None else _user(), comment)
    except SilenceError as exc:
        click.echo(f"Error: MATCHERS: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    emit(silence.to_json(), fmt)


@alerts_silence.command("list")
@db_option
@_state_option
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@now_option
@format_option()
def silence_list(db: str, state_path: str | None, show_all: bool, now_text: str | None,
                 fmt: str) -> None:
    """Silences in force (or all of them)."""
    from stepscope.alerts.silences import silences

    now = resolve_now(now_text) or utc_now()
    found = silences(_state(db, state_path), active_at=None if show_all else now)
    emit([s.to_json() for s in found], fmt)


@alerts_silence.command("expire")
@click.argument("silence_id")
@db_option
@_state_option
@now_option
def silence_expire(silence_id: str, db: str, state_path: str | None, now_text: str | None) -> None:
    """End a silence now."""
    from stepscope.alerts.silences import SilenceError, expire_silence

    try:
        expire_silence(_state(db, state_path), silence_id, resolve_now(now_text) or utc_now())
    except SilenceError as exc:
        click.echo(f"Error: SILENCE_ID: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"silence {silence_id} expired")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
