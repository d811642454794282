"""Normalisation benchmark: `normalise()` alone on a raw spans table, per privacy mode.

    python benchmarks/bench_normalise.py                       # 200k spans, redact and keep
    python benchmarks/bench_normalise.py --spans 1000000 --privacy redact,keep,drop
    python benchmarks/bench_normalise.py --batch 200000,50000,10000

The raw table (`raw_schema.RAW_SPAN_SCHEMA`) is generated directly, not decoded, so the
figure is normalisation only: agent traces of five spans (a root agent span, three model
calls, one tool call), the model calls in OpenTelemetry GenAI, OpenInference or
OpenLLMetry form (a third of the traces each), 15 attributes per span on average and about
300 bytes of prompt and completion content per model call, 2% of it carrying an e-mail
address, a phone number, a card number or an API key for the redaction to find.

Prints spans/s (best of --repeat runs) per privacy mode and batch size, with DuckDB limited
to --threads threads (default 2, the target machine), and the CPU time per span.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import duckdb
import pyarrow as pa

from stepscope.config import Config, PrivacyConfig
from stepscope.ingest.normalise import normalise
from stepscope.ingest.raw_schema import RAW_SPAN_SCHEMA

T0 = 1_794_301_200_000_000_000
WORDS = ("order", "refund", "shipping", "account", "invoice", "delivery", "ticket", "customer",
         "priority", "escalate", "replacement", "billing", "address", "subscription", "cancel",
         "payment", "charge", "dispute", "tracking", "courier", "damaged", "missing", "late")
SECRETS = ("write to jane.doe@example.com", "call +1 415 555 0132",
           "card 4111 1111 1111 1111", "key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t")
RESOURCE = (["service.name", "service.version", "deployment.environment.name",
             "telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version"],
            ["support-agent", "1.4.2", "production", "opentelemetry", "python", "1.45.2"])


def text(rnd: random.Random, size: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rnd.choice(WORDS))
    if rnd.random() < 0.02:
        words.append(rnd.choice(SECRETS))
    return " ".join(words)


def model_call(rnd: random.Random, convention: int, i: int) -> dict[str, str]:
    prompt, answer = text(rnd, 150), text(rnd, 150)
    tokens_in, tokens_out = rnd.randint(200, 3000), rnd.randint(20, 400)
    if convention == 0:  # OpenTelemetry GenAI (latest)
        return {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": str(tokens_in), "gen_ai.usage.output_tokens": str(tokens_out),
            "gen_ai.response.finish_reasons": '["stop"]', "gen_ai.response.id": f"chatcmpl-{i:012d}",
            "server.address": "api.openai.com", "server.port": "443",
            "gen_ai.request.temperature": "0.2", "gen_ai.request.max_tokens": "512",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": answer}],
                  "finish_reason": "stop"}]),
        }
    if convention == 1:  # OpenInference
        return {
            "openinference.span.kind": "LLM", "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}',
            "llm.token_count.prompt": str(tokens_in), "llm.token_count.completion": str(tokens_out),
            "llm.token_count.total": str(tokens_in + tokens_out),
            "llm.token_count.prompt_details.cache_read": "0",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": prompt,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
            "llm.finish_reason": "stop", "input.mime_type": "application/json",
            "output.mime_type": "application/json",
        }
    return {  # OpenLLMetry / Traceloop
        "llm.request.type": "chat", "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": str(tokens_in), "gen_ai.usage.output_tokens": str(tokens_out),
        "gen_ai.usage.total_tokens": str(tokens_in + tokens_out),
        "gen_ai.usage.cache_read.input_tokens": "0", "llm.is_streaming": "false",
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": prompt,
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": answer,
        "gen_ai.completion.0.finish_reason": "stop",
    }


def make_raw(n_spans: int, seed: int = 7) -> pa.Table:
    rnd = random.Random(seed)
    cols: dict[str, list] = {f.name: [] for f in RAW_SPAN_SCHEMA}
    for i in range(n_spans):
        trace, position = divmod(i, 5)
        root_id = f"{trace * 5 + 1:016x}"
        start = T0 + i * 1_000_000
        if position == 0:
            attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                     "gen_ai.workflow.name": rnd.choice(("ticket_triage", "refund_desk")),
                     "task.outcome": rnd.choice(("completed", "completed", "escalated")),
                     "tenant.id": f"tenant-{rnd.randint(1, 50)}", "user.id": f"u-{trace}",
                     "session.id": f"s-{trace // 3}", "gen_ai.usage.input_tokens": "4000",
                     "app.channel": "chat", "app.region": "eu-west-1", "app.plan": "pro"}
            name, kind = "invoke_agent support", 1
        elif position == 4:
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                     "gen_ai.tool.call.id": f"call_{i}", "gen_ai.tool.type": "function",
                     "gen_ai.tool.call.arguments": '{"order_id": "A-1001"}',
                     "gen_ai.tool.call.result": '{"status": "shipped"}', "app.cache": "miss",
                     "code.function": "lookup_order", "thread.id": "12"}
            name, kind = "execute_tool lookup_order", 1
        else:
            attrs = model_call(rnd, trace % 3, i)
            name, kind = "chat gpt-4o-mini", 3
        cols["trace_id"].append(f"{trace:032x}")
        cols["span_id"].append(f"{i + 1:016x}")
        cols["parent_span_id"].append(None if position == 0 else root_id)
        cols["start_time_ns"].append(start)
        cols["end_time_ns"].append(start + rnd.randint(50, 3000) * 1_000_000)
        cols["name"].append(name)
        cols["span_kind"].append(kind)
        failed = rnd.random() < 0.03
        cols["status_code"].append(2 if failed else 0)
        cols["status_message"].append("Error code: 429 - Rate limit reached" if failed else None)
        cols["attr_keys"].append(list(attrs))
        cols["attr_values"].append(list(attrs.values()))
        cols["resource_keys"].append(RESOURCE[0])
        cols["resource_values"].append(RESOURCE[1])
        cols["scope_name"].append("opentelemetry.instrumentation.openai_v2")
        cols["scope_version"].append("2.4b0")
        cols["event_names"].append([])
        cols["exception_type"].append(None)
        cols["exception_message"].append(None)
        cols["first_token_ns"].append(None)
        cols["event_attr_keys"].append([])
        cols["event_attr_values"].append([])
        cols["source_file"].append("bench.pb")
        cols["source_batch"].append(1 + i // 512)
    return pa.table(cols, schema=RAW_SPAN_SCHEMA)


def run(raw: pa.Table, mode: str, batch: int, threads: int, repeat: int) -> tuple[float, float]:
    """Best spans/s (wall clock) and CPU microseconds per span over `repeat` runs of
    normalising `raw` in batches of `batch` rows. CPU time counts every DuckDB thread, so
    it stays meaningful on a machine that other work keeps busy."""
    con = duckdb.connect(config={"threads": threads})
    config = Config(privacy=PrivacyConfig(content=mode))
    batches = [raw.slice(i, batch) for i in range(0, raw.num_rows, batch)]
    normalise(con, batches[0].slice(0, 1), config)   # define the policy's macros
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        rows = sum(normalise(con, b, config).num_rows for b in batches)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        assert rows == raw.num_rows
    con.close()
    return raw.num_rows / best_wall, best_cpu / raw.num_rows * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--privacy", default="redact,keep", help="modes, comma-separated")
    parser.add_argument("--batch", default="", help="batch sizes, comma-separated (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    raw = make_raw(args.spans)
    print(f"generated {raw.num_rows:,} raw spans ({raw.nbytes / 1e6:.0f} MB) "
          f"in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    batches = [int(b) for b in args.batch.split(",") if b] or [raw.num_rows]
    for mode in args.privacy.split(","):
        for batch in batches:
            rate, cpu_us = run(raw, mode, batch, args.threads, args.repeat)
            print(f"privacy={mode:<6} batch={batch:>8,} threads={args.threads}  "
                  f"{rate:>10,.0f} spans/s  {cpu_us:6.1f} CPU-µs/span")
    return 0


if __name__ == "__main__":
    sys.exit(main())
