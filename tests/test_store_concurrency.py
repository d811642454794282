"""Two writers and two readers on one store for 30 seconds: no lock error, no duplicate,
and every write visible to readers within 5 seconds."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import store_workers

from stepscope.store import Store

SECONDS = 30
VISIBLE_WITHIN_S = 5.0


@pytest.mark.slow
def test_two_writers_two_readers_for_30_seconds(tmp_path):
    db = str(tmp_path / "store")
    ctx = multiprocessing.get_context("spawn")
    outs = {name: str(tmp_path / f"{name}.json") for name in ("w1", "w2", "r1", "r2")}
    procs = [
        ctx.Process(target=store_workers.writer, args=(db, "w1", SECONDS, outs["w1"])),
        ctx.Process(target=store_workers.writer, args=(db, "w2", SECONDS, outs["w2"])),
        ctx.Process(target=store_workers.reader, args=(db, SECONDS + 3, outs["r1"])),
        ctx.Process(target=store_workers.reader, args=(db, SECONDS + 3, outs["r2"])),
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=SECONDS + 120)
        assert proc.exitcode == 0

    logs = {name: json.loads(Path(path).read_text()) for name, path in outs.items()}
    errors = [entry["error"] for log in logs.values() for entry in log if "error" in entry]
    assert errors == []

    writes = logs["w1"] + logs["w2"]
    assert len(writes) > 20, "writers made too little progress to prove anything"
    # Both writers sent every shared batch; exactly one of them stored it.
    shared = {}
    for entry in writes:
        if entry["label"].startswith("shared-"):
            shared.setdefault(entry["label"], []).append(entry["stored"])
    both_sent = [stored for stored in shared.values() if len(stored) == 2]
    assert both_sent, "no batch was sent by both writers"
    assert all(sorted(stored) == [0, 75] for stored in both_sent)

    stored_total = sum(entry["stored"] for entry in writes)
    final = Store.open(db)
    with final.connect() as con:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM steps").fetchone()
    assert rows == distinct == stored_total

    for name in ("r1", "r2"):
        observations = logs[name]
        assert len(observations) > 50
        assert all(o["rows"] == o["distinct"] for o in observations)
        for entry in writes:
            if entry["stored"] == 0:
                continue
            seen = [o["at"] for o in observations if entry["label"] in o["labels"]]
            assert seen, f"{name} never saw {entry['label']}"
            assert min(seen) - entry["published"] <= VISIBLE_WITHIN_S
