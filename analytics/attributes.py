"""Which span attribute keys the store holds, for `stepscope attributes [--unmapped]`.

Counted in one query over the store's attribute maps (sql/attribute_keys.sql), never row
by row; which keys count as unmapped is the ingest's knowledge
(stepscope.ingest.unmapped: the conventions' precedence lists, content keys, the
configuration's keys and generic transport keys).
"""

from __future__ import annotations

from typing import Any

from stepscope.analytics import runner
from stepscope.config import Config
from stepscope.ingest.unmapped import ignored_pattern, mapped_keys
from stepscope.store import ReadConnection

EXAMPLE_CHARS = 120


def attribute_keys(con: ReadConnection, config: Config, *,
                   unmapped: bool = False) -> list[dict[str, Any]]:
    """One row per attribute key: how many steps carry it, an example value, and the
    instrumentation scope that sends it most. With `unmapped`, only keys no mapping uses.
    """
    con.refresh()
    params: dict[str, Any] = {}
    key_filter = "TRUE"
    if unmapped:
        key_filter = "NOT list_contains($mapped, p.key) AND NOT regexp_matches(p.key, $ignored)"
        params = {"mapped": list(mapped_keys(config)), "ignored": ignored_pattern()}
    frame = runner.run(con, "attribute_keys", params, key_filter=key_filter,
                       example_chars=str(EXAMPLE_CHARS))
    return frame.to_dicts()
