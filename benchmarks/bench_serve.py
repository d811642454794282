"""Serve benchmark: sustained OTLP/HTTP load on `stepscope serve`, end to end.

    python benchmarks/bench_serve.py                    # 60 s, 2 clients, 512 spans/request
    python benchmarks/bench_serve.py --seconds 600      # the 10-minute memory check

Starts the real `stepscope serve` (default configuration: privacy `redact`, or the mode
given with `--privacy`) on a fresh store, then client processes send protobuf
`ExportTraceServiceRequest`s of 512 realistic spans (the agent traces of
`bench_ingest.py`: three conventions, 10-20 attributes, about 300 bytes each of input and
output content) over keep-alive HTTP connections, as fast as the server acknowledges
them. A 429/503 is retried after its `Retry-After`, as OTLP exporters do. Every request
carries new trace ids, so nothing is deduplicated.

Reported: acknowledged spans/s while sending; the end-to-end rate (acknowledged spans
divided by the time until the store held all of them); the server's resident memory and
spool size over time; and whether acknowledged == stored after a SIGTERM shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import Content, encode_request, trace_spans

SPANS_PER_TRACE = 10            # what bench_ingest.trace_spans makes
MARKER = bytes.fromhex("5e7e5c09beefcafe")  # last 8 bytes of every template trace id
READY = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


# -- request templates: whole traces, new ids per cycle -------------------------------------


def build_cycle(spans_per_request: int, seed: int) -> list[bytes]:
    """Requests that together hold whole traces, every trace id ending with MARKER.

    A client sends the whole cycle with MARKER replaced by random bytes of its own, so
    every trace is new and complete, yet preparing a request costs one bytes.replace.
    The random half is the low one, as in real trace ids: the store's span key is built
    from it, and counters there would make every cycle's keys collide.
    """
    traces = spans_per_request
    while (traces * SPANS_PER_TRACE) % spans_per_request:
        traces -= 1
    rng = random.Random(seed)
    content = Content(rng)
    spans: list[tuple[str, bytes]] = []
    for n in range(traces if traces else 1):
        made = trace_spans(n, rng, content)
        original = made[0][1][2:18]              # the root span's trace id field
        fresh = n.to_bytes(8, "big") + MARKER
        spans += [(scope, encoded.replace(original, fresh)) for scope, encoded in made]
    requests = []
    for start in range(0, len(spans), spans_per_request):
        batch = spans[start:start + spans_per_request]
        by_scope: dict[str, list[bytes]] = {}
        for scope, encoded in batch:
            by_scope.setdefault(scope, []).append(encoded)
        requests.append(encode_request(list(by_scope.items())))
    return requests


def client(number: int, port: int, seconds: float, spans_per_request: int,
           acked: mp.Value, requests_sent: mp.Value, throttled: mp.Value) -> None:
    cycle = build_cycle(spans_per_request, seed=number)
    spans_in = [spans_per_request] * len(cycle)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf"}
    deadline = time.monotonic() + seconds
    sequence = 0
    while time.monotonic() < deadline:
        sequence += 1
        prefix = hashlib.blake2b(f"{number}:{sequence}".encode(), digest_size=8).digest()
        for template, count in zip(cycle, spans_in, strict=True):
            body = template.replace(MARKER, prefix)
            while True:
                try:
                    connection.request("POST", "/v1/traces", body=body, headers=headers)
                    response = connection.getresponse()
                    answer = response.read()
                except (ConnectionError, http.client.HTTPException):
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    continue
                if response.status == 200:
                    rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
                    with acked.get_lock():
                        acked.value += count - rejected
                    with requests_sent.get_lock():
                        requests_sent.value += 1
                    break
                if response.status in (429, 503):
                    with throttled.get_lock():
                        throttled.value += 1
                    if response.getheader("Connection", "").lower() == "close":
                        connection.close()
                    time.sleep(float(response.getheader("Retry-After") or 1))
                    continue
                raise SystemExit(f"client {number}: HTTP {response.status}: {answer[:200]!r}")
            if time.monotonic() >= deadline:
                break
    connection.close()


# -- measuring ---------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of the server and its worker processes (all descendants)."""
    total = 0
    for current in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{current}/status") as handle:
                total += next((int(line.split()[1]) * 1024 for line in handle
                               if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (its own, not its children's)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stored_rows(db: Path) -> int:
    try:
        manifest = json.loads((db / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(int(s["rows"]) for s in manifest.get("segments", []))


def spool_bytes(db: Path) -> int:
    total = 0
    for path in (db / "spool").glob("wal-*.log"):
        with contextlib.suppress(FileNotFoundError):  # published and removed since listed
            total += path.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long clients send")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--report-every", type=float, default=10.0, help="seconds between lines")
    parser.add_argument("--db", help="store directory (default: a fresh temporary one)")
    parser.add_argument("--workers", type=int, default=0,
                        help="stepscope serve --workers (default 0: one per core)")
    parser.add_argument("--privacy", choices=("redact", "keep", "drop"), default="redact",
                        help="[privacy] content of the server's configuration (default redact)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
    db = Path(args.db) if args.db else Path(tmp.name) / "db"
    config = Path(tmp.name) / "stepscope.toml"
    config.write_text(f'[privacy]\ncontent = "{args.privacy}"\n')
    server = subprocess.Popen(
        [sys.executable, "-c", "from stepscope.cli import main; main()", "serve",
         "--db", str(db), "--port", "0", "--workers", str(args.workers),
         "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    port = 0
    assert server.stdout is not None
    for line in server.stdout:
        match = READY.search(line)
        if match:
            port = int(match.group(1))
            break
    if not port:
        raise SystemExit("stepscope serve did not start")
    os.set_blocking(server.stdout.fileno(), False)

    load_at_start = os.getloadavg()[0]
    acked, sent, throttled = mp.Value("q", 0), mp.Value("q", 0), mp.Value("q", 0)
    clients = [mp.Process(target=client, args=(n + 1, port, args.seconds, args.spans_per_request,
                                               acked, sent, throttled))
               for n in range(args.clients)]
    started = time.monotonic()
    for process in clients:
        process.start()
    samples: list[dict] = []
    next_report = started + args.report_every
    print(f"{'t (s)':>7} {'acked spans':>12} {'stored':>12} {'acked/s':>9} {'RSS MiB':>8} "
          f"{'spool MiB':>9} {'429/503':>8}", flush=True)
    while any(p.is_alive() for p in clients):
        time.sleep(1.0)
        now = time.monotonic()
        sample = {"t": round(now - started, 1), "acked": acked.value, "stored": stored_rows(db),
                  "rss": rss_bytes(server.pid), "spool": spool_bytes(db),
                  "throttled": throttled.value}
        samples.append(sample)
        if now >= next_report:
            next_report += args.report_every
            _print_sample(sample)
    send_seconds = time.monotonic() - started
    for process in clients:
        process.join()
    client_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = acked.value
    while stored_rows(db) < total and time.monotonic() - started < send_seconds + 600:
        time.sleep(0.1)
        samples.append({"t": round(time.monotonic() - started, 1), "acked": total,
                        "stored": stored_rows(db), "rss": rss_bytes(server.pid),
                        "spool": spool_bytes(db), "throttled": throttled.value})
    caught_up = time.monotonic() - started
    http_cpu = cpu_seconds(server.pid)
    worker_cpu = sum(cpu_seconds(p) for p in descendants(server.pid))
    server.send_signal(signal.SIGTERM)
    exit_status = server.wait(600)
    final = stored_rows(db)
    steady = [s["rss"] for s in samples if s["t"] >= min(30.0, send_seconds / 2)]
    summary = {
        "clients": args.clients,
        "privacy": args.privacy,
        "spans_per_request": args.spans_per_request,
        "send_seconds": round(send_seconds, 1),
        "requests_acknowledged": sent.value,
        "spans_acknowledged": total,
        "acknowledged_spans_per_s": round(total / send_seconds),
        "end_to_end_spans_per_s": round(total / caught_up),
        "seconds_until_stored": round(caught_up, 1),
        "throttled_responses": throttled.value,
        "server_cpu_s_http_process": round(http_cpu, 1),
        "server_cpu_s_worker_processes": round(worker_cpu, 1),
        "client_cpu_s": round(client_cpu.ru_utime + client_cpu.ru_stime, 1),
        "http_process_cpu_us_per_span": round(http_cpu / max(total, 1) * 1e6, 1),
        "worker_cpu_us_per_span": round(worker_cpu / max(total, 1) * 1e6, 1),
        "load_average_at_start_and_end": [load_at_start, os.getloadavg()[0]],
        "server_exit_status": exit_status,
        "spans_stored": final,
        "acknowledged_equals_stored": final == total,
        "peak_rss_mib": round(max(s["rss"] for s in samples) / 2**20, 1),
        "steady_rss_mib_min_max": [round(min(steady or [0]) / 2**20, 1),
                                   round(max(steady or [0]) / 2**20, 1)],
        "peak_spool_mib": round(max(s["spool"] for s in samples) / 2**20, 1),
        "rss_mib_by_minute": _by_minute(samples, send_seconds),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        for key, value in summary.items():
            print(f"{key:>28}: {value}")
    tmp.cleanup()
    if not summary["acknowledged_equals_stored"] or exit_status != 0:
        sys.exit(1)


def _by_minute(samples: list[dict], send_seconds: float) -> list[float]:
    """Server RSS (MiB) at each whole minute of sending, then at the end of sending."""
    marks = [60.0 * m for m in range(1, int(send_seconds // 60) + 1)] + [send_seconds]
    picked = []
    for mark in marks:
        before = [s for s in samples if s["t"] <= mark]
        if before:
            picked.append(round(before[-1]["rss"] / 2**20, 1))
    return picked


def _print_sample(s: dict) -> None:
    rate = s["acked"] / s["t"] if s["t"] else 0
    print(f"{s['t']:>7.0f} {s['acked']:>12,} {s['stored']:>12,} {rate:>9,.0f} "
          f"{s['rss'] / 2**20:>8.0f} {s['spool'] / 2**20:>9.1f} {s['throttled']:>8}", flush=True)


if __name__ == "__main__":
    main()
