"""Pieces every page uses: headers, empty states, number formats, links, HTML tables.

Links into the Trace explorer are plain relative URLs carrying the global filters in
the query string, so they work in a new tab, survive copy-and-paste, and open the same
view for whoever receives them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from stepscope.dashboard.filters import GlobalFilters
from stepscope.timeparse import iso_utc, to_utc

TRACES_PAGE = "traces"
GOOD, BAD, NEUTRAL = "#15803d", "#b91c1c", "#64748b"

CSS = """
<style>
  .block-container {padding-top: 2.2rem; padding-bottom: 3rem; max-width: 1500px;}
  h1 {font-size: 1.7rem !important; font-weight: 650 !important; letter-spacing: -0.01em;}
  h2, h3 {font-weight: 600 !important; letter-spacing: -0.005em;}
  [data-testid="stMetric"] {background: #ffffff;}
  [data-testid="stMetricValue"] {font-size: 1.65rem; font-weight: 600;}
  [data-testid="stSidebar"] h5 {margin-bottom: 0.2rem; color: #475569; text-transform: uppercase;
      letter-spacing: 0.06em; font-size: 0.72rem;}
  table.ss {border-collapse: collapse; width: 100%; font-size: 0.86rem;}
  table.ss th {text-align: right; font-weight: 600; color: #475569; padding: 6px 10px;
      border-bottom: 1px solid #e2e8f0; white-space: nowrap; font-size: 0.78rem;}
  table.ss th:first-child, table.ss td:first-child {text-align: left;}
  table.ss td {text-align: right; padding: 7px 10px; border-bottom: 1px solid #f1f5f9;
      vertical-align: top; font-variant-numeric: tabular-nums; white-space: nowrap;}
  table.ss tr:hover td {background: #f8fafc;}
  table.ss a {color: #1d4ed8; text-decoration: none;}
  table.ss a:hover {text-decoration: underline;}
  .ss-delta {display: block; font-size: 0.74rem; margin-top: 1px;}
  .ss-muted {color: #94a3b8;}
  .ss-chip {display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.74rem;
      font-weight: 600;}
  .ss-empty {border: 1px dashed #cbd5e1; border-radius: 10px; padding: 28px 28px; background: #f8fafc;
      margin: 8px 0 16px 0;}
  .ss-empty h4 {margin: 0 0 6px 0; color: #334155; font-weight: 600;}
  .ss-empty p {margin: 0; color: #475569;}
  .ss-scope {color: #64748b; font-size: 0.85rem; margin-top: -0.6rem; margin-bottom: 1rem;}
</style>
"""


def favicon() -> Any:
    """A small drawn icon: Streamlit fetches named icons from the internet, this needs nothing."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, 63, 63), radius=14, fill="#1e3a8a")
    for i, height in enumerate((18, 30, 24, 42)):
        x = 10 + i * 12
        draw.rectangle((x, 54 - height, x + 7, 54), fill="#93c5fd" if i < 3 else "#ffffff")
    return image


def inject_css() -> None:
    st.markdown(CSS, unsafe_allow_html=True)


# -- formats ---------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_int(value: Any) -> str:
    return "–" if _missing(value) else f"{int(value):,}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{value * 100:.{digits}f}%"


def fmt_usd(value: Any, digits: int | None = None) -> str:
    if _missing(value):
        return "–"
    if digits is None:
        digits = 2 if abs(value) >= 1 or value == 0 else 4
    return f"${value:,.{digits}f}"


def fmt_ms(value: Any) -> str:
    if _missing(value):
        return "–"
    if value >= 60_000:
        return f"{value / 60_000:.1f} min"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


def fmt_tokens(value: Any) -> str:
    if _missing(value):
        return "–"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:,.0f}"


def fmt_time(value: datetime | None) -> str:
    return "–" if value is None else to_utc(value).strftime("%Y-%m-%d %H:%M UTC")


FORMATTERS = {"int": fmt_int, "pct": fmt_pct, "usd": fmt_usd, "ms": fmt_ms, "tokens": fmt_tokens}


def relative_change(current: Any, previous: Any) -> float | None:
    """(current - previous) / previous, or None when either is missing or previous is 0."""
    if _missing(current) or _missing(previous) or previous == 0:
        return None
    return (current - previous) / abs(previous)


def delta_html(change: float | None, higher_is_better: bool | None, *, absolute: str | None = None
               ) -> str:
    """A small coloured "▲ 12.3%" (green when the change is good news, red when bad)."""
    if change is None:
        return '<span class="ss-delta ss-muted">no prior data</span>'
    if abs(change) < 0.0005:
        return '<span class="ss-delta ss-muted">±0%</span>'
    arrow = "▲" if change > 0 else "▼"
    good = higher_is_better is not None and (change > 0) == higher_is_better
    colour = NEUTRAL if higher_is_better is None else (GOOD if good else BAD)
    text = absolute or f"{abs(change) * 100:.1f}%"
    return f'<span class="ss-delta" style="color:{colour}">{arrow} {html.escape(text)}</span>'


def sparkline_svg(values: Sequence[float | None], *, width: int = 96, height: int = 24,
                  colour: str = "#2563eb") -> str:
    """An inline SVG polyline of a short series (gaps skipped), for tables."""
    points = [(i, v) for i, v in enumerate(values) if not _missing(v)]
    if len(points) < 2:
        return '<span class="ss-muted">–</span>'
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    coords = " ".join(
        f"{2 + i * (width - 4) / n:.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}"
        for i, v in points
    )
    last_x, last_y = coords.split(" ")[-1].split(",")
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.2" fill="{colour}"/></svg>'
    )


# -- links -------------------------------------------------------------------------------


def page_url(page: str, filters: GlobalFilters | None = None, **params: Any) -> str:
    """A relative URL of a dashboard page with the global filters and page parameters."""
    query: list[tuple[str, str]] = []
    if filters is not None:
        for key, value in filters.to_query().items():
            for item in [value] if isinstance(value, str) else value:
                query.append((key, item))
    for key, value in params.items():
        if value is None or value == "":
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            query.append((key, str(item)))
    return page + ("?" + urlencode(query) if query else "")


def traces_url(filters: GlobalFilters | None = None, **params: Any) -> str:
    return page_url(TRACES_PAGE, filters, **params)


def link(text: str, url: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}" target="_self">{html.escape(text)}</a>'


def window_range(start: datetime, end: datetime) -> str:
    """A `range` query value for an explicit window."""
    return f"{iso_utc(start)}..{iso_utc(end)}"


# -- page furniture ----------------------------------------------------------------------


def page_header(title: str, subtitle: str, filters: GlobalFilters, window_text: str) -> None:
    st.title(title)
    scope = [window_text]
    for label, values in filters.active_dimensions():
        scope.append(f"{label}: {', '.join(values)}")
    st.markdown(f'<div class="ss-scope">{html.escape(subtitle)} · '
                f'{html.escape(" · ".join(scope))}</div>', unsafe_allow_html=True)


def empty_state(title: str, body: str, *, icon: str = "📭") -> None:
    """A clear, friendly panel where a chart or table would be, saying what to do."""
    st.markdown(
        f'<div class="ss-empty" data-testid="ss-empty-state"><h4>{icon} {html.escape(title)}</h4>'
        f"<p>{body}</p></div>",
        unsafe_allow_html=True,
    )


def html_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *,
               header_help: Mapping[str, str] | None = None) -> None:
    """A compact table whose cells are trusted HTML fragments (escape before passing)."""
    helps = header_help or {}
    head = "".join(
        f'<th title="{html.escape(helps.get(c, ""), quote=True)}">{html.escape(c)}</th>'
        for c in columns
    )
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    st.markdown(f'<table class="ss"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
                unsafe_allow_html=True)


PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"],
                 "toImageButtonOptions": {"format": "png", "scale": 2}}


def plot(fig: Any, key: str | None = None) -> None:
    st.plotly_chart(fig, config=PLOTLY_CONFIG, key=key, theme=None)
