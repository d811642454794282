"""genai-prices' bundled snapshot as rows of flat rates over time, day and input size.

The library answers "what did this call cost?"; stepscope needs "which rates apply
when?", so that SQL can price every call at once. For one model this module walks the
library's price history (start dates), its time-of-day prices and its input-size tiers
into non-overlapping rows, each with flat per-million-token rates and a `source` text
naming the library version, provider, model and the condition
(`genai-prices 0.2.3: anthropic claude-sonnet-4-5 (>200000 input tokens)`).
`stepscope.analytics.pricing` adds the user's prices on top.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

LIBRARY = f"genai-prices {genai_prices.__version__}"

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
class Rates:
    """Flat rates in USD per million tokens (per call for `per_request_usd`)."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None
    per_request_usd: float | None = None


@dataclass(frozen=True)
class PriceRow:
    """One price in force over [valid_from, valid_to), a time-of-day window and a tier."""

    valid_from_ns: int
    valid_to_ns: int
    day_from_s: int
    day_to_s: int
    input_above: int
    input_upto: int
    rates: Rates
    source: str | None
    priced_provider: str | None
    priced_model: str | None


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


def _tier_rows(price: gp.ModelPrice) -> list[tuple[int, int, Rates]]:
    """Split a model price into input-token bands, each with flat rates."""
    bounds = [TOKENS_BELOW_ANY, *_tier_starts(price), TOKENS_MAX]
    rows = []
    for above, upto in itertools.pairwise(bounds):
        per_k = getattr(price, "requests_kcount", None)
        rates = Rates(
            **{col: _rate(getattr(price, key, None), above) for key, col in RATE_KEYS.items()},
            per_request_usd=_rate(per_k, above) / 1000 if per_k is not None else None,
        )
        rows.append((above, upto, rates))
    return rows


def day_ns(day: date) -> int:
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
                day_ns(since) if since else NS_MIN,
                day_ns(until) if until else NS_MAX,
                lo, hi, chosen, since,
            ))
    return pieces


def library_rows(key: PriceKey) -> list[PriceRow]:
    """The library's prices of a key over all time; empty when it does not know the model."""
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
                    qualifiers.append(f"{hhmm(day_from)}-{hhmm(day_to)} UTC")
                if above != TOKENS_BELOW_ANY:
                    qualifiers.append(f">{above} input tokens")
                source = f"{LIBRARY}: {provider.id} {model.id}"
                if qualifiers:
                    source += f" ({', '.join(qualifiers)})"
                rows.append(PriceRow(valid_from, valid_to, day_from, day_to, above, upto, rates,
                                 source, provider.id, model.id))
        return rows
    return []


def hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
