"""What was answered 200 survives kill -9; SIGTERM stores everything and exits 0."""

from __future__ import annotations

import http.client
import os
import signal
from pathlib import Path

from serve_harness import PROTOBUF, ServeProcess, make_request, wait_for_rows

from stepscope.server.spool import KIND_LOGS, KIND_TRACES, Spool
from stepscope.store import Store

SPANS_PER_REQUEST = 8


def _send_all(port: int, bodies: list[bytes]) -> int:
    """Send on one keep-alive connection; returns how many were answered 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = 0
    try:
        for body in bodies:
            connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": PROTOBUF})
            response = connection.getresponse()
            response.read()
            ok += response.status == 200
    finally:
        connection.close()
    return ok


def _distinct_and_total(db) -> tuple[int, int]:
    with Store.open(db).connect() as reader:
        return reader.execute(
            "SELECT count(DISTINCT (trace_id, span_id)), count(*) FROM steps").fetchone()


def test_acknowledged_requests_survive_kill_9_and_are_stored_once(tmp_path):
    db = tmp_path / "db"
    bodies = [make_request(n, SPANS_PER_REQUEST).SerializeToString() for n in range(1, 31)]
    expected = len(bodies) * SPANS_PER_REQUEST
    server = ServeProcess(db)
    try:
        assert _send_all(server.port, bodies) == len(bodies)
    finally:
        server.kill()   # SIGKILL right after the last 200: no chance to drain
    assert server.process.returncode == -9
    stored_at_kill = Store(db).row_count() if Store(db).exists else 0
    assert stored_at_kill < expected, "the test must kill before everything was published"
    assert list((db / "spool").glob("wal-*.log")), "acknowledged requests wait in the spool"

    restarted = ServeProcess(db)
    try:
        assert "acknowledged before the last stop" in restarted.output
        assert wait_for_rows(db, expected) == expected
        # The same requests again (an exporter retrying): still stored once.
        assert _send_all(restarted.port, bodies[:5]) == 5
    finally:
        assert restarted.terminate() == 0
    assert _distinct_and_total(db) == (expected, expected)
    assert not list((db / "spool").glob("wal-*.log"))


def test_sigterm_stores_everything_and_exits_0(tmp_path):
    db = tmp_path / "db"
    bodies = [make_request(n, SPANS_PER_REQUEST).SerializeToString() for n in range(100, 120)]
    server = ServeProcess(db)
    assert _send_all(server.port, bodies) == len(bodies)
    assert server.terminate() == 0
    expected = len(bodies) * SPANS_PER_REQUEST
    assert _distinct_and_total(db) == (expected, expected)
    assert not list((db / "spool").glob("wal-*.log"))
    assert f"accepted {expected} spans (0 rejected)" in server.output
    assert f"stored {expected} new spans" in server.output


def test_a_torn_record_at_the_end_of_a_spool_file_is_ignored(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10_000_000)
    spool.append(KIND_TRACES, b"first request")
    spool.append(KIND_LOGS, b"second request")
    spool.close()
    (path,) = sorted((tmp_path / "spool").glob("wal-*.log"))
    with open(path, "ab") as handle:   # a crash in the middle of writing a third record
        handle.write(b"SSP1\x01\x01\x00\x00\xff\x00\x00\x00\x00\x00\x00\x00partial")
    reopened = Spool(tmp_path / "spool", max_bytes=10_000_000)
    try:
        files = reopened.seal()
        assert files == [path]
        records = list(reopened.read(path))
        assert [(r.kind, r.payload) for r in records] == [
            (KIND_TRACES, b"first request"), (KIND_LOGS, b"second request")]
        reopened.remove(files)
        assert reopened.pending_bytes == 0
    finally:
        reopened.close()


def test_a_record_with_a_bad_checksum_ends_the_file(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10_000_000)
    spool.append(KIND_TRACES, b"kept")
    spool.append(KIND_TRACES, b"flipped")
    spool.close()
    (path,) = sorted((tmp_path / "spool").glob("wal-*.log"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    reopened = Spool(tmp_path / "spool", max_bytes=10_000_000)
    try:
        assert [r.payload for r in reopened.read(reopened.seal()[0])] == [b"kept"]
    finally:
        reopened.close()


def test_one_server_per_spool_directory(tmp_path):
    from stepscope.server.spool import SpoolBusy

    first = Spool(tmp_path / "spool", max_bytes=1000)
    try:
        try:
            Spool(tmp_path / "spool", max_bytes=1000)
        except SpoolBusy as exc:
            assert "another `stepscope serve` is using this spool" in str(exc)
        else:
            raise AssertionError("a second spool on the same directory was allowed")
    finally:
        first.close()


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found += [int(entry.name), *_descendants(int(entry.name))]
    return found


def test_a_killed_worker_process_is_replaced_and_nothing_is_lost(tmp_path):
    db = tmp_path / "db"
    server = ServeProcess(db)
    try:
        assert _send_all(server.port, [make_request(1, SPANS_PER_REQUEST).SerializeToString()]) == 1
        assert wait_for_rows(db, SPANS_PER_REQUEST) == SPANS_PER_REQUEST
        workers = [p for p in _descendants(server.process.pid)
                   if "forkserver" in Path(f"/proc/{p}/cmdline").read_text()]
        assert workers, "batches are published by worker processes"
        os.kill(max(workers), signal.SIGKILL)   # the newest: a worker, not the fork server
        bodies = [make_request(n, SPANS_PER_REQUEST).SerializeToString() for n in range(2, 7)]
        assert _send_all(server.port, bodies) == len(bodies)
        assert wait_for_rows(db, 6 * SPANS_PER_REQUEST, timeout=60) == 6 * SPANS_PER_REQUEST
    finally:
        assert server.terminate() == 0
    assert _distinct_and_total(db) == (6 * SPANS_PER_REQUEST, 6 * SPANS_PER_REQUEST)


def test_a_failed_write_leaves_no_torn_record_in_the_middle(tmp_path, monkeypatch):
    import errno

    from stepscope.server import spool as spool_module

    spool = Spool(tmp_path / "spool", max_bytes=10_000_000)
    spool.append(KIND_TRACES, b"before the disk filled up")
    real_write = spool_module._write_all

    def write_half_then_fail(fd: int, data: bytes) -> None:
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module, "_write_all", write_half_then_fail)
    try:
        spool.append(KIND_TRACES, b"this request is answered 503")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the failed write was not reported")
    monkeypatch.setattr(spool_module, "_write_all", real_write)
    spool.append(KIND_TRACES, b"after space was freed")
    try:
        payloads = [r.payload for path in spool.seal() for r in spool.read(path)]
        assert payloads == [b"before the disk filled up", b"after space was freed"]
    finally:
        spool.close()
