"""The bundled sample ingests cleanly: no rejected file, every token and model key mapped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepscope.analytics.attributes import attribute_keys
from stepscope.config import Config
from stepscope.ingest.pipeline import IngestReport
from stepscope.sample_traces import bundled_sample_dir, bundled_traces_dir
from stepscope.store import Store


@pytest.fixture(scope="module")
def store(sample_ingest: tuple[Store, IngestReport]) -> Store:
    store, report = sample_ingest
    assert report.rejected == []
    truth = json.loads((bundled_sample_dir() / "ground_truth.json").read_text())
    assert report.spans_stored == truth["data"]["spans"]
    assert report.duplicates == 0
    return store


@pytest.mark.slow
def test_no_token_or_model_attribute_is_left_unmapped(store: Store) -> None:
    unmapped = [row["key"] for row in attribute_keys(store.connect(), Config(), unmapped=True)]
    assert [k for k in unmapped if "token" in k or "model" in k] == []
    # what remains are the teams' own business attributes
    assert set(unmapped) <= {"refund.amount_eur", "report.scheduled", "ticket.channel"}


@pytest.mark.slow
def test_every_answered_model_call_has_model_provider_and_tokens(store: Store) -> None:
    con = store.connect()
    missing = con.execute("""
        SELECT count(*) FROM steps
        WHERE step_kind IN ('llm', 'embedding') AND status_code <> 'error'
          AND (response_model IS NULL OR provider IS NULL OR input_tokens IS NULL
               OR (step_kind = 'llm' AND output_tokens IS NULL))""").fetchone()[0]
    assert missing == 0
    roots = con.execute("""
        SELECT count(*), count(workflow), count(tenant_id), count(*) FILTER (outcome = 'unknown')
        FROM steps WHERE is_root""").fetchone()
    assert roots[0] == roots[1] == roots[2] and roots[3] == 0
    cached = con.execute("SELECT count(*) FROM steps WHERE cached_input_tokens > 0").fetchone()[0]
    assert cached > 1000


def test_sample_directory_layout_keeps_ground_truth_out_of_the_traces() -> None:
    assert not any(p.name == "ground_truth.json" for p in Path(bundled_traces_dir()).rglob("*"))
