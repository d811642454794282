"""Building the demo store from the bundled sample traces."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stepscope.config import Config
from stepscope.stores import open_store
from stepscope.timeparse import iso_utc

DEFAULT_DEMO_DB = "demo-store"


def prepare_demo_store(db: str | Path, config: Config) -> dict[str, Any]:
    """Ingest the bundled sample unless the store already holds it; describe the result."""
    from stepscope.analytics.explore import store_extent
    from stepscope.ingest.pipeline import ingest_paths
    from stepscope.sample_traces import bundled_traces_dir

    store = open_store(db, create=True)
    loaded = None
    if store.row_count() == 0:
        report = ingest_paths(store, [bundled_traces_dir()], config)
        loaded = report.spans_stored
    with store.connect() as con:
        newest_ns, runs = store_extent(con)
    now = datetime.fromtimestamp(newest_ns / 1e9, UTC) if newest_ns else None
    return {
        "store": str(store),
        "spans_loaded_now": loaded if loaded is not None else 0,
        "steps": store.row_count(),
        "runs": runs,
        "now": iso_utc(now),
    }
