"""The write-ahead spool: what the server acknowledged, on disk before the answer.

Why a spool and not a store append per request: a store append costs a Parquet segment
and a manifest swap, far too much per HTTP request, yet an exporter that got `200 OK`
drops its copy, so the data must be durable before the answer. The spool is an
append-only log on local disk, made durable with one `fsync`, and a background worker
(`stepscope.server.worker`) moves it into the store in large batches.

Layout: `wal-<sequence>.log` files in one directory. The server appends to the newest
(*active*) file; the worker *seals* it (the server moves on to a new file) and reads
sealed files, deleting each only after all its records are published to the store. On
start every file left behind is sealed and replayed; the store's deduplication makes a
replay of something already published harmless.

Record format (little-endian), one per accepted request:

    magic  4 bytes  b"SSP1"
    kind   1 byte   1 = traces (ExportTraceServiceRequest), 2 = logs (ExportLogsServiceRequest)
    codec  1 byte   1 = protobuf
    spare  2 bytes  zero
    length 4 bytes  payload length
    crc32  4 bytes  of the payload
    payload

A record cut short by a crash (or failing its checksum) ends the file for the reader:
it was never fsynced, so it was never acknowledged.

Group commit: many request threads append under a short lock and then share `fsync`
calls: a thread whose bytes an earlier `fsync` already covered returns at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SSP1"
HEADER = struct.Struct("<4sBBHII")
KIND_TRACES, KIND_LOGS = 1, 2
CODEC_PROTOBUF = 1
FILE_PREFIX, FILE_SUFFIX = "wal-", ".log"
LOCK_NAME = "spool.lock"
# The active file is sealed once it holds this much, so the worker can split a backlog
# into batches of bounded size.
ROTATE_BYTES = 8 * 1024 * 1024


class SpoolFull(RuntimeError):
    """The spool holds `max_bytes` not yet stored: the caller should answer 503."""


class SpoolBusy(RuntimeError):
    """Another process is using this spool directory."""


@dataclass(frozen=True)
class Record:
    kind: int
    codec: int
    payload: bytes


class _ActiveFile:
    """The file being appended to, with what has been written and what is durable."""

    def __init__(self, path: Path, sequence: int):
        self.path = path
        self.sequence = sequence
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.written = 0
        self.synced = 0
        self.sync_lock = threading.Lock()
        self.closed = False


class Spool:
    """An append-only, fsynced log of accepted requests, bounded in size.

    Thread-safe: many request threads call `append`; one worker calls `seal`, `read`
    and `remove`. One process at a time owns a spool directory (an advisory lock).
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int,
                 rotate_bytes: int = ROTATE_BYTES):
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.rotate_bytes = rotate_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_handle = open(self.dir / LOCK_NAME, "a+b")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_handle.close()
            raise SpoolBusy(
                f"{self.dir}: another `stepscope serve` is using this spool; "
                "give each server its own --spool directory"
            ) from None
        self._lock = threading.Lock()
        self._sealed: list[Path] = sorted(self.dir.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"))
        self._sizes: dict[Path, int] = {p: p.stat().st_size for p in self._sealed}
        self.pending_bytes = sum(self._sizes.values())
        last = max((_sequence_of(p) for p in self._sealed), default=0)
        self._active = self._new_file(last + 1)
        self.records_appended = 0

    # -- request threads ----------------------------------------------------------------

    def append(self, kind: int, payload: bytes, codec: int = CODEC_PROTOBUF) -> None:
        """Write one record and return once it is on disk (fsynced). Raises SpoolFull."""
        header = HEADER.pack(MAGIC, kind, codec, 0, len(payload), zlib.crc32(payload))
        size = HEADER.size + len(payload)
        failed: OSError | None = None
        retire: _ActiveFile | None = None
        with self._lock:
            if self.pending_bytes + size > self.max_bytes and self.pending_bytes > 0:
                raise SpoolFull(
                    f"spool holds {self.pending_bytes} bytes not yet stored "
                    f"(limit {self.max_bytes})"
                )
            active = self._active
            try:
                _write_all(active.fd, header + payload if len(payload) < 65536 else header)
                if len(payload) >= 65536:
                    _write_all(active.fd, payload)
            except OSError as exc:
                failed = exc
                if not _cut_back(active):
                    retire = active
            else:
                active.written += size
                end = active.written
                self.pending_bytes += size
                self.records_appended += 1
                if active.written >= self.rotate_bytes:
                    retire = active
            if retire is not None:
                self._active = self._new_file(active.sequence + 1)
        if retire is not None:
            self._retire(retire)   # fsyncs the whole file, this record included
        if failed is not None:
            raise failed
        if retire is None:
            self._sync(active, end)

    @staticmethod
    def _sync(active: _ActiveFile, end: int) -> None:
        with active.sync_lock:
            if active.synced >= end:
                return  # another thread's fsync (or the seal) already covered this record
            upto = active.written
            os.fsync(active.fd)
            active.synced = upto

    # -- the worker ---------------------------------------------------------------------

    def seal(self) -> list[Path]:
        """Close the active file if it holds anything; return every sealed file, oldest first."""
        with self._lock:
            old = self._active
            if old.written:
                self._active = self._new_file(old.sequence + 1)
            else:
                old = None
        if old is not None:
            self._retire(old)
        with self._lock:
            return list(self._sealed)

    def _retire(self, old: _ActiveFile) -> None:
        """Make a file that is no longer active durable, close it and hand it to the worker."""
        with old.sync_lock:
            if old.synced < old.written:
                os.fsync(old.fd)
                old.synced = old.written
            os.close(old.fd)
            old.closed = True
        with self._lock:
            self._sealed.append(old.path)
            self._sizes[old.path] = old.written
            self._sealed.sort()

    def read(self, path: Path) -> Iterator[Record]:
        """The complete records of a sealed file, in order (a torn tail is skipped)."""
        return read_records(path)

    def sealed_files(self) -> int:
        """How many sealed files wait for the worker."""
        with self._lock:
            return len(self._sealed)

    def size_of(self, path: Path) -> int:
        with self._lock:
            return self._sizes.get(path, 0)

    def remove(self, paths: list[Path]) -> None:
        """Delete sealed files whose records are all in the store."""
        for path in paths:
            path.unlink(missing_ok=True)
        with self._lock:
            gone = set(paths)
            self._sealed = [p for p in self._sealed if p not in gone]
            for path in gone:
                self.pending_bytes -= self._sizes.pop(path, 0)
        _fsync_dir(self.dir)

    def close(self) -> None:
        """Close the active file (removing it when empty) and release the directory."""
        with self._lock:
            active = self._active
        with active.sync_lock:
            if not active.closed:
                os.fsync(active.fd)
                os.close(active.fd)
                active.closed = True
        if active.written == 0:
            active.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_UN)
        self._lock_handle.close()

    # -- internals ----------------------------------------------------------------------

    def _new_file(self, sequence: int) -> _ActiveFile:
        path = self.dir / f"{FILE_PREFIX}{sequence:012d}{FILE_SUFFIX}"
        active = _ActiveFile(path, sequence)
        _fsync_dir(self.dir)  # the new file's name must survive a crash too
        return active


def read_records(path: Path) -> Iterator[Record]:
    """The complete records of a spool file, in order; a torn or corrupt tail ends it.

    A module function so that worker processes can read sealed files without owning
    the spool.
    """
    data = path.read_bytes()
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, kind, codec, _spare, length, crc = HEADER.unpack_from(data, pos)
        start, end = pos + HEADER.size, pos + HEADER.size + length
        if magic != MAGIC or end > len(data):
            return
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            return
        yield Record(kind, codec, payload)
        pos = end


def _sequence_of(path: Path) -> int:
    try:
        return int(path.name[len(FILE_PREFIX):-len(FILE_SUFFIX)])
    except ValueError:
        return 0


def _cut_back(active: _ActiveFile) -> bool:
    """After a failed write (e.g. disk full), truncate away the partial record.

    A reader stops at the first incomplete record, so a torn record left in the middle
    of a file would hide every record appended after it. When the file cannot be cut
    back, the caller seals it as it is (the torn record is then its tail).
    """
    try:
        os.ftruncate(active.fd, active.written)
    except OSError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
