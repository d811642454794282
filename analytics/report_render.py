"""The weekly review as Markdown or as an HTML e-mail (inline styles only, since mail
clients drop style sheets), from a `stepscope.analytics.report.WeeklyReport`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import timedelta

from stepscope.analytics.formatting import LABELS, format_change, format_usd, format_value
from stepscope.analytics.report import REPORT_METRICS, WeeklyReport

SUMMARY_METRICS = (
    "runs", "completion_rate", "escalation_rate", "tool_success_rate", "latency_p95_ms",
    "cost_usd", "cost_per_completed_task_usd", "unpriced_llm_calls",
)
COLOURS = {"better": "#1a7f37", "worse": "#cf222e"}


# -- shared pieces ----------------------------------------------------------------------


def _title(report: WeeklyReport) -> str:
    return f"Weekly agent review — {report.week}"


def _period(report: WeeklyReport) -> str:
    last_day = report.window.end - timedelta(days=1)
    return (f"{report.window.start:%a %d %b %Y} to {last_day:%a %d %b %Y} (UTC), "
            f"compared with the week before")


def _summary_rows(report: WeeklyReport) -> list[tuple[str, str, str, str, str | None]]:
    rows = []
    by_metric = {r["metric"]: r for r in report.totals.iter_rows(named=True)}
    for metric in SUMMARY_METRICS:
        r = by_metric.get(metric)
        if r is None:
            continue
        rows.append((LABELS[metric], format_value(metric, r["current"]),
                     format_value(metric, r["baseline"]),
                     format_change(metric, r["change"], r["relative_change"]), r["assessment"]))
    return rows


def _workflow_cells(report: WeeklyReport) -> list[tuple[str, list[tuple[str, str, str | None]]]]:
    """Per workflow: (value, change, assessment) for each REPORT_METRICS column."""
    out = []
    frame = report.workflows
    for (workflow,), group in frame.group_by(["workflow"], maintain_order=True):
        by_metric = {r["metric"]: r for r in group.iter_rows(named=True)}
        cells = []
        for metric in REPORT_METRICS:
            r = by_metric.get(metric)
            if r is None:
                cells.append(("–", "", None))
                continue
            change = "" if r["baseline"] is None and r["current"] is None else format_change(
                metric, r["change"], r["relative_change"])
            cells.append((format_value(metric, r["current"]), change, r["assessment"]))
        out.append((str(workflow), cells))
    return sorted(out, key=lambda item: item[0])


def _driver_rows(report: WeeklyReport) -> list[list[str]]:
    rows = []
    for r in report.cost_drivers.iter_rows(named=True):
        previous = r["previous_cost_usd"]
        rows.append([
            r["workflow"] or "(running)", r["model"] or "(no model)",
            format_usd(r["cost_usd"]) if r["cost_usd"] is not None else "unpriced",
            format_usd(previous) if previous is not None else "–",
            (("+" if r["change_usd"] >= 0 else "-") + format_usd(abs(r["change_usd"])))
            if r["change_usd"] is not None else "–",
            f"{r['llm_calls']:,}",
        ])
    return rows


def _failure_rows(report: WeeklyReport) -> list[list[str]]:
    rows = []
    for r in report.failures.iter_rows(named=True):
        error = r["error_type"] or "error"
        if r["http_status"] is not None:
            error += f" ({r['http_status']})"
        rows.append([
            f"{r['count']:,}", error, ", ".join([*r["tools"], *r["models"]]),
            (r["label"] or "")[:120], ", ".join(r["workflows"]), "new" if r["is_new"] else "",
        ])
    return rows


DRIVER_HEADERS = ("Workflow", "Model", "Spend", "Last week", "Change", "LLM calls")
FAILURE_HEADERS = ("Failures", "Error", "Where", "Message", "Workflows", "")


# -- Markdown ---------------------------------------------------------------------------


def render_markdown(report: WeeklyReport) -> str:
    lines = [f"# {_title(report)}", "", f"{_period(report)}.", "", "## Summary", ""]
    lines += _md_table(("", "This week", "Last week", "Change"),
                       [list(r[:4]) for r in _summary_rows(report)])
    lines += ["", "## Notable changes", ""]
    lines += [f"- {note}" for note in report.notable] or ["Nothing stood out this week."]
    lines += ["", "## Workflows", ""]
    workflows = _workflow_cells(report)
    if workflows:
        headers = ("Workflow", *(LABELS.get(m, m) for m in REPORT_METRICS))
        lines += _md_table(headers, [
            [name, *(f"{v} ({c})" if c else v for v, c, _ in cells)] for name, cells in workflows
        ])
    else:
        lines.append("No runs this week.")
    lines += ["", "## Top cost drivers", ""]
    drivers = _driver_rows(report)
    lines += _md_table(DRIVER_HEADERS, drivers) if drivers else ["No spend this week."]
    lines += ["", "## Top failure reasons", ""]
    failures = _failure_rows(report)
    lines += _md_table(FAILURE_HEADERS, failures) if failures else ["No failed steps this week."]
    if report.unpriced_models:
        lines += ["", "## Unpriced models", "",
                  "These calls have no price (add them to `[[prices]]` in stepscope.toml); "
                  "spend above leaves them out:", ""]
        lines += [f"- {m}" for m in report.unpriced_models]
    return "\n".join(lines) + "\n"


def _md_table(headers: Sequence[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("<", "\\<").replace("\n", " ")

    out = ["| " + " | ".join(esc(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


# -- HTML e-mail ------------------------------------------------------------------------

_FONT = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;"
_TABLE = "border-collapse:collapse;margin:8px 0 20px 0;font-size:13px;"
_TH = ("text-align:left;padding:6px 10px;border-bottom:2px solid #d0d7de;"
       "background:#f6f8fa;color:#1f2328;")
_TD = "padding:6px 10px;border-bottom:1px solid #d0d7de;color:#1f2328;vertical-align:top;"
_H2 = "font-size:16px;margin:24px 0 4px 0;color:#1f2328;"


def render_html(report: WeeklyReport) -> str:
    e = html.escape
    parts = [
        f'<div style="{_FONT}max-width:980px;color:#1f2328;">',
        f'<h1 style="font-size:20px;margin:0 0 4px 0;">{e(_title(report))}</h1>',
        f'<p style="margin:0 0 16px 0;color:#59636e;">{e(_period(report))}.</p>',
        f'<h2 style="{_H2}">Summary</h2>',
        _html_table(("", "This week", "Last week", "Change"), [
            [e(a), e(b), e(c), _coloured(d, s)] for a, b, c, d, s in _summary_rows(report)
        ]),
        f'<h2 style="{_H2}">Notable changes</h2>',
    ]
    if report.notable:
        parts.append('<ul style="margin:4px 0 16px 20px;padding:0;">' + "".join(
            f'<li style="margin:2px 0;">{_bold(e(n))}</li>' for n in report.notable) + "</ul>")
    else:
        parts.append("<p>Nothing stood out this week.</p>")
    parts.append(f'<h2 style="{_H2}">Workflows</h2>')
    workflows = _workflow_cells(report)
    if workflows:
        headers = ("Workflow", *(LABELS.get(m, m) for m in REPORT_METRICS))
        parts.append(_html_table(headers, [
            [f"<b>{e(name)}</b>", *(
                e(v) + (f'<br><span style="font-size:11px;">{_coloured(c, s)}</span>' if c else "")
                for v, c, s in cells)]
            for name, cells in workflows
        ]))
    else:
        parts.append("<p>No runs this week.</p>")
    parts.append(f'<h2 style="{_H2}">Top cost drivers</h2>')
    drivers = _driver_rows(report)
    parts.append(_html_table(DRIVER_HEADERS, [[e(c) for c in row] for row in drivers])
                 if drivers else "<p>No spend this week.</p>")
    parts.append(f'<h2 style="{_H2}">Top failure reasons</h2>')
    failures = _failure_rows(report)
    parts.append(_html_table(FAILURE_HEADERS, [[e(c) for c in row] for row in failures])
                 if failures else "<p>No failed steps this week.</p>")
    if report.unpriced_models:
        parts.append(f'<h2 style="{_H2}">Unpriced models</h2>')
        parts.append("<p>These calls have no price (add them to <code>[[prices]]</code> in "
                     "stepscope.toml); spend above leaves them out:</p>")
        parts.append("<ul>" + "".join(f"<li>{e(m)}</li>" for m in report.unpriced_models)
                     + "</ul>")
    parts.append("</div>")
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{e(_title(report))}</title></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _html_table(headers: Sequence[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th style="{_TH}">{html.escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{_TD}">{c}</td>' for c in row) + "</tr>"
                   for row in rows)
    return f'<table style="{_TABLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _coloured(text: str, assessment: str | None) -> str:
    colour = COLOURS.get(assessment or "")
    escaped = html.escape(text)
    return f'<span style="color:{colour};">{escaped}</span>' if colour else escaped


def _bold(escaped: str) -> str:
    """Markdown `**x**` and `` `x` `` in notes as <b>x</b> and <code>x</code> (the text is
    already escaped)."""
    pieces = escaped.split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))
    pieces = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def render(report: WeeklyReport, fmt: str) -> str:
    if fmt == "html":
        return render_html(report)
    if fmt == "md":
        return render_markdown(report)
    raise ValueError(f"unknown report format {fmt!r}")


__all__ = ["render", "render_html", "render_markdown"]
