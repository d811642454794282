"""Per-segment parts of the run tables, kept on disk beside the store.

Store segments never change once written, so the parts computed from one
(stepscope.analytics.run_tables) stay right for as long as the segment exists. Keeping
them lets a one-shot command (`stepscope kpis`, `alerts check` in CI) or a restarted
dashboard read them instead of scanning every step again. They live in
`<store>/analytics-cache/<version>/`, one small Parquet file per segment and kind:

* `<segment>.keys.parquet`: the segment's (provider, model) combinations, for pricing;
* `<segment>.models.parquet`: the chat models of each run;
* `<segment>.tools.parquet`, `<segment>.failed.parquet`: its tool steps and failed steps;
* `<segment>.run-<prices>.parquet`, `<segment>.cost-<prices>.parquet`: run and cost parts,
  which depend on the prices in force, hence `<prices>`, a digest of the price library
  version and the configuration's `[[prices]]`.

`<version>` is a digest of the queries that compute the parts, so a stepscope with other
queries never reads them. Files are written to a temporary name and renamed, so readers
in several processes share them safely; a store directory that cannot be written to
just means no cache. `STEPSCOPE_ANALYTICS_CACHE=off` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import duckdb
import polars as pl

from stepscope.analytics import pricing, runner
from stepscope.config import Config
from stepscope.schema import SCHEMA_VERSION
from stepscope.store import ReadConnection, Store

CACHE_DIR = "analytics-cache"
ENV_SWITCH = "STEPSCOPE_ANALYTICS_CACHE"
# The queries whose results are cached, and the pricing rules that shape them.
PART_QUERIES = ("segment_steps", "price_keys", "priced_steps", "cost_parts", "run_parts",
                "model_parts", "tool_parts", "failed_parts", "step_failed")
PRICE_ID_RULE = "price_id v1: blake2b-8 of key, valid_from, day_from, input_above"
# Files of segments gone from the store are removed after this long (a reader still on
# an older manifest may want them a little longer).
STALE_SEGMENT_SECONDS = 15 * 60
STALE_PRICES_SECONDS = 7 * 86_400
KINDS_BY_PRICES = ("run", "cost")


def parts_version() -> str:
    text = "\n".join([str(SCHEMA_VERSION), PRICE_ID_RULE,
                      *(runner.load_sql(name) for name in PART_QUERIES)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prices_digest(config: Config) -> str:
    return hashlib.sha256(repr((pricing.LIBRARY, config.prices)).encode()).hexdigest()[:16]


class PartsCache:
    """The cached parts of one store, for one set of prices."""

    def __init__(self, directory: Path, digest: str):
        self.directory = directory
        self.digest = digest

    @classmethod
    def open(cls, store: Store, config: Config) -> PartsCache | None:
        if os.environ.get(ENV_SWITCH, "").lower() in ("0", "off", "no", "false"):
            return None
        directory = store.path / CACHE_DIR / parts_version()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        if not os.access(directory, os.W_OK):
            return None
        return cls(directory, prices_digest(config))

    def path(self, segment_file: str, kind: str) -> Path:
        name = Path(segment_file).name
        suffix = f"{kind}-{self.digest}" if kind in KINDS_BY_PRICES else kind
        return self.directory / f"{name}.{suffix}.parquet"

    def load(self, con: ReadConnection, segment_file: str, kind: str, table: str,
             segment: int) -> bool:
        """Append the cached rows of a segment to `table` (with its segment id first)."""
        path = self.path(segment_file, kind)
        if not path.exists():
            return False
        try:
            con.execute(f"INSERT INTO {table} SELECT {segment} AS segment, * "
                        f"FROM read_parquet({_quoted(path)})")
        except (duckdb.IOException, duckdb.InvalidInputException, duckdb.BinderException):
            _discard(path)                      # damaged or stale: compute the parts again
            return False
        return True

    def load_frame(self, con: ReadConnection, segment_file: str, kind: str) -> pl.DataFrame | None:
        path = self.path(segment_file, kind)
        if not path.exists():
            return None
        try:
            frame = pl.from_arrow(
                con.con.sql(f"SELECT * FROM read_parquet({_quoted(path)})").to_arrow_table())
        except (duckdb.IOException, duckdb.InvalidInputException):
            _discard(path)
            return None
        assert isinstance(frame, pl.DataFrame)
        return frame

    def save(self, con: ReadConnection, segment_file: str, kind: str, query: str) -> None:
        """Write the rows of `query` (without a segment column) for this segment."""
        path = self.path(segment_file, kind)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            con.execute(f"COPY ({query}) TO {_quoted(tmp)} (FORMAT parquet, COMPRESSION zstd)")
            os.replace(tmp, path)
        except (OSError, duckdb.IOException):   # full disk, read-only store: no cache
            with contextlib.suppress(OSError):
                tmp.unlink()

    def sweep(self, live_segments: set[str]) -> None:
        """Remove the parts of segments the store no longer has, and old price sets."""
        live = {Path(f).name for f in live_segments}
        now = time.time()
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if not name.endswith(".parquet") or name.startswith("."):
                continue
            segment, _, rest = name.partition(".parquet.")
            kind = rest.removesuffix(".parquet")
            try:
                age = now - entry.stat().st_mtime
            except OSError:
                continue
            stale_segment = f"{segment}.parquet" not in live and age > STALE_SEGMENT_SECONDS
            other_prices = ("-" in kind and kind.split("-", 1)[1] != self.digest
                            and age > STALE_PRICES_SECONDS)
            if stale_segment or other_prices:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"
