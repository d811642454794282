"""Readers keep working while `stepscope serve` receives, and see new spans within 5 s."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time

from serve_harness import PROTOBUF, ServeProcess, make_request

from stepscope.store import Store

SEND_SECONDS = 8.0
SPANS = 8
VISIBLE_WITHIN_S = 5.0


def _sender(port: int, acked: dict[str, float], stop: threading.Event, errors: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    number = 1
    try:
        while not stop.is_set():
            body = make_request(number, SPANS).SerializeToString()
            connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": PROTOBUF})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"request {number}: HTTP {response.status}")
            else:
                acked[number.to_bytes(16, "big").hex()] = time.monotonic()
            number += 1
            time.sleep(0.05)
    except Exception as exc:  # reported by the test
        errors.append(f"sender: {exc!r}")
    finally:
        connection.close()


def _reader(db, seen: dict[str, float], stop: threading.Event, errors: list[str]) -> None:
    """A long-lived reader like the dashboard: one connection, refresh() before each query."""
    try:
        while not Store(db).exists:
            time.sleep(0.05)
        with Store.open(db).connect() as reader:
            while not stop.is_set():
                reader.refresh()
                rows = reader.execute(
                    "SELECT trace_id, count(*) FROM steps GROUP BY trace_id").fetchall()
                now = time.monotonic()
                for trace_id, count in rows:
                    if count != SPANS:
                        errors.append(f"trace {trace_id} seen with {count} of {SPANS} spans")
                    seen.setdefault(trace_id, now)
                time.sleep(0.05)
    except Exception as exc:  # reported by the test
        errors.append(f"reader: {exc!r}")


def test_readers_during_ingest_see_new_spans_within_5_seconds(tmp_path):
    db = tmp_path / "db"
    server = ServeProcess(db)
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    errors: list[str] = []
    stop_sending, stop_reading = threading.Event(), threading.Event()
    threads = [threading.Thread(target=_sender, args=(server.port, acked, stop_sending, errors)),
               threading.Thread(target=_reader, args=(db, seen, stop_reading, errors))]
    for thread in threads:
        thread.start()
    cli_runs = 0
    try:
        deadline = time.monotonic() + SEND_SECONDS
        while time.monotonic() < deadline:
            # Short-lived CLI readers, as a user would run them meanwhile.
            if not Store(db).exists:
                time.sleep(0.2)
                continue
            kpis = subprocess.run(
                [sys.executable, "-c", "from stepscope.cli import main; main()",
                 "kpis", "--db", str(db), "--format", "json"],
                capture_output=True, text=True, timeout=300)
            assert kpis.returncode == 0, kpis.stderr
            assert isinstance(json.loads(kpis.stdout), list)
            cli_runs += 1
            time.sleep(0.2)
    finally:
        stop_sending.set()
        threads[0].join(30)
        time.sleep(VISIBLE_WITHIN_S)
        stop_reading.set()
        threads[1].join(30)
        assert server.terminate() == 0
    assert errors == []
    assert cli_runs >= 1
    assert len(acked) >= 20
    late = {t: seen.get(t, float("inf")) - at for t, at in acked.items()
            if seen.get(t, float("inf")) - at > VISIBLE_WITHIN_S}
    assert late == {}
    assert Store(db).row_count() == len(acked) * SPANS
