"""Normalise real OTLP payloads for tests: spans -> protobuf request -> raw table -> steps.

Tests state spans with `otlp_builders`, and these helpers run them through the same path
as `stepscope ingest` (the protobuf decoder, then `normalise`), so an expected value in a
test is what a user would get from the same spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from otlp_builders import DEFAULT_SCOPE, request, to_protobuf

from stepscope.config import Config, config_from_dict
from stepscope.ingest.formats import Unit
from stepscope.ingest.normalise import normalise
from stepscope.ingest.otlp_decode import decode_unit


def config(**sections: Any) -> Config:
    """A configuration from TOML-shaped sections, e.g. config(privacy={"content": "keep"})."""
    return config_from_dict(sections)


def decode(payload: bytes, kind: str = "proto", source: str = "test.pb") -> pa.Table:
    raw, rejected = decode_unit(Unit(kind=kind, source=source, records=[(1, payload)]))
    assert rejected == []
    return raw


def normalise_raw(raw: pa.Table, cfg: Config | None = None) -> pa.Table:
    return normalise(duckdb.connect(), raw, cfg or Config())


def steps_table(req: ExportTraceServiceRequest | bytes, cfg: Config | None = None) -> pa.Table:
    payload = req if isinstance(req, bytes) else to_protobuf(req)
    return normalise_raw(decode(payload), cfg)


def steps(spans: Iterable[Span], cfg: Config | None = None,
          resource: Mapping[str, Any] | None = None,
          scope: tuple[str, str] = DEFAULT_SCOPE) -> list[dict[str, Any]]:
    """The normalised rows of `spans` (one request), as dicts in span order."""
    return steps_table(request(spans, resource, scope), cfg).to_pylist()


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def one(spans: Iterable[Span], cfg: Config | None = None, **kwargs: Any) -> dict[str, Any]:
    rows = steps(spans, cfg, **kwargs)
    assert len(rows) == 1
    return rows[0]


def attrs(row: dict[str, Any]) -> dict[str, str]:
    """The attribute map of a row (Arrow gives it as a list of pairs)."""
    return dict(row["attributes"])
