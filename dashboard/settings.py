"""What the dashboard process was started on: the store, the configuration and `--now`.

`stepscope dashboard` runs the app in a Streamlit child process, so these travel as
environment variables — the same ones the CLI itself reads (`STEPSCOPE_DB`,
`STEPSCOPE_NOW`) plus `STEPSCOPE_CONFIG` — which also lets tests and `streamlit run`
users point the app at a store without any launcher.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stepscope.clickhouse.location import is_clickhouse_url
from stepscope.store import default_db_path
from stepscope.timeparse import parse_instant

ENV_DB = "STEPSCOPE_DB"
ENV_CONFIG = "STEPSCOPE_CONFIG"
ENV_NOW = "STEPSCOPE_NOW"


@dataclass(frozen=True)
class DashboardSettings:
    db: str
    config_path: str | None
    now_text: str | None

    @property
    def now(self) -> datetime | None:
        """The fixed instant relative ranges end at, or None for the wall clock."""
        return parse_instant(self.now_text) if self.now_text else None


def settings_from_env(environ: Mapping[str, str] | None = None) -> DashboardSettings:
    env = os.environ if environ is None else environ
    db = env.get(ENV_DB) or default_db_path()
    return DashboardSettings(
        db=_store_name(db),
        config_path=env.get(ENV_CONFIG) or None,
        now_text=env.get(ENV_NOW) or None,
    )


def settings_env(db: str, config_path: str | None, now: str | None) -> dict[str, str]:
    """The environment entries that hand these settings to the app process."""
    env = {ENV_DB: _store_name(db, resolve=True)}
    if config_path:
        env[ENV_CONFIG] = str(Path(config_path).expanduser().resolve())
    if now:
        env[ENV_NOW] = now
    return env


def _store_name(db: str, resolve: bool = False) -> str:
    """A store directory as an absolute path (the app runs elsewhere); a URL as it is."""
    if is_clickhouse_url(db):
        return db
    path = Path(db).expanduser()
    return str(path.resolve() if resolve else path)
