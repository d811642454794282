"""Fixtures shared across test files.

The bundled sample is ingested once per test session (it is the acceptance data of the
analytics, clusters, drift, alerts and dashboard tests); tests that write next to it
(alert state, demo runs) take a private copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stepscope.config import Config
from stepscope.ingest.pipeline import IngestReport, ingest_paths
from stepscope.sample_traces import bundled_traces_dir
from stepscope.store import Store


@pytest.fixture(scope="session")
def sample_ingest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, IngestReport]:
    """The bundled sample in a session-wide store, with the report of its ingest."""
    store = Store.open(tmp_path_factory.mktemp("sample") / "store", create=True)
    report = ingest_paths(store, [bundled_traces_dir()], Config())
    assert report.rejected == []
    return store, report


@pytest.fixture(scope="session")
def sample_store(sample_ingest: tuple[Store, IngestReport]) -> Store:
    """Read-only: tests must not write into this store (take `sample_store_copy`)."""
    return sample_ingest[0]


@pytest.fixture
def sample_store_copy(sample_store: Store, tmp_path: Path) -> Store:
    """A private copy of the sample store for tests that write beside the data."""
    target = tmp_path / "sample-store"
    shutil.copytree(sample_store.path, target)
    return Store.open(target)


@pytest.fixture(scope="session")
def chdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's chdb data directory (chdb runs one per process); tests keep apart
    by database name (`clickhouse_support.chdb_url`)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def sample_clickhouse_store(chdb_root: Path):
    """The bundled sample ingested into a ClickHouse store (chdb) by the same pipeline."""
    from clickhouse_support import chdb_url

    from stepscope.stores import open_store

    store = open_store(chdb_url(chdb_root, "sample"), create=True)
    report = ingest_paths(store, [bundled_traces_dir()], Config())
    assert report.rejected == []
    return store
