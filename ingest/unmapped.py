"""Which span attribute keys the store holds, and which of them no mapping reads.

`stepscope attributes --unmapped` answers "is an instrumentation sending something we do
not understand?" at a glance: every key in the stored attribute maps that is in none of
`conventions`' precedence lists, not a content key, not one the configuration names, and
not one of the generic keys (transport, request parameters, SDK bookkeeping) that carry
nothing for stepscope's fields. Counted in DuckDB over the store, never row by row.
"""

from __future__ import annotations

from typing import Any

from stepscope.config import Config
from stepscope.ingest import conventions as cv
from stepscope.store import ReadConnection

EXAMPLE_CHARS = 120


def configured_keys(config: Config) -> tuple[str, ...]:
    """Attribute keys the configuration reads (workflow, outcome, tenant, prompt)."""
    return (*config.workflow.attributes, config.outcome.attribute, *config.tenant.attributes,
            *config.prompt.name_attributes, *config.prompt.version_attributes)


def mapped_keys(config: Config) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*cv.all_mapped_keys(), *configured_keys(config))))


def ignored_pattern() -> str:
    """Keys read by pattern, content keys and generic keys, as one regex."""
    return cv.combined(cv.mapped_key_patterns() + cv.GENERIC_KEYS)


def attribute_keys(con: ReadConnection, config: Config, *,
                   unmapped: bool = False) -> list[dict[str, Any]]:
    """One row per attribute key: how many steps carry it, an example value, and the
    instrumentation scope that sends it most. With `unmapped`, only keys no mapping uses.
    """
    where = ""
    params: list[Any] = []
    if unmapped:
        where = "WHERE NOT list_contains(?::VARCHAR[], key) AND NOT regexp_matches(key, ?)"
        params = [list(mapped_keys(config)), ignored_pattern()]
    query = f"""
        WITH pairs AS (
            SELECT unnest(map_keys(attributes)) AS key, unnest(map_values(attributes)) AS value,
                   scope_name
            FROM steps
        )
        SELECT key, count(*) AS spans,
               left(arg_max(value, value IS NOT NULL), {EXAMPLE_CHARS}) AS example,
               mode(scope_name) AS scope
        FROM pairs {where}
        GROUP BY key
        ORDER BY spans DESC, key
    """
    cursor = con.execute(query, params) if params else con.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
