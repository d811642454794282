"""Compressed bodies (gzip, deflate, zstd) and the limits that stop decompression bombs."""

from __future__ import annotations

import gzip
import zlib

import pytest
import zstandard
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from serve_harness import JSON, fixture, post, running_server, wait_for_rows

from stepscope.server.limits import MIB, BodyTooLarge, CorruptBody, ServeLimits, decompress


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
])
def test_compressed_bodies_are_accepted(tmp_path, encoding, compress):
    with running_server(tmp_path / "db") as server:
        body = compress(fixture("openai-v2.traces.pb"))
        status, _, answer = post(server.port, "/v1/traces", body,
                                 headers={"Content-Encoding": encoding})
        assert status == 200
        assert not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")
        assert wait_for_rows(tmp_path / "db", 10) == 10


def test_gzip_json_is_accepted(tmp_path):
    with running_server(tmp_path / "db") as server:
        body = gzip.compress(fixture("openinference.traces.json"))
        status, _, answer = post(server.port, "/v1/traces", body, JSON,
                                 headers={"Content-Encoding": "gzip"})
        assert (status, answer) == (200, b"{}")
        assert wait_for_rows(tmp_path / "db", 10) == 10


def test_gzip_bomb_is_413_and_costs_no_more_than_the_limit(tmp_path):
    bomb = gzip.compress(bytes(200 * MIB), compresslevel=9)
    assert len(bomb) < 1 * MIB
    limits = ServeLimits(max_decompressed_bytes=8 * MIB)
    with running_server(tmp_path / "db", limits=limits) as server:
        status, _, answer = post(server.port, "/v1/traces", bomb,
                                 headers={"Content-Encoding": "gzip"})
        assert status == 413
        assert Status.FromString(answer).message == \
            f"body decompresses to more than the {8 * MIB}-byte limit"


def test_corrupt_gzip_is_400(tmp_path):
    with running_server(tmp_path / "db") as server:
        body = gzip.compress(fixture("openai-v2.traces.pb"))[:-20]
        status, _, answer = post(server.port, "/v1/traces", body,
                                 headers={"Content-Encoding": "gzip"})
        assert status == 400
        assert Status.FromString(answer).message == "body is truncated gzip data"
        status, _, _ = post(server.port, "/v1/traces", b"not gzip at all",
                            headers={"Content-Encoding": "gzip"})
        assert status == 400


def test_decompress_stops_at_the_limit():
    with pytest.raises(BodyTooLarge):
        decompress(zstandard.ZstdCompressor().compress(bytes(4 * MIB)), "zstd", MIB)
    with pytest.raises(BodyTooLarge):
        decompress(bytes(MIB + 1), None, MIB)
    with pytest.raises(CorruptBody):
        decompress(b"\x28\xb5\x2f\xfd garbage", "zstd", MIB)
    data = b"spans" * 1000
    assert decompress(gzip.compress(data) + gzip.compress(data), "gzip", MIB) == data + data
    raw_deflate = zlib.compressobj(wbits=-15)
    assert decompress(raw_deflate.compress(data) + raw_deflate.flush(), "deflate", MIB) == data
