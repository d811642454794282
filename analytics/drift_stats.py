"""Two-sample tests and effect sizes for drift, and the family-wise error correction.

Each test compares a baseline sample with a current one and answers three questions:
is there enough data (a minimum sample size), is the difference real (a p-value), and
is it big enough to matter (an effect size against a minimum). A finding needs all
three, with p-values corrected across every test of one drift run (Holm), so that a
quiet week, where every difference is noise, reports nothing.

* Continuous values (latency, tokens, cost, steps): two-sample Kolmogorov-Smirnov; the
  effect is the ratio current/baseline of the median or the p95, whichever moved more.
* Rates (error rate, share of `length` finishes): a chi-square test of the 2x2 table
  (Fisher's exact test when an expected count is under 5); the effect is the ratio of
  the rates, and the absolute change must be at least `MIN_RATE_CHANGE` too.
* Mixes (tool calls, responded model versions): a chi-square test of the 2xk table
  (categories too rare for the test pooled); the effect is the Jensen-Shannon distance
  (base 2, 0 = same mix, 1 = disjoint).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

#: Fewer values (runs, calls) than this on either side: no test.
MIN_SAMPLE = 30
#: A rate test also needs this many events on the two sides together.
MIN_EVENTS = 5
#: Smallest change that counts: a 20% change of a median, p95 or rate ...
MIN_RATIO = 1.2
#: ... a rate moving by at least one percentage point ...
MIN_RATE_CHANGE = 0.01
#: ... or a mix at least this far apart (Jensen-Shannon distance, base 2).
MIN_JS_DISTANCE = 0.1
#: Family-wise error rate across all the tests of one drift run.
FAMILY_ALPHA = 0.01
#: Severity of a worsening: ratios (or their inverses) and distances from which a
#: finding is a warning or critical; below, and for every improvement, it is info.
WARNING_RATIO, CRITICAL_RATIO = 1.3, 2.0
WARNING_JS, CRITICAL_JS = 0.3, 0.6
#: Expected count under which a mix category is pooled into "(other)" for the test.
MIN_EXPECTED = 5.0


@dataclass
class TestResult:
    """One two-sample comparison. `baseline`/`current` summarise each side.

    `ratio` is current/baseline for continuous values and rates (None for mixes);
    `effect_size` is that ratio, or the Jensen-Shannon distance of a mix.
    """

    test: str
    p_value: float
    effect_size: float
    effect_measure: str
    large_enough: bool
    baseline: dict[str, Any]
    current: dict[str, Any]
    ratio: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _p95(values: np.ndarray) -> float:
    # Linear interpolation between order statistics, as DuckDB quantile_cont and the KPIs.
    return float(np.quantile(values, 0.95))


def _ratio(current: float, baseline: float) -> float | None:
    if baseline <= 0 or current < 0:
        return None
    if current == 0:
        return 0.0
    return current / baseline


def _log_size(ratio: float | None) -> float:
    if ratio is None:
        return -1.0
    if ratio == 0:
        return math.inf
    return abs(math.log(ratio))


def continuous(baseline: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
               ) -> TestResult | None:
    """KS test and median/p95 ratio of two samples; None below `MIN_SAMPLE`."""
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if len(b) < MIN_SAMPLE or len(c) < MIN_SAMPLE:
        return None
    summary_b = {"n": len(b), "median": float(np.median(b)), "p95": _p95(b), "mean": float(b.mean())}
    summary_c = {"n": len(c), "median": float(np.median(c)), "p95": _p95(c), "mean": float(c.mean())}
    candidates = [(stat, _ratio(summary_c[stat], summary_b[stat])) for stat in ("median", "p95")]
    stat, ratio = max(candidates, key=lambda sr: _log_size(sr[1]))
    if ratio is None:
        return None
    p_value = float(stats.ks_2samp(b, c).pvalue)
    large = _log_size(ratio) >= math.log(MIN_RATIO)
    return TestResult("ks", p_value, ratio, f"ratio of {stat}s", large, summary_b, summary_c,
                      ratio=ratio, notes={"statistic": stat})


def rate(baseline_events: int, baseline_n: int, current_events: int, current_n: int
         ) -> TestResult | None:
    """Two-proportion test (chi-square, or Fisher's exact test on small counts)."""
    if baseline_n < MIN_SAMPLE or current_n < MIN_SAMPLE:
        return None
    if baseline_events + current_events < MIN_EVENTS:
        return None
    table = np.array([[baseline_events, baseline_n - baseline_events],
                      [current_events, current_n - current_events]], dtype=np.float64)
    if (table.sum(axis=0) == 0).any():
        return None
    expected = stats.contingency.expected_freq(table)
    if (expected < MIN_EXPECTED).any():
        p_value, test = float(stats.fisher_exact(table.astype(np.int64)).pvalue), "fisher"
    else:
        p_value, test = float(stats.chi2_contingency(table).pvalue), "chi2"
    rb, rc = baseline_events / baseline_n, current_events / current_n
    # Half an event added to each side keeps the ratio finite when a rate starts at 0.
    ratio = ((current_events + 0.5) / (current_n + 1)) / ((baseline_events + 0.5) / (baseline_n + 1))
    large = _log_size(ratio) >= math.log(MIN_RATIO) and abs(rc - rb) >= MIN_RATE_CHANGE
    return TestResult(test, p_value, ratio, "ratio of rates", large,
                      {"n": baseline_n, "events": baseline_events, "rate": rb},
                      {"n": current_n, "events": current_events, "rate": rc}, ratio=ratio)


def mix(baseline: Mapping[str, int], current: Mapping[str, int]) -> TestResult | None:
    """Chi-square test of two category mixes and their Jensen-Shannon distance."""
    nb, nc = sum(baseline.values()), sum(current.values())
    if nb < MIN_SAMPLE or nc < MIN_SAMPLE:
        return None
    categories = sorted(set(baseline) | set(current))
    b = np.array([baseline.get(k, 0) for k in categories], dtype=np.float64)
    c = np.array([current.get(k, 0) for k in categories], dtype=np.float64)
    distance = float(jensenshannon(b / nb, c / nc, base=2))
    if not math.isfinite(distance):
        distance = 0.0
    p_value = _mix_p_value(b, c)
    if p_value is None:
        return None
    return TestResult("chi2", p_value, distance, "Jensen-Shannon distance",
                      distance >= MIN_JS_DISTANCE,
                      {"n": int(nb), "shares": _shares(categories, b)},
                      {"n": int(nc), "shares": _shares(categories, c)})


def _mix_p_value(b: np.ndarray, c: np.ndarray) -> float | None:
    """Chi-square p-value with categories of small expected count pooled together."""
    total = b + c
    expected_min = np.minimum(total * b.sum(), total * c.sum()) / (b.sum() + c.sum())
    common = expected_min >= MIN_EXPECTED
    rows_b, rows_c = list(b[common]), list(c[common])
    if (~common).any():
        rows_b.append(b[~common].sum())
        rows_c.append(c[~common].sum())
    table = np.array([rows_b, rows_c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0 if table.shape[1] == 1 else None
    return float(stats.chi2_contingency(table).pvalue)


def _shares(categories: list[str], counts: np.ndarray) -> dict[str, float]:
    total = counts.sum()
    return {k: float(v / total) for k, v in zip(categories, counts, strict=True) if v > 0}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: reject where adjusted <= the family alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def severity(result: TestResult, worse_when_higher: bool | None) -> str:
    """info, warning or critical: how far a change goes in the harmful direction.

    `worse_when_higher` says which direction harms (None: any change of a mix may).
    Improvements are always info.
    """
    if result.ratio is not None and worse_when_higher is not None:
        worse = result.ratio > 1 if worse_when_higher else result.ratio < 1
        if not worse:
            return "info"
        size = result.ratio if result.ratio >= 1 else (1 / result.ratio if result.ratio else math.inf)
        if size >= CRITICAL_RATIO:
            return "critical"
        return "warning" if size >= WARNING_RATIO else "info"
    if result.effect_size >= CRITICAL_JS:
        return "critical"
    return "warning" if result.effect_size >= WARNING_JS else "info"
