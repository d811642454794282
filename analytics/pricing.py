"""Query-time prices: one small table of rates, joined to the steps in SQL.

The store keeps tokens, never money, so that a price correction or a negotiated rate
reprices history. This module resolves prices once per distinct (provider, requested
model, responding model) seen in the data — never per span — into a price table with
one row per validity period, time-of-day window and input-token tier. The SQL in
`sql/priced_steps.sql` joins that table and computes each call's cost.

Sources, in order of precedence:

1. `[[prices]]` of the configuration (exact, glob or regex match on the requested or
   the responding model, optional provider, `effective_from` inclusive to
   `effective_to` exclusive, UTC days). The first entry in file order that matches wins.
2. The genai-prices library's bundled snapshot (no network), with its price changes
   over time, time-of-day prices and long-context tiers.

A model neither knows has no row: its calls cost NULL and are counted as unpriced.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import polars as pl
import pyarrow as pa
from genai_prices import data_snapshot
from genai_prices import types as gp

from stepscope.config import Config, PriceConfig

LIBRARY = f"genai-prices {genai_prices.__version__}"
UNPRICED = "unpriced: no price known"

# Sentinels instead of NULL bounds keep the join a plain conjunction of comparisons.
NS_MIN = 0
NS_MAX = 2**63 - 1
DAY_SECONDS = 86_400
DAY_NS = DAY_SECONDS * 1_000_000_000
TOKENS_BELOW_ANY = -1
TOKENS_MAX = 2**63 - 1

# Provider names as the OpenTelemetry GenAI conventions spell them -> genai-prices ids.
PROVIDER_ALIASES = {
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
}

# The library's price keys stepscope has token counts for, and the rate column each fills.
RATE_KEYS = {
    "input_mtok": "input_per_mtok",
    "output_mtok": "output_per_mtok",
    "cache_read_mtok": "cache_read_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
    "output_reasoning_mtok": "reasoning_per_mtok",
}
RATE_COLUMNS = (*RATE_KEYS.values(), "per_request_usd")

PRICE_TABLE_SCHEMA = pa.schema([
    ("price_id", pa.int64()),           # stable id of the row, what per-run sums refer to
    ("provider", pa.string()),          # the step's provider, '' when absent (join key)
    ("request_model", pa.string()),     # the step's request_model, '' when absent (join key)
    ("response_model", pa.string()),    # the step's response_model, '' when absent (join key)
    ("valid_from_ns", pa.int64()),      # inclusive
    ("valid_to_ns", pa.int64()),        # exclusive
    ("day_from_ns", pa.int64()),        # time-of-day window, nanoseconds after UTC midnight
    ("day_to_ns", pa.int64()),          # exclusive
    ("input_above", pa.int64()),        # tier: input tokens strictly above this ...
    ("input_upto", pa.int64()),         # ... and at most this
    ("input_per_mtok", pa.float64()),
    ("output_per_mtok", pa.float64()),
    ("cache_read_per_mtok", pa.float64()),
    ("cache_write_per_mtok", pa.float64()),
    ("reasoning_per_mtok", pa.float64()),
    ("per_request_usd", pa.float64()),
    ("price_source", pa.string()),      # NULL: no price (the calls are unpriced)
    ("priced_provider", pa.string()),   # provider id in the price source
    ("priced_model", pa.string()),      # model id or user match in the price source
    ("model_label", pa.string()),       # the model as KPIs name it: requested, else responding
    ("provider_label", pa.string()),    # the step's provider, else the price source's
])


@dataclass(frozen=True)
class PriceKey:
    """What decides a step's price besides its time and size: who served which model."""

    provider: str | None
    request_model: str | None
    response_model: str | None

    @property
    def model_refs(self) -> tuple[str, ...]:
        """Model names to look up, the responding (most specific) one first."""
        refs = [m for m in (self.response_model, self.request_model) if m]
        return tuple(dict.fromkeys(refs))


@dataclass(frozen=True)
class _Rates:
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None
    per_request_usd: float | None = None


