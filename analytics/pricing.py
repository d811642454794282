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

A stretch of time neither prices is a row without a source: its calls cost NULL and are
counted as unpriced, never $0. The library's side is `stepscope.analytics.price_library`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from genai_prices import data_snapshot

from stepscope.analytics.price_library import (
    DAY_NS,
    DAY_SECONDS,
    LIBRARY,
    NS_MAX,
    NS_MIN,
    RATE_COLUMNS,
    TOKENS_BELOW_ANY,
    TOKENS_MAX,
    PriceKey,
    PriceRow,
    Rates,
    day_ns,
    library_model,
    library_rows,
)
from stepscope.config import Config, PriceConfig

UNPRICED = "unpriced: no price known"

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
            lo = day_ns(price.effective_from) if price.effective_from else NS_MIN
            hi = day_ns(price.effective_to) if price.effective_to else NS_MAX
            out.append((lo, hi, i, price))
    return out


def _user_row(lo: int, hi: int, index: int, price: PriceConfig, config: Config,
              key: PriceKey) -> PriceRow:
    rates = Rates(
        input_per_mtok=price.input_per_mtok,
        output_per_mtok=price.output_per_mtok,
        cache_read_per_mtok=price.cached_input_per_mtok,
        cache_write_per_mtok=price.cache_write_per_mtok,
    )
    source = f"{_config_name(config)} prices[{index}]: {price.match}"
    return PriceRow(lo, hi, 0, DAY_SECONDS, TOKENS_BELOW_ANY, TOKENS_MAX, rates, source,
                price.provider or key.provider or "", price.match)


def price_rows(key: PriceKey, config: Config) -> list[PriceRow]:
    """Every price of a key's calls over all time, without overlaps and without gaps.

    User prices win wherever they are in force (the first matching entry where several
    overlap); elsewhere the library's schedule applies; where neither has a price, a row
    without a source says the calls are unpriced. So each call matches exactly one row.
    """
    library = library_rows(key)
    library_provider = library[0].priced_provider if library else None
    users = _user_rows(key, config, library_provider)
    if not users:
        return _fill_gaps(library)
    cuts = sorted({NS_MIN, NS_MAX} | {b for lo, hi, _, _ in users for b in (lo, hi)})
    rows: list[PriceRow] = []
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


def _fill_gaps(rows: list[PriceRow]) -> list[PriceRow]:
    """Add an unpriced row for each stretch of time no price covers."""
    spans = sorted({(r.valid_from_ns, r.valid_to_ns) for r in rows})
    gaps, cursor = [], NS_MIN
    for lo, hi in spans:
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < NS_MAX:
        gaps.append((cursor, NS_MAX))
    unpriced = [PriceRow(lo, hi, 0, DAY_SECONDS, TOKENS_BELOW_ANY, TOKENS_MAX, Rates(),
                     None, None, None) for lo, hi in gaps]
    return sorted(rows + unpriced, key=lambda r: (r.valid_from_ns, r.day_from_s, r.input_above))


def _replace_range(row: PriceRow, lo: int, hi: int) -> PriceRow:
    return PriceRow(lo, hi, row.day_from_s, row.day_to_s, row.input_above, row.input_upto,
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


def _price_id(key: PriceKey, row: PriceRow) -> int:
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
