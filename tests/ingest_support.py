"""Helpers for ingest tests: write files, ingest them into a fresh store, read rows back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepscope.config import Config, config_from_dict
from stepscope.ingest.pipeline import IngestReport, ingest_paths
from stepscope.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "instrumentation"


def write_files(directory: Path, files: dict[str, bytes | str]) -> list[Path]:
    """Write {name: content} under `directory`; returns the paths in the order given."""
    paths = []
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        paths.append(path)
    return paths


def ingest(store: Store, *paths: Path | str, config: Config | None = None,
           workers: int = 1) -> IngestReport:
    return ingest_paths(store, paths, config or Config(), workers=workers)


def keep_content() -> Config:
    return config_from_dict({"privacy": {"content": "keep"}})


def rows(store: Store, columns: str = "trace_id, span_id, name",
         where: str = "true") -> list[tuple[Any, ...]]:
    """Stored steps, ordered by trace and span id."""
    with store.connect() as con:
        return con.sql(
            f"SELECT {columns} FROM steps WHERE {where} ORDER BY trace_id, span_id"
        ).fetchall()


def reasons(report: IngestReport) -> dict[str, list[str]]:
    """Rejection reasons by file name (the last path component)."""
    out: dict[str, list[str]] = {}
    for item in report.rejected:
        out.setdefault(Path(item["file"]).name, []).append(item["reason"])
    return out
