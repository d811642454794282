"""What `--db` names: the embedded store (a directory) or a ClickHouse database.

`--db ./stepscope.duckdb` (any path) is the embedded store, `stepscope.store.Store`;
`--db clickhouse://user@host:8123/db` or `--db chdb:///dir` is a ClickHouse store
(`stepscope.clickhouse.store.ClickHouseStore`). Both answer the same calls (append,
connect, row_count, generation, ...), so commands, the dashboard and alerts take either.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Union

from stepscope.clickhouse.location import LocationError, is_clickhouse_url
from stepscope.store import Store, StoreError

if TYPE_CHECKING:
    from stepscope.clickhouse.store import ClickHouseStore

AnyStore = Union[Store, "ClickHouseStore"]


def open_store(db: str | os.PathLike[str], *, create: bool = False) -> AnyStore:
    """Open the store `db` names, creating it when `create` is set."""
    if is_clickhouse_url(db):
        from stepscope.clickhouse.client import ClickHouseError
        from stepscope.clickhouse.store import ClickHouseStore

        try:
            return ClickHouseStore.open(str(db), create=create)
        except (LocationError, ClickHouseError) as exc:
            raise StoreError(str(exc)) from None
    return Store.open(db, create=create)
