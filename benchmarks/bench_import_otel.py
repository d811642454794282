"""Import benchmark: the Collector's ClickHouse traces table into a stepscope store.

    python benchmarks/bench_import_otel.py                  # ~1M spans (the sample x 20)
    python benchmarks/bench_import_otel.py --copies 5       # ~230,000 spans
    python benchmarks/bench_import_otel.py --db chdb        # into a ClickHouse store (chdb)

Fills the clickhouseexporter's `otel_traces` table (its current DDL, in chdb) with the
bundled sample written as the exporter writes it (tests/otel_exporter_rows.py), then
copies it `--copies` times inside ClickHouse, each copy with new trace ids and moved
two weeks later, so the table holds realistic spans of every convention the sample
has. Then `stepscope import clickhouse-otel` runs in a child process into a fresh
store (embedded by default), and the run is timed: spans/s of wall-clock time, CPU
seconds of the child (user + system, so a busy machine can still be judged), spans per
CPU-second, and the child's peak resident memory. A second run over the same table
(every span a duplicate) is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TWO_WEEKS_S = 14 * 86_400

FILL = """
import sys
sys.path.insert(0, {tests!r})
from otel_exporter_rows import create_table, write_requests
from otlp_sample_reader import requests
from stepscope.clickhouse.client import connect
from stepscope.clickhouse.location import parse_location
from stepscope.sample_traces import bundled_traces_dir

client = connect(parse_location({url!r}))
create_table(client, "otel", "seed")
for path in sorted(bundled_traces_dir().rglob("traces-*")):
    write_requests(client, requests(path), "otel", "seed")
create_table(client, "otel", "otel_traces")
for copy in range({copies}):  # a copy at a time: ClickHouse caps partitions per insert
    client.command('''INSERT INTO otel.otel_traces SELECT seed.* REPLACE (
        lower(hex(MD5(concat(TraceId, toString(copy.number))))) AS TraceId,
        Timestamp + toIntervalSecond(copy.number * {shift}) AS Timestamp,
        arrayMap(t -> t + toIntervalSecond(copy.number * {shift}), `Events.Timestamp`)
            AS `Events.Timestamp`)
        FROM otel.seed AS seed, numbers(%d, 1) AS copy''' % copy)
rows = client.query_arrow("SELECT count() AS n FROM otel.otel_traces")
print(rows.column("n")[0].as_py())
client.close()
"""


def child(args: list[str]) -> tuple[float, float, int, str]:
    """Run a child process; (wall seconds, CPU seconds, peak RSS in KiB, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode not in (0, 1) or not out.read(1):
            sys.exit(f"{' '.join(args[:4])} ... failed:\n{err.read()}")
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=20, help="copies of the sample (46k spans each)")
    parser.add_argument("--db", choices=("embedded", "chdb"), default="embedded")
    parser.add_argument("--dir", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-import-otel-"))
    source = f"chdb://{work / 'chdb'}?database=otel"
    if not (work / "chdb").exists():
        (work / "chdb").mkdir(parents=True)
        script = FILL.format(tests=str(ROOT / "tests"), url=source, shift=TWO_WEEKS_S,
                             copies=args.copies)
        started = time.perf_counter()
        _, _, _, out = child([sys.executable, "-c", script])
        print(f"source table: {int(out.strip()):,} spans, filled in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    db = str(work / "store") if args.db == "embedded" else f"chdb://{work / 'chdb'}?database=steps"
    command = [sys.executable, "-c", "from stepscope.cli import main; main()", "import", "clickhouse-otel",
               "--source", source, "--db", db, "--format", "json"]
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for label in ("import", "again (all duplicates)"):
        wall, cpu, rss, out = child(command)
        summary = json.loads(out)
        spans = summary["spans_read"]
        print(json.dumps({
            "run": label, "spans": spans, "stored": summary["spans_stored"],
            "duplicates": summary["duplicates"], "batches": summary["batches"],
            "seconds": round(wall, 1), "spans_per_s": round(spans / wall),
            "cpu_s": round(cpu, 1), "spans_per_cpu_s": round(spans / cpu),
            "peak_rss_mib": round(rss / 1024), "load": round(os.getloadavg()[0], 1),
        }), flush=True)


if __name__ == "__main__":
    main()
