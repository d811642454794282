"""False positives: on a history where nothing changes, drift reports nothing.

For each of 20 seeds the sample generator writes eight days of the company's traces with
every planted incident switched off (volume still follows the hours and weekdays), the
files go through the real ingest, and drift compares the last day with the seven before
it, as by default. The current day moves through the week with the seed, so weekends
and Monday batches are in it too. Each seed makes dozens of tests; with the family-wise
error rate held at 1% and the 20% minimum effect, at most one seed in twenty may report
anything.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stepscope.analytics.drift import drift_findings, drift_tests
from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths
from stepscope.sample_traces import DEFAULT_END, generate
from stepscope.store import Store

SEEDS = range(1, 21)
DAYS = 8
MAX_SEEDS_WITH_FINDINGS = 1
MIN_TESTS_PER_SEED = 40


def _stationary_store(root: Path, seed: int) -> tuple[Store, object]:
    end = DEFAULT_END - timedelta(days=seed % 7)
    generated = root / "generated"
    generate(generated, seed=seed, days=DAYS, end=end, incidents=[], file_format="proto",
             compress=False)
    # One collector file-exporter stream per seed: ingest cost is mostly per file.
    stream = root / "traces.binpb"
    with open(stream, "wb") as out:
        for part in sorted(generated.rglob("*.binpb")):
            out.write(part.read_bytes())
    store = Store.open(root / "db", create=True)
    report = ingest_paths(store, [stream], Config(), workers=1)
    assert report.rejected == [] and report.spans_stored > 20_000
    return store, end


@pytest.mark.slow
def test_a_quiet_history_reports_nothing_in_at_least_19_of_20_seeds(tmp_path: Path) -> None:
    noisy: dict[int, list[str]] = {}
    for seed in SEEDS:
        store, now = _stationary_store(tmp_path / str(seed), seed)
        with store.connect() as con:
            assert drift_tests(con, now=now).height >= MIN_TESTS_PER_SEED
            findings = drift_findings(con, now=now)
        if not findings.is_empty():
            noisy[seed] = [f"{r['metric']} {r['workflow']} {r['model']}" for r in findings.to_dicts()]
    assert len(noisy) <= MAX_SEEDS_WITH_FINDINGS, noisy
