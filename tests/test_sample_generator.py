"""The sample generator: deterministic bytes, real OTLP, exporter-like batching, conventions.

Files are decoded with opentelemetry-proto directly (tests/otlp_sample_reader.py), never
with stepscope's own ingest.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from genai_prices import Usage, calc_price
from otlp_sample_reader import raw_bytes, read_dir, requests

from stepscope.cli import cli
from stepscope.sample_traces import bundled_sample_dir, bundled_traces_dir, generate
from stepscope.sample_traces.company import MODELS

SMALL = {"days": 3, "spans": 6000}
END = datetime(2026, 11, 16, tzinfo=UTC)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small")
    generate(out, seed=7, **SMALL)
    return out


def test_same_seed_gives_the_same_bytes(small: Path, tmp_path: Path) -> None:
    generate(tmp_path, seed=7, **SMALL)
    assert _files(tmp_path) == _files(small)


def test_a_different_seed_gives_different_data(small: Path, tmp_path: Path) -> None:
    generate(tmp_path, seed=8, **SMALL)
    ours, theirs = _files(small), _files(tmp_path)
    common = ours.keys() & theirs.keys()
    assert len(common) >= 12 and "ground_truth.json" in common
    assert all(ours[name] != theirs[name] for name in common)


def test_bundled_sample_is_what_the_default_arguments_generate(tmp_path: Path) -> None:
    bundled = bundled_sample_dir()
    result = generate(tmp_path)
    fresh = _files(tmp_path)
    shipped = _files(bundled)
    assert fresh.keys() == shipped.keys()
    # Compare content, not compressed bytes: another zstd/zlib build may compress differently.
    for name in fresh:
        if name.startswith("traces/"):
            assert raw_bytes(tmp_path / name) == raw_bytes(bundled / name), name
        else:
            assert fresh[name] == shipped[name], name
    assert result.spans == json.loads(shipped["ground_truth.json"])["data"]["spans"]
    assert sum(len(v) for v in shipped.values()) <= 5 * 1024 * 1024


def test_bundled_sample_has_fourteen_days_of_every_service() -> None:
    names = sorted(p.relative_to(bundled_traces_dir()).as_posix()
                   for p in bundled_traces_dir().rglob("*") if p.is_file())
    assert len(names) == 5 * 14
    assert names[0] == "account-assistant/traces-2026-11-02.jsonl.gz"
    assert "support-agent/traces-2026-11-15.binpb.zst" in names
    assert not any("2026-11-16" in n or "2026-11-01" in n for n in names)


def test_protobuf_records_are_canonical_export_requests(small: Path) -> None:
    files = sorted(small.rglob("*.binpb.zst"))
    assert files
    for path in files:
        data = raw_bytes(path)
        pos = 0
        for request in requests(path):
            length = int.from_bytes(data[pos:pos + 4], "big")
            assert request.SerializeToString() == data[pos + 4:pos + 4 + length]
            pos += 4 + length
        assert pos == len(data)


def test_json_lines_follow_the_otlp_json_rules(small: Path) -> None:
    files = sorted(small.rglob("*.jsonl.gz"))
    assert files
    for line in gzip.decompress(files[0].read_bytes()).splitlines():
        request = json.loads(line)
        for rs in request["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"])
                    assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
                    assert isinstance(span["startTimeUnixNano"], str)
                    assert isinstance(span["kind"], int)
                    assert set(span) <= {"traceId", "spanId", "parentSpanId", "flags", "name",
                                         "kind", "startTimeUnixNano", "endTimeUnixNano",
                                         "attributes", "events", "status"}
                    for attr in span["attributes"]:
                        if "intValue" in attr["value"]:
                            assert isinstance(attr["value"]["intValue"], str)
                    assert isinstance(span["status"].get("code", 0), int)


def test_batches_look_like_batch_span_processor_exports(small: Path) -> None:
    spans = read_dir(small)
    requests_of_trace: dict[str, set[tuple[str, int]]] = defaultdict(set)
    per_request: Counter[tuple[str, int]] = Counter()
    for s in spans:
        requests_of_trace[s.trace_id].add((s.file, s.request))
        per_request[(s.file, s.request)] += 1
    assert max(per_request.values()) <= 512
    split = sum(1 for r in requests_of_trace.values() if len(r) > 1)
    assert split > len(requests_of_trace) // 10   # many traces span several requests
    for s in spans:
        assert {"service.name", "service.version", "deployment.environment.name"} <= set(s.resource)
    by_request: dict[tuple[str, int], list[int]] = defaultdict(list)
    for s in spans:
        by_request[(s.file, s.request)].append(s.end_ns)
    # one request holds spans that ended within one 5-second export interval
    assert max(max(v) - min(v) for v in by_request.values()) < 5_000_000_000


def test_only_ended_spans_are_written(small: Path) -> None:
    end_ns = int(END.timestamp()) * 1_000_000_000
    spans = read_dir(small)
    assert max(s.end_ns for s in spans) < end_ns
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)


def test_volume_scales_with_spans(tmp_path: Path) -> None:
    result = generate(tmp_path, days=2, spans=20000, incidents=[])
    assert 17000 <= result.spans <= 23000


def test_stationary_history_has_no_planted_incident(tmp_path: Path) -> None:
    generate(tmp_path, days=14, spans=15000, incidents=[])
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert truth["incidents"] == []
    spans = read_dir(tmp_path)
    assert not any(s.attributes.get("http.response.status_code") == 429 for s in spans)
    assert not any(s.attributes.get("error.type") == "SettingsSchemaError" for s in spans)
    models = {s.attributes.get("gen_ai.request.model") for s in spans}
    assert "acme-chartwriter-v1" not in models and "claude-sonnet-4-5-20250929" not in models
    assert {s.attributes.get("gen_ai.response.model") for s in spans
            if s.attributes.get("gen_ai.request.model") == "gpt-4o" and s.status_code != 2
            } == {"gpt-4o-2024-08-06"}
    assert {s.resource["service.version"] for s in spans
            if s.resource["service.name"] == "helpcenter-bot"} == {"1.9.4"}


WORKFLOW_KEYS = ("gen_ai.workflow.name", "gen_ai.agent.name", "traceloop.workflow.name",
                 "agent.name")


def test_each_service_speaks_its_own_convention(small: Path) -> None:
    spans = read_dir(small)
    keys: dict[str, set[str]] = defaultdict(set)
    for s in spans:
        keys[s.resource["service.name"]] |= set(s.attributes)
        if s.parent_span_id is None:
            assert s.attributes["task.outcome"] in ("completed", "escalated", "failed")
            assert s.attributes["tenant.id"]
            assert any(k in s.attributes for k in WORKFLOW_KEYS)
    assert {"gen_ai.provider.name", "gen_ai.usage.input_tokens",
            "gen_ai.usage.cache_read.input_tokens"} <= keys["support-agent"]
    assert {"gen_ai.system", "gen_ai.usage.prompt_tokens",
            "gen_ai.usage.completion_tokens"} <= keys["account-assistant"]
    assert {"openinference.span.kind", "llm.model_name", "llm.token_count.prompt",
            "llm.token_count.prompt_details.cache_read"} <= keys["billing-agent"]
    assert {"traceloop.span.kind", "traceloop.workflow.name", "llm.request.type",
            "llm.usage.total_tokens", "gen_ai.usage.cache_read_input_tokens"} <= keys["helpcenter-bot"]
    assert "gen_ai.workflow.name" in keys["reporting-worker"]


def test_failed_steps_carry_status_exception_event_and_http_status(small: Path) -> None:
    failed = [s for s in read_dir(small) if s.status_code == 2]
    assert len(failed) > 20
    for s in failed:
        assert s.status_message
        events = [e for e in s.events if e[0] == "exception"]
        assert events and events[0][2]["exception.message"] == s.status_message
        if s.resource["service.name"] != "billing-agent":   # OpenInference sets no error.type
            assert s.attributes["error.type"] == events[0][2]["exception.type"]
    assert any(s.attributes.get("http.response.status_code") == 503 for s in failed)
    # messages vary in their ids and numbers: more distinct messages than error types
    assert len({s.status_message for s in failed}) > 3 * len({s.events[0][2]["exception.type"]
                                                               for s in failed})


def test_models_have_prices_except_the_custom_one() -> None:
    when = datetime(2026, 11, 10, tzinfo=UTC)
    for model in MODELS.values():
        if model.request_name == "acme-chartwriter-v1":
            with pytest.raises(LookupError):
                calc_price(Usage(input_tokens=1), model_ref=model.response_name,
                           provider_id=model.provider, genai_request_timestamp=when)
            continue
        price = calc_price(Usage(input_tokens=1000, output_tokens=100),
                           model_ref=model.response_name, provider_id=model.provider,
                           genai_request_timestamp=when)
        assert price.total_price > 0


def test_content_contains_fake_contact_details_for_redaction(small: Path) -> None:
    texts = " ".join(str(v) for s in read_dir(small) for v in s.attributes.values())
    assert re.search(r"[a-z]+\.[a-z]+\d+@example\.com", texts)
    assert re.search(r"\+1 415 555 0\d{3}", texts)


def test_cli_generates_and_reports(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["sample", "generate", "--out", str(tmp_path), "--days", "2",
                                 "--spans", "3000", "--incidents", "none", "--otlp-format",
                                 "json", "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["files"] == 10 and summary["spans"] > 2000
    assert sorted(p.suffix for p in (tmp_path / "traces").rglob("*.*")) == [".gz"] * 10


@pytest.mark.parametrize("args, flag", [
    (["--end", "2026-11-16T05:00"], "--end"),
    (["--incidents", "8"], "--incidents"),
    (["--days", "0"], "--days"),
])
def test_cli_rejects_bad_options(tmp_path: Path, args: list[str], flag: str) -> None:
    result = CliRunner().invoke(cli, ["sample", "generate", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert flag in result.output
