"""Ingest benchmark: 1,000,000 realistic spans from OTLP protobuf files into a store.

    python benchmarks/bench_ingest.py                 # 1M spans, privacy redact and keep
    python benchmarks/bench_ingest.py --spans 200000 --privacy redact

Generates agent traces (a root agent span, model calls, tool calls and a retrieval per
trace) in the three conventions met most in practice — OpenTelemetry GenAI, OpenInference
and OpenLLMetry, a third of the traces each — every span with 10-20 attributes and about
300 bytes each of input and output content, some of it carrying e-mail addresses, phone
numbers, card numbers and API keys for the redaction to find. They are written as OTLP
protobuf files (one `ExportTraceServiceRequest` per file, batches of 512 spans per
resource as an SDK's batch processor sends them), then `ingest_paths` loads them into a
fresh store, end to end, with `[privacy] content` set to each mode asked for.

Each ingest runs in a child process, and reports spans/s, the CPU time all its processes
used (so that a run on a busy machine can still be judged: spans per CPU-second; the
sampler's own CPU time is left out and reported apart), and peak memory: the
proportional resident memory (Pss) of that process and its workers, summed and sampled
every 50 ms from /proc, and the largest single-process peak (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPANS_PER_FILE = 20_000
SPANS_PER_BATCH = 512
T0 = 1_794_301_200_000_000_000

WORDS = ("order", "refund", "shipping", "account", "password", "invoice", "delivery", "warehouse",
         "ticket", "customer", "priority", "escalate", "replacement", "billing", "address",
         "subscription", "cancel", "upgrade", "plan", "payment", "card", "charge", "dispute",
         "tracking", "courier", "damaged", "missing", "late", "weekend", "support", "agent",
         "policy", "return", "label", "exchange", "credit", "balance", "statement", "renewal")
TOOLS = ("lookup_order", "issue_refund", "search_kb", "update_ticket", "send_email")
WORKFLOWS = ("ticket_triage", "refund_desk", "kb_answer", "settings_change")
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-20241022")


# -- protobuf encoding by hand: fast enough to write a million spans in seconds ----------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


def kv(key: str, value: object) -> bytes:
    if isinstance(value, bool):
        inner = b"\x10" + _varint(int(value))
    elif isinstance(value, int):
        inner = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    elif isinstance(value, float):
        inner = b"\x21" + struct.pack("<d", value)
    else:
        inner = _ld(0x0A, str(value).encode())
    return _ld(0x0A, key.encode()) + _ld(0x12, inner)


def encode_span(trace: bytes, span: bytes, parent: bytes | None, name: str, kind: int,
                start: int, end: int, attributes: list[bytes], error: bool) -> bytes:
    out = [_ld(0x0A, trace), _ld(0x12, span)]
    if parent:
        out.append(_ld(0x22, parent))
    out += [_ld(0x2A, name.encode()), b"\x30" + _varint(kind),
            b"\x39" + struct.pack("<Q", start), b"\x41" + struct.pack("<Q", end)]
    out += [_ld(0x4A, a) for a in attributes]
    if error:
        out.append(_ld(0x7A, _ld(0x12, b"upstream returned 503") + b"\x18\x02"))
    return b"".join(out)


RESOURCE = _ld(0x0A, b"".join(_ld(0x0A, kv(k, v)) for k, v in (
    ("service.name", "support-agent"), ("service.version", "2.3.1"),
    ("deployment.environment.name", "production"), ("telemetry.sdk.language", "python"))))


def encode_request(spans_by_scope: list[tuple[str, list[bytes]]]) -> bytes:
    scopes = b"".join(
        _ld(0x12, _ld(0x0A, _ld(0x0A, scope.encode())) + b"".join(_ld(0x12, s) for s in spans))
        for scope, spans in spans_by_scope
    )
    return _ld(0x0A, RESOURCE + scopes)


# -- realistic content ----------------------------------------------------------------------


class Content:
    """About 300 bytes of support-desk text, drawn from a pool of distinct texts."""

    POOL = 20_000

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pool = [self._make() for _ in range(self.POOL)]

    def text(self) -> str:
        return self.pool[self.rng.randrange(self.POOL)]

    def _make(self, size: int = 300) -> str:
        rng = self.rng
        words = []
        length = 0
        while length < size:
            r = rng.random()
            if r < 0.02:
                w = f"{rng.choice(WORDS)}{rng.randint(1, 999)}@example.com"
            elif r < 0.03:
                w = f"+1 415 555 {rng.randint(1000, 9999)}"
            elif r < 0.035:
                w = "4111 1111 1111 1111"
            elif r < 0.04:
                w = "sk-" + "".join(rng.choice("abcdefghijklmnop0123456789") for _ in range(32))
            elif r < 0.1:
                w = f"#{rng.randint(10000, 99999)}"
            else:
                w = rng.choice(WORDS)
            words.append(w)
            length += len(w) + 1
        return " ".join(words)


def trace_spans(n: int, rng: random.Random, content: Content) -> list[tuple[str, bytes]]:
    """One trace of 10 spans as (scope name, encoded span)."""
    convention = n % 3
    trace = rng.getrandbits(128).to_bytes(16, "big")
    root = rng.getrandbits(64).to_bytes(8, "big")
    start = T0 + n * 7_000_000_000
    workflow = WORKFLOWS[n % len(WORKFLOWS)]
    model = MODELS[n % len(MODELS)]
    failed = rng.random() < 0.05
    out = []
    root_attrs = [kv("tenant.id", f"tenant-{n % 40}"), kv("session.id", f"s-{n // 3}"),
                  kv("user.id", f"u-{n % 997}"), kv("task.outcome", "failed" if failed else "completed")]
    if convention == 0:
        scope = "opentelemetry.instrumentation.openai_v2"
        root_attrs += [kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", workflow),
                       kv("gen_ai.input.messages", content.text()),
                       kv("gen_ai.output.messages", content.text())]
    elif convention == 1:
        scope = "openinference.instrumentation.openai"
        root_attrs += [kv("openinference.span.kind", "AGENT"), kv("agent.name", workflow),
                       kv("input.value", content.text()), kv("output.value", content.text())]
    else:
        scope = "opentelemetry.instrumentation.openai"
        root_attrs += [kv("traceloop.span.kind", "workflow"), kv("traceloop.workflow.name", workflow),
                       kv("traceloop.entity.input", content.text()),
                       kv("traceloop.entity.output", content.text())]
    root_attrs += [kv("app.request.id", f"req-{n}"), kv("app.channel", "email"),
                   kv("app.priority", rng.randint(1, 4)), kv("app.retry", False),
                   kv("http.route", "/v1/agent"), kv("app.region", "eu-west-1")]
    out.append((scope, encode_span(trace, root, None, f"invoke_agent {workflow}", 1, start,
                                   start + 6_000_000_000, root_attrs, failed)))
    t = start + 10_000_000
    for step in range(9):
        sid = rng.getrandbits(64).to_bytes(8, "big")
        dur = rng.randint(50, 900) * 1_000_000
        attrs = [kv("app.step", step), kv("app.request.id", f"req-{n}"),
                 kv("server.address", "api.openai.com"), kv("app.region", "eu-west-1")]
        if step % 2 == 0 and step < 8:
            inp, outp, cached = rng.randint(200, 4000), rng.randint(20, 600), rng.randint(0, 150)
            if convention == 0:
                attrs += [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                          kv("gen_ai.request.model", model), kv("gen_ai.response.model", model + "-2024"),
                          kv("gen_ai.usage.input_tokens", inp), kv("gen_ai.usage.output_tokens", outp),
                          kv("gen_ai.usage.cache_read.input_tokens", cached),
                          kv("gen_ai.request.temperature", 0.2),
                          kv("gen_ai.response.id", f"chatcmpl-{n}-{step}"),
                          kv("gen_ai.input.messages", content.text()),
                          kv("gen_ai.output.messages", content.text())]
            elif convention == 1:
                attrs += [kv("openinference.span.kind", "LLM"), kv("llm.model_name", model),
                          kv("llm.provider", "openai"), kv("llm.system", "openai"),
                          kv("llm.token_count.prompt", inp), kv("llm.token_count.completion", outp),
                          kv("llm.token_count.total", inp + outp),
                          kv("llm.token_count.prompt_details.cache_read", cached),
                          kv("llm.invocation_parameters", '{"temperature": 0.2}'),
                          kv("input.value", content.text()), kv("output.value", content.text())]
            else:
                attrs += [kv("llm.request.type", "chat"), kv("gen_ai.system", "openai"),
                          kv("gen_ai.request.model", model), kv("gen_ai.response.model", model),
                          kv("gen_ai.usage.prompt_tokens", inp), kv("gen_ai.usage.completion_tokens", outp),
                          kv("llm.usage.total_tokens", inp + outp),
                          kv("gen_ai.prompt.0.role", "user"), kv("gen_ai.prompt.0.content", content.text()),
                          kv("gen_ai.completion.0.role", "assistant"),
                          kv("gen_ai.completion.0.content", content.text())]
            name, kind = f"chat {model}", 3
        elif step == 8:
            attrs += [kv("openinference.span.kind", "RETRIEVER") if convention == 1
                      else kv("gen_ai.operation.name", "retrieval"),
                      kv("retrieval.query", content.text()), kv("retrieval.documents", content.text()),
                      kv("db.system", "qdrant"), kv("retrieval.top_k", 5),
                      kv("app.kb.collection", "help-center")]
            name, kind = "retrieve kb", 1
        else:
            tool = TOOLS[(n + step) % len(TOOLS)]
            if convention == 1:
                attrs += [kv("openinference.span.kind", "TOOL"), kv("tool.name", tool),
                          kv("input.value", content.text()), kv("output.value", content.text())]
            elif convention == 2:
                attrs += [kv("traceloop.span.kind", "tool"), kv("traceloop.entity.name", tool),
                          kv("traceloop.entity.input", content.text()),
                          kv("traceloop.entity.output", content.text())]
            else:
                attrs += [kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", tool),
                          kv("gen_ai.tool.call.arguments", content.text()),
                          kv("gen_ai.tool.call.result", content.text())]
            attrs += [kv("gen_ai.tool.call.id", f"call_{n}_{step}"), kv("app.tool.attempt", 1)]
            name, kind = f"execute_tool {tool}", 1
        error = failed and step == 7
        out.append((scope, encode_span(trace, sid, root, name, kind, t, t + dur, attrs, error)))
        t += dur + 5_000_000
    return out


def generate(directory: Path, spans: int, seed: int = 7) -> tuple[int, int]:
    """Write `spans` spans (rounded up to whole traces) as protobuf files; (files, bytes)."""
    rng = random.Random(seed)
    content = Content(rng)
    directory.mkdir(parents=True, exist_ok=True)
    files = written = 0
    traces = (spans + 9) // 10
    per_file = SPANS_PER_FILE // 10
    for first in range(0, traces, per_file):
        batches = []
        batch: list[tuple[str, bytes]] = []
        for n in range(first, min(first + per_file, traces)):
            batch += trace_spans(n, rng, content)
            if len(batch) >= SPANS_PER_BATCH:
                batches.append(batch)
                batch = []
        if batch:
            batches.append(batch)
        body = b"".join(encode_request(_by_scope(b)) for b in batches)
        (directory / f"traces-{files:05d}.pb").write_bytes(body)
        files += 1
        written += len(body)
    return files, written


def _by_scope(batch: list[tuple[str, bytes]]) -> list[tuple[str, list[bytes]]]:
    scopes: dict[str, list[bytes]] = {}
    for scope, encoded in batch:
        scopes.setdefault(scope, []).append(encoded)
    return list(scopes.items())


# -- measuring one ingest -----------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], list(children.get(pid, []))
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _process_figures(pid: int) -> tuple[int, int, float]:
    """(resident bytes, VmHWM bytes, CPU seconds so far) of one process, from /proc."""
    with open(f"/proc/{pid}/statm") as handle:
        rss = int(handle.read().split()[1]) * PAGE_BYTES
    hwm = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, hwm, cpu


def _pss(pid: int) -> int:
    """Proportional set size of one process, from /proc.

    Pss shares each page among the processes mapping it, so a sum over processes is the
    memory the ingest really holds: workers forked from one server share the pages of
    the libraries they imported, which a sum of resident sizes would count once per
    worker. The kernel walks the process's page tables to answer, which costs
    milliseconds for a large process, so it is asked only when it matters.
    """
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class Sampler(threading.Thread):
    """Samples the memory and CPU time of this process's descendants every 50 ms.

    Each process's Pss is never more than its resident size, so when the resident sizes
    summed do not exceed the peak Pss found so far, the sample cannot raise it and the
    costly Pss read is skipped. Above it, Pss is read whenever the resident sizes reach
    a new high since the last read, and at least every PSS_EVERY rounds otherwise (Pss
    can also grow as a process that shared pages exits). The sampler's own CPU time is
    kept apart (`own_cpu`): it measures the run, it is not part of it.
    """

    PSS_EVERY = 4

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_pss = self.peak_hwm = 0
        self.cpu: dict[int, float] = {}
        self.own_cpu = 0.0

    def run(self) -> None:
        me = os.getpid()
        rounds = 0
        last_read, resident_at_read = -self.PSS_EVERY, 0
        while not self.stop.is_set():
            if rounds % 20 == 0:  # walking all of /proc costs more than sampling
                processes = [me, *_descendants(me)]
            rounds += 1
            resident = 0
            alive = []
            for pid in processes:
                try:
                    rss, hwm, cpu = _process_figures(pid)
                except (OSError, IndexError, ValueError):
                    continue
                alive.append(pid)
                resident += rss
                self.peak_hwm = max(self.peak_hwm, hwm)
                if pid != me:
                    self.cpu[pid] = cpu
            if resident > self.peak_pss and (resident > resident_at_read
                                               or rounds - last_read >= self.PSS_EVERY):
                last_read, resident_at_read = rounds, resident
                total = 0
                for pid in alive:
                    try:
                        total += _pss(pid)
                    except (OSError, ValueError):
                        continue
                self.peak_pss = max(self.peak_pss, total)
            self.own_cpu = time.thread_time()
            time.sleep(0.05)


def run_one(directory: str, db: str, privacy: str, workers: int | None) -> dict:
    """Ingest the files once (called in a fresh child process); figures as a dict."""
    import resource

    from stepscope.config import config_from_dict
    from stepscope.ingest.pipeline import ingest_paths
    from stepscope.store import Store

    sampler = Sampler()
    sampler.start()
    config = config_from_dict({"privacy": {"content": privacy}})
    store = Store.open(db, create=True)
    report = ingest_paths(store, [directory], config, workers=workers)
    sampler.stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime + sum(sampler.cpu.values()) - sampler.own_cpu
    return {
        "privacy": privacy,
        "files": report.files,
        "spans_stored": report.spans_stored,
        "duplicates": report.duplicates,
        "rejected": len(report.rejected),
        "seconds": round(report.seconds, 2),
        "spans_per_second": round(report.spans_per_second),
        "cpu_seconds": round(cpu, 1),
        "sampler_cpu_seconds": round(sampler.own_cpu, 2),
        "spans_per_cpu_second": round(report.spans_read / cpu) if cpu else None,
        "peak_pss_combined_mib": round(sampler.peak_pss / 2**20),
        "peak_rss_largest_process_mib": round(max(usage.ru_maxrss * 1024, sampler.peak_hwm) / 2**20),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "stored_rows": store.row_count(),
    }


def _decode_file(path: str) -> int:
    from stepscope.config import IngestConfig
    from stepscope.ingest.formats import read_units
    from stepscope.ingest.otlp_decode import decode_unit

    return sum(decode_unit(unit)[0].num_rows for unit in read_units(path, IngestConfig()))


def decode_only(directory: Path, workers: int) -> dict:
    """Files to raw spans tables only (format detection, framing, decoding), on every core:
    the part of ingest that comes before normalisation and the store."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(str(p) for p in directory.iterdir())
    started = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        spans = sum(pool.map(_decode_file, files))
    seconds = time.perf_counter() - started
    return {"spans": spans, "seconds": round(seconds, 2), "spans_per_second": round(spans / seconds),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--privacy", nargs="*", default=["redact", "keep"],
                        choices=["keep", "redact", "drop"])
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    parser.add_argument("--workdir", help="where to write the traces and stores (default: a temp dir)")
    parser.add_argument("--decode-only", action="store_true",
                        help="also time decoding alone (files to raw spans), without normalising or storing")
    parser.add_argument("--run-one", nargs=3, metavar=("DIR", "DB", "PRIVACY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(*args.run_one, workers=args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix="stepscope-bench-", dir=args.workdir) as work:
        traces = Path(work) / "traces"
        started = time.perf_counter()
        files, size = generate(traces, args.spans)
        print(f"generated {args.spans:,} spans in {files} protobuf files "
              f"({size / 2**20:.0f} MiB, {size / args.spans:.0f} bytes/span) "
              f"in {time.perf_counter() - started:.1f}s", flush=True)
        results = []
        if args.decode_only:
            decoded = decode_only(traces, args.workers or os.cpu_count() or 1)
            results.append({"decode_only": decoded})
            print(f"decode only    {decoded['spans']:>9,} spans in {decoded['seconds']:6.1f}s "
                  f"= {decoded['spans_per_second']:>7,} spans/s (load {decoded['load_average_1m']})",
                  flush=True)
        for mode in args.privacy:
            db = str(Path(work) / f"db-{mode}")
            command = [sys.executable, __file__, "--run-one", str(traces), db, mode]
            if args.workers:
                command += ["--workers", str(args.workers)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(f"privacy={mode:6s} {result['spans_stored']:>9,} spans in {result['seconds']:6.1f}s "
                  f"= {result['spans_per_second']:>7,} spans/s ({result['spans_per_cpu_second']:,} per "
                  f"CPU-second, load {result['load_average_1m']}); peak memory "
                  f"{result['peak_pss_combined_mib']} MiB combined, "
                  f"{result['peak_rss_largest_process_mib']} MiB largest process", flush=True)
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
