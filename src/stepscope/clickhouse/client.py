"""The two ways stepscope talks to ClickHouse, behind one small interface.

* `HttpClient`: a ClickHouse server, through `clickhouse-connect` (the project's own
  Python client, HTTP, Arrow in and out).
* `ChdbClient`: the ClickHouse engine in this process, through `chdb`.

Both speak ClickHouse SQL with typed `{name:Type}` parameters whose values travel as
text (stepscope.analytics.dialect.bind), and both return Arrow tables. Every session
runs with the settings that make ClickHouse answer as the analytics SQL expects
(`SESSION_SETTINGS`).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Protocol

import pyarrow as pa

from stepscope.clickhouse.location import ClickHouseLocation

# What the analytics SQL (written for DuckDB's standard semantics) needs of a session:
# an unmatched LEFT JOIN gives NULLs rather than zeros and empty strings, an aggregate
# over no rows gives NULL rather than 0, times without a zone are UTC, and JSON text
# (exports) is written as DuckDB writes it.
SESSION_SETTINGS: dict[str, Any] = {
    "join_use_nulls": 1,
    "aggregate_functions_null_for_empty": 1,
    "session_timezone": "UTC",
    "output_format_arrow_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
    "output_format_json_escape_forward_slashes": 0,
    # A span's copies always share a day partition (stepscope.clickhouse.tables), so FINAL
    # may dedupe each partition alone: a third of the time for a day's run tables.
    "do_not_merge_across_partitions_select_final": 1,
    # A batch of old files (a backfill, an import) may span days of hour partitions.
    "max_partitions_per_insert_block": 0,
}
INSTALL_HINT = "pip install 'stepscope[clickhouse]'"


class ClickHouseError(RuntimeError):
    """ClickHouse refused a statement or cannot be reached; the message says which."""


class Client(Protocol):
    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table: ...

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None: ...

    def close(self) -> None: ...


def connect(location: ClickHouseLocation, database: str | None = None) -> Client:
    """A new client (and session) for the location, in `database` when given."""
    if location.kind == "chdb":
        return ChdbClient(location, database)
    return HttpClient(location, database)


class HttpClient:
    """A session on a ClickHouse server over HTTP (clickhouse-connect)."""

    def __init__(self, location: ClickHouseLocation, database: str | None = None):
        try:
            import clickhouse_connect
        except ImportError:
            raise ClickHouseError(
                f"the ClickHouse backend needs clickhouse-connect: {INSTALL_HINT}") from None
        try:
            self._client = clickhouse_connect.get_client(
                host=location.host, port=location.port, username=location.user,
                password=location.password, secure=location.secure,
                database=database or "default",
                session_id=f"stepscope-{uuid.uuid4().hex}",
                settings={**SESSION_SETTINGS, "insert_deduplicate": 1},
            )
        except Exception as exc:  # the driver raises several types for one cause
            raise ClickHouseError(f"{location.display}: cannot connect: {exc}") from None
        self._lock = threading.Lock()      # one statement at a time per session

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        with self._lock, _errors():
            return self._client.query_arrow(sql, parameters=params or None, use_strings=True)

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self._lock, _errors():
            self._client.command(sql, parameters=params or None)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        with self._lock, _errors():
            self._client.insert_arrow(table, data, settings=settings)

    def close(self) -> None:
        self._client.close()


_CHDB_LOCK = threading.Lock()
_CHDB_OPEN: dict[str, int] = {}     # chdb data directory -> clients open on it


class ChdbClient:
    """A session of the in-process ClickHouse engine (chdb) on a data directory.

    chdb runs one embedded server per process, on one data directory at a time; each
    client is a connection of its own to it, so its temporary tables (the analytics'
    run tables) are private to it.
    """

    def __init__(self, location: ClickHouseLocation, database: str | None = None):
        try:
            import chdb
        except ImportError:
            raise ClickHouseError(f"chdb:// stores need chdb: {INSTALL_HINT}") from None
        self._path = location.chdb_path
        with _CHDB_LOCK:
            others = [p for p, n in _CHDB_OPEN.items() if n and p != self._path]
            if others:
                raise ClickHouseError(
                    f"chdb://{self._path}: this process already uses chdb://{others[0]}; "
                    "chdb runs one data directory per process")
            try:
                self._con = chdb.connect(self._path)
            except Exception as exc:
                raise ClickHouseError(f"chdb://{self._path}: cannot open: {exc}") from None
            _CHDB_OPEN[self._path] = _CHDB_OPEN.get(self._path, 0) + 1
        self._lock = threading.Lock()
        self._closed = False
        for name, value in SESSION_SETTINGS.items():
            self.command(f"SET {name} = {_setting_literal(value)}")
        if database:
            self.command(f"USE {database}")

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        with self._lock, _errors():
            return self._con.query(sql, "ArrowTable", params=_as_text(params))

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self._lock, _errors():
            self._con.query(sql, "Null", params=_as_text(params))

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        # chdb reads a Python object named in the query: `rows` below.
        rows = data  # noqa: F841
        setting = f" SETTINGS insert_deduplication_token = '{dedup_token}'" if dedup_token else ""
        with self._lock, _errors():
            self._con.query(f"INSERT INTO {table}{setting} SELECT * FROM Python(rows)", "Null")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._con.close()
        with _CHDB_LOCK:
            _CHDB_OPEN[self._path] -= 1


def _as_text(params: dict[str, Any] | None) -> dict[str, str] | None:
    """Parameter values as ClickHouse reads them from text (escaped, arrays as literals):
    chdb takes them so; the HTTP client formats its own the same way, with this code."""
    if not params:
        return None
    from clickhouse_connect.driver.binding import format_bind_value

    return {name: format_bind_value(value) for name, value in params.items()}


def _setting_literal(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


class _errors:
    """Turn driver exceptions into ClickHouseError with ClickHouse's own message."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, ClickHouseError | KeyboardInterrupt):
            return False
        raise ClickHouseError(str(exc).strip()) from exc