@dataclass(frozen=True)
class _Row:
    """One price in force over [valid_from, valid_to), a time-of-day window and a tier."""

    valid_from_ns: int
    valid_to_ns: int
    day_from_s: int
    day_to_s: int
    input_above: int
    input_upto: int
    rates: _Rates
    source: str | None
    priced_provider: str | None
    priced_model: str | None


# -- the genai-prices snapshot ----------------------------------------------------------


def _library_provider(provider: str | None) -> gp.Provider | None:
    if not provider:
        return None
    providers = data_snapshot.get_snapshot().providers
    name = provider.strip().lower()
    for candidate in (PROVIDER_ALIASES.get(name), name, name.replace("_", "-")):
        if candidate and (found := data_snapshot.find_provider_by_id(providers, candidate)):
            return found
    return None


@functools.lru_cache(maxsize=4096)
def library_model(provider: str | None, model_ref: str) -> tuple[gp.Provider, gp.ModelInfo] | None:
    """The library's provider and model for a step, or None when it does not know it.

    With a provider the library knows, only that provider (and the providers it resells)
    is searched; otherwise the provider is inferred from the model name, as genai-prices
    itself does.
    """
    snapshot = data_snapshot.get_snapshot()
    known = _library_provider(provider)
    try:
        if known is not None:
            return snapshot.find_provider_model(model_ref, known, None, None)
        return snapshot.find_provider_model(model_ref, None, None, None)
    except LookupError:
        return None


def _rate(value: Decimal | gp.TieredPrices | None, input_above: int) -> float | None:
    """The rate for calls with more than `input_above` input tokens (tiers are cliffs)."""
    if value is None:
        return None
    if isinstance(value, gp.TieredPrices):
        applicable = value.base
        for tier in value.tiers:
            if tier.start <= input_above:
                applicable = tier.price
        return float(applicable)
    return float(value)


def _tier_starts(price: gp.ModelPrice) -> list[int]:
    starts: set[int] = set()
    for key in RATE_KEYS:
        value = getattr(price, key, None)
        if isinstance(value, gp.TieredPrices):
            starts.update(t.start for t in value.tiers)
    return sorted(starts)


def _tier_rows(price: gp.ModelPrice) -> list[tuple[int, int, _Rates]]:
    """Split a model price into input-token bands, each with flat rates."""
    bounds = [TOKENS_BELOW_ANY, *_tier_starts(price), TOKENS_MAX]
    rows = []
    for above, upto in itertools.pairwise(bounds):
        per_k = getattr(price, "requests_kcount", None)
        rates = _Rates(
            **{col: _rate(getattr(price, key, None), above) for key, col in RATE_KEYS.items()},
            per_request_usd=_rate(per_k, above) / 1000 if per_k is not None else None,
        )
        rows.append((above, upto, rates))
    return rows


def _day_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def _seconds(t: time) -> int:
    t = datetime.combine(date(1970, 1, 1), t).astimezone(UTC).time() if t.tzinfo else t
    return t.hour * 3600 + t.minute * 60 + t.second


def _tod_windows(constraint: gp.TimeOfDateConstraint) -> list[tuple[int, int]]:
    start, end = _seconds(constraint.start_time), _seconds(constraint.end_time)
    if end < start:  # wraps past midnight
        return [(start, DAY_SECONDS), (0, end)]
    return [(start, end)]


