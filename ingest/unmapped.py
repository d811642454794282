"""Which span attribute keys the store holds, and which of them no mapping reads.

`stepscope attributes --unmapped` answers "is an instrumentation sending something we do
not understand?" at a glance: every key in the stored attribute maps that is in none of
`conventions`' precedence lists, not a content key, not one the configuration names, and
not one of the generic keys (transport, request parameters, SDK bookkeeping) that carry
nothing for stepscope's fields. The count over the store is
stepscope.analytics.attributes.attribute_keys.
"""

from __future__ import annotations

from stepscope.config import Config
from stepscope.ingest import conventions as cv


def configured_keys(config: Config) -> tuple[str, ...]:
    """Attribute keys the configuration reads (workflow, outcome, tenant, prompt)."""
    return (*config.workflow.attributes, config.outcome.attribute, *config.tenant.attributes,
            *config.prompt.name_attributes, *config.prompt.version_attributes)


def mapped_keys(config: Config) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*cv.all_mapped_keys(), *configured_keys(config))))


def ignored_pattern() -> str:
    """Keys read by pattern, content keys and generic keys, as one regex."""
    return cv.combined(cv.mapped_key_patterns() + cv.GENERIC_KEYS)
