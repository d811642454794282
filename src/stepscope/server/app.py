"""Wiring for `stepscope serve`: store, spool, worker and HTTP server, start to shutdown.

Lifecycle:
1. Open (or create) the store and take the spool directory (default `<db>/spool`).
   Anything a previous run acknowledged but did not store is still there; the worker
   publishes it first (replays are safe: the store skips spans it already has).
2. Listen. Request threads append to the spool; the worker publishes batches.
3. On SIGTERM or SIGINT: stop accepting connections, let requests in progress finish,
   publish everything in the spool, and exit 0.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stepscope.config import Config
from stepscope.server.http import ROUTES, OTLPServer, ServerState
from stepscope.server.limits import ServeLimits
from stepscope.server.spool import Spool, SpoolBusy
from stepscope.server.worker import SpoolWorker
from stepscope.stores import open_store

SPOOL_DIR_NAME = "spool"
SHUTDOWN_GRACE_S = 10.0


@dataclass(frozen=True)
class ServeOptions:
    db: str
    config: Config
    host: str = "127.0.0.1"
    port: int = 4318
    token: str | None = None
    spool_dir: str | None = None
    limits: ServeLimits = field(default_factory=ServeLimits)


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token: str | None) -> str | None:
    """The loud warning for a server reachable from other machines without auth."""
    if is_loopback(host) or token:
        return None
    bar = "!" * 78
    return (
        f"{bar}\n"
        f"WARNING: stepscope serve listens on {host}, reachable from other machines,\n"
        "and has NO authentication: anyone who can reach this port can write traces into\n"
        "your store. Set a token (--token or STEPSCOPE_TOKEN) or bind 127.0.0.1.\n"
        f"{bar}"
    )


class ServeError(RuntimeError):
    """The server cannot start as asked; the message names the flag to change (exit 2)."""


class Server:
    """One running `stepscope serve`: start(), then wait_for_shutdown() (or stop())."""

    def __init__(self, options: ServeOptions, out: Callable[[str], None] | None = None):
        self.options = options
        self._out = out or (lambda text: print(text, file=sys.stderr, flush=True))
        self.store = open_store(options.db, create=True)
        spool_dir = Path(options.spool_dir) if options.spool_dir else self.store.path / SPOOL_DIR_NAME
        try:
            self.spool = Spool(spool_dir, options.limits.max_spool_bytes)
        except SpoolBusy as exc:
            raise ServeError(f"--spool: {exc}") from None
        except OSError as exc:
            raise ServeError(f"--spool: cannot use {spool_dir}: {exc.strerror or exc}") from None
        self.worker = SpoolWorker(self.spool, self.store, options.config, options.limits,
                                  log=self._out)
        self.state = ServerState(self.spool, options.limits, options.token,
                                 drain_rate=lambda: self.worker.stats.bytes_per_second)
        self.state.wake_worker = self.worker.wake
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        try:
            self.http = OTLPServer((options.host, options.port), self.state, family)
        except OSError as exc:
            self.spool.close()
            raise ServeError(f"--host/--port: cannot listen on {options.host}:{options.port}: "
                             f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self.http.serve_forever, name="stepscope-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    def start(self) -> None:
        leftover = self.spool.pending_bytes
        if leftover:
            self._out(f"stepscope serve: storing {leftover} bytes of requests acknowledged "
                      f"before the last stop (spool {self.spool.dir})")
        self.worker.start()
        self._thread.start()
        host = self.options.host
        shown = f"[{host}]" if ":" in host else host
        warning = exposure_warning(host, self.options.token)
        if warning:
            self._out(warning)
        self._out(
            f"stepscope serve: listening on http://{shown}:{self.port} "
            f"(OTLP/HTTP {', '.join(ROUTES)}; store {self.store.path}; "
            f"auth {'bearer token' if self.options.token else 'none'})"
        )

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())

    def wait_for_shutdown(self) -> None:
        while not self._stop.wait(1.0):
            pass
        self.stop()

    def stop(self) -> None:
        """Stop accepting, finish requests in progress, store everything, release the spool."""
        self._out("stepscope serve: shutting down; storing what is in the spool")
        self.state.closing.set()
        self.http.shutdown()
        self.http.server_close()
        self.http.close_idle_connections()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while self.http.open_connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.worker.stop(drain=True)
        self.spool.close()
        stats = self.worker.stats
        state = self.state
        self._out(
            f"stepscope serve: stopped; accepted {state.spans_accepted} spans "
            f"({state.spans_rejected} rejected) and {state.log_records_accepted} log records; "
            f"stored {stats.spans_stored} new spans ({stats.spans_duplicate} duplicates) "
            f"and {stats.events_stored} content events"
        )
        if self.spool.pending_bytes:
            self._out(f"stepscope serve: {self.spool.pending_bytes} bytes remain in "
                      f"{self.spool.dir}; they are stored on the next start")


def serve(options: ServeOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    server = Server(options)
    server.install_signal_handlers()
    server.start()
    server.wait_for_shutdown()
    return 0 if not server.spool.pending_bytes else 1