def _schedule(model: gp.ModelInfo) -> list[tuple[int, int, int, int, gp.ModelPrice, date | None]]:
    """The model's prices as non-overlapping (date range x time-of-day) pieces.

    genai-prices picks, at a given instant, the last conditional price whose constraint
    holds (start dates and daily windows), else the first. Evaluating that rule at every
    boundary gives the whole schedule; the last element says since when the price holds.
    """
    if isinstance(model.prices, gp.ModelPrice):
        return [(NS_MIN, NS_MAX, 0, DAY_SECONDS, model.prices, None)]
    conditional = model.prices
    dates = sorted({c.constraint.start_date for c in conditional
                    if isinstance(c.constraint, gp.StartDateConstraint)})
    cuts = sorted({s for c in conditional if isinstance(c.constraint, gp.TimeOfDateConstraint)
                   for w in _tod_windows(c.constraint) for s in w} | {0, DAY_SECONDS})
    pieces = []
    starts: list[date | None] = [None, *dates]
    for i, since in enumerate(starts):
        until = starts[i + 1] if i + 1 < len(starts) else None
        probe_day = since or date(1970, 1, 1)
        segments: list[tuple[int, int, gp.ModelPrice]] = []
        for lo, hi in itertools.pairwise(cuts):
            probe = datetime.combine(probe_day, time(lo // 3600, lo % 3600 // 60, lo % 60), UTC)
            chosen = conditional[0].prices
            for cond in reversed(conditional):
                if cond.constraint is None or cond.constraint.active(probe):
                    chosen = cond.prices
                    break
            if segments and segments[-1][2] is chosen:
                segments[-1] = (segments[-1][0], hi, chosen)
            else:
                segments.append((lo, hi, chosen))
        for lo, hi, chosen in segments:
            pieces.append((
                _day_ns(since) if since else NS_MIN,
                _day_ns(until) if until else NS_MAX,
                lo, hi, chosen, since,
            ))
    return pieces


def _library_rows(key: PriceKey) -> list[_Row]:
    for ref in key.model_refs:
        found = library_model(key.provider, ref)
        if found is None:
            continue
        provider, model = found
        rows = []
        for valid_from, valid_to, day_from, day_to, price, since in _schedule(model):
            for above, upto, rates in _tier_rows(price):
                qualifiers = []
                if since is not None:
                    qualifiers.append(f"from {since.isoformat()}")
                if (day_from, day_to) != (0, DAY_SECONDS):
                    qualifiers.append(f"{_hhmm(day_from)}-{_hhmm(day_to)} UTC")
                if above != TOKENS_BELOW_ANY:
                    qualifiers.append(f">{above} input tokens")
                source = f"{LIBRARY}: {provider.id} {model.id}"
                if qualifiers:
                    source += f" ({', '.join(qualifiers)})"
                rows.append(_Row(valid_from, valid_to, day_from, day_to, above, upto, rates,
                                 source, provider.id, model.id))
        return rows
    return []


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


# -- user prices ------------------------------------------------------------------------


def user_price_matches(price: PriceConfig, key: PriceKey, library_provider: str | None) -> bool:
    """Does a `[[prices]]` entry apply to this step's provider and model?"""
    if price.provider is not None:
        wanted = price.provider.strip().lower()
        have = {p for p in ((key.provider or "").lower(), (library_provider or "").lower()) if p}
        if wanted not in have:
            return False
    return any(_model_matches(price, ref) for ref in key.model_refs)


def _model_matches(price: PriceConfig, model: str) -> bool:
    if price.match_type == "exact":
        return model == price.match
    if price.match_type == "glob":
        return fnmatch.fnmatchcase(model.lower(), price.match.lower())
    return re.fullmatch(price.match, model) is not None


def _config_name(config: Config) -> str:
    return Path(config.source).name if config.source else "stepscope.toml"


def _user_rows(key: PriceKey, config: Config, library_provider: str | None) -> list[
        tuple[int, int, int, PriceConfig]]:
    """(from, to, index, price) of every matching user price, in file order."""
    out = []
    for i, price in enumerate(config.prices):
        if user_price_matches(price, key, library_provider):
            lo = _day_ns(price.effective_from) if price.effective_from else NS_MIN
            hi = _day_ns(price.effective_to) if price.effective_to else NS_MAX
            out.append((lo, hi, i, price))
    return out


def _user_row(lo: int, hi: int, index: int, price: PriceConfig, config: Config,
              key: PriceKey) -> _Row:
    rates = _Rates(
        input_per_mtok=price.input_per_mtok,
        output_per_mtok=price.output_per_mtok,
        cache_read_per_mtok=price.cached_input_per_mtok,
        cache_write_per_mtok=price.cache_write_per_mtok,
    )
    source = f"{_config_name(config)} prices[{index}]: {price.match}"
    return _Row(lo, hi, 0, DAY_SECONDS, TOKENS_BELOW_ANY, TOKENS_MAX, rates, source,
                price.provider or key.provider or "", price.match)


def price_rows(key: PriceKey, config: Config) -> list[_Row]:
    """Every price of a key's calls over all time, without overlaps and without gaps.

    User prices win wherever they are in force (the first matching entry where several
    overlap); elsewhere the library's schedule applies; where neither has a price, a row
    without a source says the calls are unpriced. So each call matches exactly one row.
    """
    library = _library_rows(key)
    library_provider = library[0].priced_provider if library else None
    users = _user_rows(key, config, library_provider)
    if not users:
        return _fill_gaps(library)
    cuts = sorted({NS_MIN, NS_MAX} | {b for lo, hi, _, _ in users for b in (lo, hi)})
    rows: list[_Row] = []
    previous_winner = None
    for lo, hi in itertools.pairwise(cuts):
        winner = next((u for u in users if u[0] <= lo and hi <= u[1]), None)
        if winner is not None and winner is previous_winner:
            rows[-1] = _replace_range(rows[-1], rows[-1].valid_from_ns, hi)
        elif winner is not None:
            rows.append(_user_row(lo, hi, winner[2], winner[3], config, key))
        else:
            for row in library:
                a, b = max(row.valid_from_ns, lo), min(row.valid_to_ns, hi)
                if a < b:
                    rows.append(_replace_range(row, a, b))
        previous_winner = winner
    return _fill_gaps(rows)


def _fill_gaps(rows: list[_Row]) -> list[_Row]:
    """Add an unpriced row for each stretch of time no price covers."""
    spans = sorted({(r.valid_from_ns, r.valid_to_ns) for r in rows})
    gaps, cursor = [], NS_MIN
    for lo, hi in spans:
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < NS_MAX:
        gaps.append((cursor, NS_MAX))
    unpriced = [_Row(lo, hi, 0, DAY_SECONDS, TOKENS_BELOW_ANY, TOKENS_MAX, _Rates(),
                     None, None, None) for lo, hi in gaps]
    return sorted(rows + unpriced, key=lambda r: (r.valid_from_ns, r.day_from_s, r.input_above))


def _replace_range(row: _Row, lo: int, hi: int) -> _Row:
    return _Row(lo, hi, row.day_from_s, row.day_to_s, row.input_above, row.input_upto,
                row.rates, row.source, row.priced_provider, row.priced_model)


# -- the table ---------------------------------------------------------------------------


def build_price_table(keys: Iterable[PriceKey], config: Config) -> pa.Table:
    """The price table for these keys (PRICE_TABLE_SCHEMA).

    Every key gets rows covering all time; a model no source knows gets one row without
    a price source, so its calls stay visible as unpriced. A row's `price_id` depends
    only on its key and where it applies, so tables built for different sets of keys
    agree on the ids they share.
    """
    columns: dict[str, list[Any]] = {f.name: [] for f in PRICE_TABLE_SCHEMA}
    for key in dict.fromkeys(keys):
        for row in price_rows(key, config):
            columns["price_id"].append(_price_id(key, row))
            columns["provider"].append(key.provider or "")
            columns["request_model"].append(key.request_model or "")
            columns["response_model"].append(key.response_model or "")
            columns["valid_from_ns"].append(row.valid_from_ns)
            columns["valid_to_ns"].append(row.valid_to_ns)
            columns["day_from_ns"].append(row.day_from_s * 1_000_000_000)
            columns["day_to_ns"].append(row.day_to_s * 1_000_000_000)
            columns["input_above"].append(row.input_above)
            columns["input_upto"].append(row.input_upto)
            for col in RATE_COLUMNS:
                columns[col].append(getattr(row.rates, col))
            columns["price_source"].append(row.source)
            columns["priced_provider"].append(row.priced_provider)
            columns["priced_model"].append(row.priced_model)
            columns["model_label"].append(key.request_model or key.response_model)
            columns["provider_label"].append(key.provider or row.priced_provider)
    return pa.table(columns, schema=PRICE_TABLE_SCHEMA)


def _price_id(key: PriceKey, row: _Row) -> int:
    text = repr((key.provider, key.request_model, key.response_model, row.valid_from_ns,
                 row.day_from_s, row.input_above))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def prices_fingerprint(config: Config) -> tuple:
    """What, besides the data, decides the price table: to know when to rebuild it."""
    return (LIBRARY, id(data_snapshot.get_snapshot()), config.prices, config.source)


def describe_price_table(table: pa.Table, usage: pl.DataFrame | None = None) -> pl.DataFrame:
    """The price table as people read it: validity as dates, tiers and windows as text.

    `usage` (provider, request_model, response_model, calls, first_seen, last_seen) adds
    how many calls each key has, so finance sees which prices actually matter.
    """
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    epoch = pl.datetime(1970, 1, 1, time_zone="UTC")
    out = frame.with_columns(
        pl.when(pl.col("valid_from_ns") == NS_MIN).then(None)
        .otherwise((epoch + pl.duration(nanoseconds=pl.col("valid_from_ns"))).dt.date())
        .alias("effective_from"),
        pl.when(pl.col("valid_to_ns") == NS_MAX).then(None)
        .otherwise((epoch + pl.duration(nanoseconds=pl.col("valid_to_ns"))).dt.date())
        .alias("effective_to"),
        pl.when((pl.col("day_from_ns") == 0) & (pl.col("day_to_ns") == DAY_NS)).then(None)
        .otherwise(
            pl.format("{}-{} UTC", _hhmm_expr("day_from_ns"), _hhmm_expr("day_to_ns"))
        ).alias("time_of_day"),
        pl.when(pl.col("input_above") == TOKENS_BELOW_ANY).then(None)
        .otherwise(pl.col("input_above")).alias("input_tokens_above"),
    )
    keys = ["provider", "request_model", "response_model"]
    shown = [*keys, "effective_from", "effective_to", "time_of_day", "input_tokens_above",
             *RATE_COLUMNS, "price_source"]
    out = out.select(shown).with_columns(pl.col("price_source").fill_null(UNPRICED))
    if usage is not None:
        out = usage.join(out, on=keys, how="left", nulls_equal=True)
        out = out.select([*keys, *[c for c in usage.columns if c not in keys],
                          *[c for c in shown if c not in keys]])
    out = out.with_columns([
        pl.when(pl.col(k) == "").then(None).otherwise(pl.col(k)).alias(k) for k in keys
    ])
    return out.sort(keys, nulls_last=True)


def _hhmm_expr(column: str) -> pl.Expr:
    seconds = pl.col(column) // 1_000_000_000
    hours = (seconds // 3600).cast(pl.String).str.zfill(2)
    minutes = (seconds % 3600 // 60).cast(pl.String).str.zfill(2)
    return pl.concat_str([hours, pl.lit(":"), minutes])


def model_price_at(provider: str | None, model: str, at: datetime,
                   config: Config, input_tokens: int = 0) -> dict[str, Any] | None:
    """The one price in force for a call, as a dict (for `stepscope prices --model`)."""
    key = PriceKey(provider, model, None)
    at_ns = int(at.timestamp() * 1e9)
    second = int(at.timestamp()) % DAY_SECONDS
    for row in price_rows(key, config):
        if (row.valid_from_ns <= at_ns < row.valid_to_ns
                and row.day_from_s <= second < row.day_to_s
                and row.input_above < input_tokens <= row.input_upto):
            if row.source is None:
                return None
            return {**row.rates.__dict__, "price_source": row.source}
    return None


def keys_from_frame(frame: pl.DataFrame) -> Sequence[PriceKey]:
    """PriceKeys from rows with provider, request_model, response_model ('' = absent)."""
    return [
        PriceKey(p or None, q or None, r or None)
        for p, q, r in frame.select("provider", "request_model", "response_model").iter_rows()
    ]


__all__ = [
    "LIBRARY",
    "PRICE_TABLE_SCHEMA",
    "PriceKey",
    "build_price_table",
    "describe_price_table",
    "keys_from_frame",
    "library_model",
    "model_price_at",
    "price_rows",
    "prices_fingerprint",
    "user_price_matches",
]
