"""`stepscope ingest PATH...`: load OTLP trace files into the store."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from stepscope.cli import (
    EXIT_OK,
    EXIT_REJECTED,
    cli,
    config_option,
    db_option,
    emit,
    format_option,
    get_config,
    open_store,
)

# A progress bar appears only once a run has lasted this long (and stdout is a terminal).
PROGRESS_AFTER_SECONDS = 1.0


class ProgressBar:
    """Shows click's progress bar on stderr, but only for runs that turn out to be long."""

    def __init__(self, label: str = "ingesting") -> None:
        self.label = label
        self.started = time.monotonic()
        self.bar: Any = None
        self.position = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < PROGRESS_AFTER_SECONDS or total <= 0:
                return
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr,
                                         show_eta=True, show_percent=True)
            self.bar.__enter__()
        self.bar.update(max(0, done - self.position))
        self.position = max(self.position, done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True), metavar="PATH...")
@db_option
@config_option
@format_option("table", "json")
def ingest(paths: tuple[str, ...], db: str, config_path: str | None, fmt: str) -> None:
    """Load OTLP trace files into the store.

    Each PATH is a file or a directory (read recursively). The format is read from the
    content, whatever the file is called: OTLP protobuf, OTLP/JSON, JSON Lines from the
    Collector's file exporter, its length-prefixed proto records, plain or gzip/zstd.

    A bad file is rejected whole (a bad JSON Lines line alone), with one line saying why,
    and the good files are kept. Spans already stored count as duplicates. Exit status
    1 when anything was rejected.
    """
    from stepscope.ingest.pipeline import ingest_paths

    config = get_config(config_path)
    store = open_store(db, create=True)
    bar = ProgressBar() if sys.stdout.isatty() else None
    try:
        report = ingest_paths(store, paths, config, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if fmt == "json":
        emit(report.summary(), "json")
    else:
        for item in report.rejected:
            click.echo(f"rejected {item['file']}: {item['reason']}", err=True)
        emit({
            "files": report.files,
            "spans_stored": report.spans_stored,
            "duplicates": report.duplicates,
            "rejected": len(report.rejected),
            "seconds": round(report.seconds, 2),
            "spans_per_second": round(report.spans_per_second),
        }, "table")
    sys.exit(EXIT_REJECTED if report.rejected else EXIT_OK)
