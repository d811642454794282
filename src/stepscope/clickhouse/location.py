"""Where a ClickHouse store lives: `--db clickhouse://...` or `--db chdb://...`.

* `clickhouse://[user[:password]@]host[:port]/database` — a ClickHouse server over HTTP
  (`clickhouse-connect`), port 8123 by default; `clickhouses://` (or `?secure=1`) for
  HTTPS on 8443. The password may also come from `STEPSCOPE_CLICKHOUSE_PASSWORD`, so it
  stays out of shell history and process lists.
* `chdb:///path/to/dir[?database=name]` — the ClickHouse engine inside this process
  (`chdb`), storing its data under the directory: the ClickHouse backend on one machine,
  for trying it and for tests. One process at a time may use a chdb directory.

Both take options after `?`:

* `state_dir=DIR`: the local directory for what is not steps (alert state, `stepscope
  serve`'s spool, files between ingest workers). By default it is
  `./stepscope-state/<host>-<port>-<database>` (for chdb, `state/` inside its directory).
* `retention_days=N` and `partition=day|hour`: how a new steps table expires and is
  partitioned (stepscope.clickhouse.tables); hours for a billion spans a day.
* `refresh_seconds=S`: a reader (the dashboard, `alerts run`) takes in new data at most
  this often, so that live ingest into a busy store does not make every page view
  re-read the partitions that just changed (default 0: always).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SCHEMES = ("clickhouse", "clickhouses", "chdb")
HTTP_PORT, HTTPS_PORT = 8123, 8443
DEFAULT_DATABASE = "stepscope"
PASSWORD_ENV = "STEPSCOPE_CLICKHOUSE_PASSWORD"
STATE_ROOT = "stepscope-state"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTIONS = {"state_dir", "secure", "database", "retention_days", "partition", "refresh_seconds"}
PARTITION_SIZES = ("day", "hour")


class LocationError(ValueError):
    """A `--db` URL that cannot name a ClickHouse store (a usage error)."""


def is_clickhouse_url(db: str | os.PathLike[str]) -> bool:
    text = str(db)
    return any(text.startswith(f"{scheme}://") for scheme in SCHEMES)


@dataclass(frozen=True)
class ClickHouseLocation:
    """A parsed ClickHouse store URL."""

    kind: str                  # "http" or "chdb"
    database: str
    host: str = ""
    port: int = 0
    user: str = "default"
    password: str = ""
    secure: bool = False
    chdb_path: str = ""
    state_dir: str = ""
    retention_days: int | None = None
    partition: str = "day"
    refresh_seconds: float = 0.0

    @property
    def display(self) -> str:
        """The URL without its password, for messages and `stepscope info`."""
        if self.kind == "chdb":
            return f"chdb://{self.chdb_path}?database={self.database}"
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_location(url: str, *, flag: str = "--db",
                   default_database: str = DEFAULT_DATABASE) -> ClickHouseLocation:
    """Parse a `clickhouse://` or `chdb://` URL; errors say which part is wrong.

    `flag` is the option the URL came from, for the messages (`--db`, or `--source` of
    an import); `default_database` is the database when the URL names none.
    """
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise LocationError(f"{flag} {_safe(url)}: unknown option {unknown[0]!r}; "
                            f"known: {', '.join(sorted(_OPTIONS))}")
    tuning = _tuning(url, options, flag)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise LocationError(f"{flag} {url}: chdb:// needs a directory, e.g. chdb:///var/lib/stepscope")
        database = _database(url, options.get("database") or default_database, flag)
        state = options.get("state_dir") or str(Path(path) / "state")
        return ClickHouseLocation("chdb", database, chdb_path=str(Path(path).resolve()),
                                  state_dir=state, **tuning)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise LocationError(f"{flag} {_safe(url)}: not a ClickHouse URL "
                            "(clickhouse://user@host:8123/database or chdb:///dir)")
    if not parts.hostname:
        raise LocationError(f"{flag} {_safe(url)}: no host; "
                            f"e.g. clickhouse://default@localhost:8123/{default_database}")
    secure = parts.scheme == "clickhouses" or options.get("secure", "") in ("1", "true", "yes")
    try:
        port = parts.port or (HTTPS_PORT if secure else HTTP_PORT)
    except ValueError:
        raise LocationError(f"{flag} {_safe(url)}: the port is not a number") from None
    database = _database(url, unquote(parts.path.strip("/")) or default_database, flag)
    password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV, "")
    state = options.get("state_dir") or str(Path(STATE_ROOT) / f"{parts.hostname}-{port}-{database}")
    return ClickHouseLocation(
        "http", database, host=parts.hostname, port=port,
        user=unquote(parts.username) if parts.username else "default", password=password,
        secure=secure, state_dir=state, **tuning,
    )


def _database(url: str, name: str, flag: str) -> str:
    if not _NAME.match(name):
        raise LocationError(f"{flag} {_safe(url)}: database name {name!r} must be letters, digits "
                            "and underscores")
    return name


def _tuning(url: str, options: dict[str, str], flag: str) -> dict[str, Any]:
    """retention_days, partition and refresh_seconds, checked."""
    tuning: dict[str, Any] = {}
    retention = options.get("retention_days", "")
    if retention:
        if not retention.isdigit() or int(retention) < 1:
            raise LocationError(f"{flag} {_safe(url)}: retention_days must be a whole number "
                                "of days ≥ 1")
        tuning["retention_days"] = int(retention)
    partition = options.get("partition", "") or "day"
    if partition not in PARTITION_SIZES:
        raise LocationError(f"{flag} {_safe(url)}: partition must be day or hour, not {partition!r}")
    tuning["partition"] = partition
    refresh = options.get("refresh_seconds", "") or "0"
    try:
        tuning["refresh_seconds"] = float(refresh)
    except ValueError:
        tuning["refresh_seconds"] = -1.0
    if not 0 <= tuning["refresh_seconds"] < 86_400:
        raise LocationError(f"{flag} {_safe(url)}: refresh_seconds must be a number of seconds "
                            "from 0 to 86399")
    return tuning


def _safe(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
