"""Generate the SQL that turns a raw spans batch into steps, from `conventions`' tables.

The query is generated per batch because it only mentions the attribute keys the batch
holds: a key no span carries becomes a constant NULL, so a batch from one instrumentation
pays for its own handful of lookups, not for every convention in the tables. A lookup
reads `values[position]`, the position coming from a column `_p<n>` (`_q<n>` for resource
attributes) that `key_index` computes for the whole batch before the query runs: the
builder records which keys it used (`attr_slots`, `res_slots`).

Stages (each a projection over the previous one, so every value is computed once):

1. `_v`/`_rv`: the span's attribute and resource values (the privacy policy is applied
   before the query, see `normalise`); every lookup reads them.
2. Fields that need no step kind, and the step kind itself.
3. Fields that depend on the kind: tokens and reported cost only on model calls,
   Traceloop's entity name, trace-level fields on root spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stepscope.config import Config
from stepscope.ingest import conventions as cv
from stepscope.ingest.conventions import Key

MODEL_CALL_KINDS = ("llm", "embedding")
AGGREGATE_KINDS = ("agent", "workflow")
_SPAN_KINDS = "CASE span_kind WHEN 2 THEN 'server' WHEN 3 THEN 'client' WHEN 4 THEN 'producer' " \
              "WHEN 5 THEN 'consumer' ELSE 'internal' END"
_STATUS = "CASE status_code WHEN 1 THEN 'ok' WHEN 2 THEN 'error' ELSE 'unset' END"
_NEWLINE = "chr(10)"
# Flattened message keys read by position up to this many per batch; beyond, by a scan.
MAX_FLAT_LOOKUPS = 32


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def coalesce(exprs: Iterable[str | None]) -> str:
    parts = [e for e in exprs if e is not None]
    if not parts:
        return "NULL"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


@dataclass(frozen=True)
class BatchShape:
    """The keys the batch holds, as far as the generated SQL cares."""

    attr_keys: frozenset[str]
    resource_keys: frozenset[str]
    event_keys: frozenset[str]


def _looks_like_json(value: str, openers: str) -> str:
    """SQL: the text starts with one of `openers`, after any leading whitespace.

    A cheap test before `json_extract_string`, whose failure on plain text is an
    exception per value. Whitespace is stripped only where the text starts with it.
    """
    first = " OR ".join(f"starts_with({value}, {q(o)})" for o in openers)
    stripped = f"ltrim({value}, {q(' ' + chr(9) + chr(10) + chr(13))})"
    spaced = " OR ".join(f"starts_with({stripped}, {q(o)})" for o in openers)
    return (f"({first} OR (ascii({value}) IN (9, 10, 13, 32) AND ({spaced})))")


def _is_json(value: str, openers: str) -> str:
    """SQL: the text starts like JSON (`_looks_like_json`) and is valid JSON.

    Text that only starts like JSON is common after redaction (a message that begins
    with an e-mail address begins with `[REDACTED:email]`), and `json_extract_string`
    fails on it with an exception per value, caught by `try` at several microseconds
    each. `json_valid` says the same without one: it accepts exactly what
    `json_extract_string` parses (same reader), so a value it refuses would only have
    given NULL through `try`.
    """
    return f"({_looks_like_json(value, openers)} AND json_valid({value}))"


def _natural(key: str) -> tuple:
    """Sort key putting `x.2.y` before `x.10.y`."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key))


def matching(keys: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The keys that match one of the patterns, sorted."""
    rx = re.compile(cv.combined(tuple(patterns)))
    return sorted(k for k in keys if rx.search(k))


class Builder:
    def __init__(self, config: Config, shape: BatchShape, mode: str):
        self.config = config
        self.shape = shape
        self.mode = mode
        self.attr_slots: dict[str, int] = {}
        self.shared: dict[str, str] = {}  # expression -> its column in the shared stage
        self.res_slots: dict[str, int] = {}

    # -- lookups -------------------------------------------------------------------------

    def attr(self, name: str) -> str | None:
        """The (redacted) value of a span attribute, or None when no span has the key."""
        if name not in self.shape.attr_keys:
            return None
        slot = self.attr_slots.setdefault(name, len(self.attr_slots))
        return f"_v[_p{slot}]"

    def res(self, name: str) -> str | None:
        if name not in self.shape.resource_keys:
            return None
        slot = self.res_slots.setdefault(name, len(self.res_slots))
        return f"_rv[_q{slot}]"

    def key(self, k: Key) -> str | None:
        value = self.attr(k.name)
        if value is None:
            return None
        if k.json_path is not None:
            # JSON text -> the path; a plain scalar is taken as it is.
            plain = "NULL" if k.json_only else \
                f"CASE WHEN {self.once(_looks_like_json(value, '[{'))} THEN NULL ELSE {value} END"
            value = (f"CASE WHEN {self.once(_is_json(value, '[{'))} "
                     f"THEN try(json_extract_string({value}, {q(k.json_path)})) ELSE {plain} END")
        if k.only_kind is not None:
            value = f"CASE WHEN step_kind = {q(k.only_kind)} THEN {value} END"
        return value

    def first(self, ks: Sequence[Key]) -> str:
        return coalesce(self.key(k) for k in ks)

    def first_of(self, names: Sequence[str]) -> str:
        return coalesce(self.attr(n) for n in names)

    def number(self, ks: Sequence[Key], sql_type: str = "BIGINT") -> str:
        return coalesce(
            None if (e := self.key(k)) is None else f"try_cast({e} AS {sql_type})" for k in ks
        )

    def flat(self, patterns: Sequence[str]) -> str | None:
        """Values of every attribute matching one of `patterns` (flattened messages),
        joined by newlines in message order."""
        keys = sorted(matching(self.shape.attr_keys, patterns), key=_natural)
        if not keys:
            return None
        if len(keys) <= MAX_FLAT_LOOKUPS:
            parts = ", ".join(self.attr(k) or "NULL" for k in keys)
            return f"nullif(concat_ws({_NEWLINE}, {parts}), '')"
        return self.flat_scan(keys, "attr_keys", "_v")

    @staticmethod
    def flat_scan(keys: Sequence[str], keys_col: str, vals_col: str) -> str:
        """The same by scanning each span's list (many keys, or event attributes)."""
        wanted = ", ".join(q(k) for k in keys)
        return (f"nullif(array_to_string(list_transform(list_filter(list_zip({keys_col}, "
                f"{vals_col}), lambda e: e[1] IN ({wanted})), lambda e: e[2]), {_NEWLINE}), '')")

    # -- stage 1: the attribute lists after the privacy policy --------------------------------

    def stage1(self, source: str) -> str:
        """`_v`/`_rv`/`_ev` are the lists every lookup reads, `_sm`/`_xm` the messages.

        The batch arrives with the privacy policy applied already (`normalise` redacts
        every value column-wise before the query), so nothing derived here can leak what
        was redacted. (Under `drop`, content values arrive nulled.)
        """
        ev = "coalesce(event_attr_values, [])" if self.content_events_used() else "[]"
        return ("SELECT *, coalesce(attr_values, []) AS _v, coalesce(resource_values, []) AS _rv, "
                f"{ev} AS _ev, status_message AS _sm, exception_message AS _xm FROM {source}")

    def content_events_used(self) -> bool:
        if self.mode == "drop" or not self.shape.event_keys:
            return False
        rx = re.compile(cv.combined(cv.INPUT_EVENT_KEYS + cv.OUTPUT_EVENT_KEYS))
        return any(rx.search(k) for k in self.shape.event_keys)

    # -- shared values: computed once, read by several fields -------------------------------

    def once(self, expr: str) -> str:
        """A column holding `expr`, computed in a stage of its own before stage 2.

        For the values several fields (or several branches of one field) read: the model
        a step kind, a model field and a hint all test, the lower-cased value a long
        `CASE x WHEN ...` compares. Written out each time, such an expression is bound and
        optimised once per copy (a `CASE x WHEN` holds x once per branch), which was most
        of the query's fixed cost of planning. Only stage-1 columns may appear in it.
        """
        if expr == "NULL" or (expr.startswith("_s") and expr[2:].isdigit()):
            return expr
        if "step_kind" in expr:
            raise ValueError(f"a shared value cannot depend on the step kind: {expr}")
        return self.shared.setdefault(expr, f"_s{len(self.shared)}")

    # -- stage 2: kind and everything that does not depend on it -----------------------------

    def operation(self) -> str:
        return self.first_of([name for name, _ in cv.KIND_SOURCES])

    def step_kind(self) -> str:
        branches = []
        for name, mapping in cv.KIND_SOURCES:
            value = self.attr(name)
            if value is None:
                continue
            whens = " ".join(f"WHEN {q(v)} THEN {q(kind)}" for v, kind in mapping.items()
                             if kind is not None)
            branches.append(f"CASE {self.once(f'lower({value})')} {whens} END")
        whole = " ".join(f"WHEN {q(n)} THEN {q(k)}" for n, k in cv.NAME_KINDS.items())
        first = " ".join(f"WHEN {q(n)} THEN {q(k)}" for n, k in cv.NAME_FIRST_WORD_KINDS.items())
        lower_name = self.once("lower(name)")
        branches.append(f"CASE {lower_name} {whole} END")
        branches.append(f"CASE {self.once(f'split_part({lower_name}, {q(chr(32))}, 1)')} {first} END")
        agent_hint = self.once(self.first(cv.AGENT_HINT_KEYS))
        model_hint = coalesce([self.request_model(), self.response_model()])
        if agent_hint != "NULL":
            branches.append(f"CASE WHEN {agent_hint} IS NOT NULL AND {model_hint} IS NULL "
                            "THEN 'agent' END")
        if model_hint != "NULL":
            branches.append(f"CASE WHEN {model_hint} IS NOT NULL THEN 'llm' END")
        branches.append("CASE WHEN is_root THEN 'workflow' ELSE 'other' END")
        return coalesce(branches)

    def request_model(self) -> str:
        return self.once(self.first(cv.REQUEST_MODEL))

    def response_model(self) -> str:
        return self.once(self.first(cv.RESPONSE_MODEL))

    def provider(self) -> str:
        raw = self.first(cv.PROVIDER)
        if raw == "NULL":
            return "NULL"
        base = self.once(f"regexp_replace(lower(trim({raw})), {q(cv.PROVIDER_API_SUFFIX)}, '')")
        whens = " ".join(f"WHEN {q(a)} THEN {q(b)}" for a, b in cv.PROVIDER_ALIASES.items())
        return (f"CASE {base} {whens} ELSE regexp_replace({base}, '^az\\.ai\\.', 'azure.ai.') "
                "END")

    def langfuse_usage(self, field: str) -> str | None:
        doc = self.attr(cv.LANGFUSE_USAGE)
        if doc is None:
            return None
        return coalesce(f"CASE WHEN json_valid({doc}) THEN "
                        f"try_cast(try(json_extract_string({doc}, {q('$.' + name)})) AS BIGINT) END"
                        for name in cv.LANGFUSE_USAGE_FIELDS[field])

    def token_fields(self) -> dict[str, str]:
        """Raw token counts (before gating by kind) as named SQL expressions."""
        cached = coalesce([self.number(cv.CACHED_INPUT_TOKENS), self.langfuse_usage("cache_read")])
        write = coalesce([self.number(cv.CACHE_WRITE_TOKENS), self.langfuse_usage("cache_write")])
        cache_sum = f"(coalesce({cached}, 0) + coalesce({write}, 0))"
        lf_disjoint = self.langfuse_usage("input_disjoint")
        no_cache = self.attr(cv.VERCEL_NO_CACHE_TOKENS.name)
        input_raw = coalesce([
            self.number(cv.INPUT_TOKENS),
            self.langfuse_usage("input_inclusive"),
            None if lf_disjoint is None else f"{lf_disjoint} + {cache_sum}",
            None if no_cache is None else f"try_cast({no_cache} AS BIGINT) + {cache_sum}",
        ])
        # Conventions that report input without the cache: Vercel AI SDK v5 on Anthropic
        # (no v6 detail keys), and any span whose cache counts exceed its input (which is
        # impossible when input includes them).
        excludes = [f"{cache_sum} > {input_raw}"]
        provider = self.attr(cv.VERCEL_PROVIDER.name)
        if provider is not None:
            v6 = "FALSE" if no_cache is None else f"{no_cache} IS NOT NULL"
            excludes.append(f"(lower({provider}) LIKE '%anthropic%' AND NOT {v6})")
        input_tokens = (f"CASE WHEN {' OR '.join(excludes)} THEN {input_raw} + {cache_sum} "
                        f"ELSE {input_raw} END") if input_raw != "NULL" else "NULL"
        reasoning = coalesce([self.number(cv.REASONING_TOKENS), self.langfuse_usage("reasoning")])
        output_raw = coalesce([self.number(cv.OUTPUT_TOKENS), self.langfuse_usage("output")])
        output_tokens = (f"CASE WHEN {reasoning} > {output_raw} THEN {output_raw} + {reasoning} "
                         f"ELSE {output_raw} END") if output_raw != "NULL" else "NULL"
        return {"_input_tokens": input_tokens, "_output_tokens": output_tokens,
                "_cached_input_tokens": cached, "_cache_write_tokens": write,
                "_reasoning_tokens": reasoning}

    def ttft_ms(self) -> str:
        parts = [None if (e := self.attr(k.name)) is None else f"try_cast({e} AS DOUBLE) * 1000"
                 for k in cv.TTFT_SECONDS]
        parts += [None if (e := self.attr(k.name)) is None else f"try_cast({e} AS DOUBLE)"
                  for k in cv.TTFT_MILLISECONDS]
        parts.append("CASE WHEN first_token_ns >= start_time_ns "
                     "THEN (first_token_ns - start_time_ns) / 1e6 END")
        start = self.attr(cv.LANGFUSE_COMPLETION_START.name)
        if start is not None:
            parts.append(f"(epoch_ns(try_cast(trim({start}, '\"') AS TIMESTAMPTZ)) "
                         "- start_time_ns) / 1e6")
        return coalesce(parts)

    def finish_reason(self) -> str:
        raw = self.first(cv.FINISH_REASON)
        if raw == "NULL":
            return "NULL"
        norm = self.once(f"replace(lower({raw}), '-', '_')")
        whens = " ".join(f"WHEN {q(a)} THEN {q(b)}" for a, b in cv.FINISH_ALIASES.items())
        return f"CASE {norm} {whens} ELSE {norm} END"

    def reported_cost(self) -> str:
        parts = [self.number(cv.REPORTED_COST, "DOUBLE")]
        details = self.attr(cv.REPORTED_COST[-1].name)
        if details is not None:
            parts.append(f"CASE WHEN json_valid({details}) THEN list_sum(map_values(try(CAST("
                         f"({details})::JSON AS MAP(VARCHAR, DOUBLE))))) END")
        return coalesce(parts)

    def text(self, ks: Sequence[Key]) -> list[str]:
        """Whole-value content: a JSON string literal (Langfuse) is unquoted."""
        out = []
        for k in ks:
            e = self.key(k)
            if e is not None:
                out.append(f"CASE WHEN starts_with({e}, '\"') AND json_valid({e}) "
                           f"THEN coalesce(try(json_extract_string({e}, '$')), {e}) ELSE {e} END")
        return out

    def messages(self, ks: Sequence[Key]) -> list[str]:
        out = []
        for k in ks:
            e = self.attr(k.name)
            if e is not None:
                # Only a JSON array is parsed: `try` on plain text costs an exception per
                # path per span, more than the rest of normalisation together.
                texts = [f"nullif(array_to_string(try(json_extract_string({e}, {q(p)})), "
                         f"{_NEWLINE}), '')" for p in cv.MESSAGE_TEXT_PATHS]
                out.append(f"CASE WHEN {self.once(_is_json(e, '['))} THEN {coalesce([*texts, e])} "
                           f"ELSE {e} END")
        return out

    def event_text(self, patterns: Sequence[str]) -> str | None:
        keys = matching(self.shape.event_keys, patterns) if self.content_events_used() else []
        return self.flat_scan(keys, "event_attr_keys", "_ev") if keys else None

    def content_keys(self) -> list[str]:
        """The batch's content-bearing keys (nulled before redaction, dropped from maps)."""
        return matching(self.shape.attr_keys, cv.CONTENT_KEYS) if self.mode == "drop" else []

    def content(self, side: str) -> str:
        if self.mode == "drop":
            return "NULL"
        if side == "input":
            parts = [*self.messages(cv.INPUT_MESSAGES_JSON), self.flat(cv.INPUT_FLAT),
                     *self.text(cv.INPUT_TEXT), self.event_text(cv.INPUT_EVENT_KEYS)]
        else:
            parts = [*self.messages(cv.OUTPUT_MESSAGES_JSON), self.flat(cv.OUTPUT_FLAT),
                     *self.text(cv.OUTPUT_TEXT), self.event_text(cv.OUTPUT_EVENT_KEYS)]
        return coalesce(parts)

    def http_status(self) -> str:
        explicit = self.number(cv.HTTP_STATUS, "INTEGER")
        rx = q(cv.HTTP_STATUS_IN_MESSAGE)
        from_text = [f"try_cast(nullif(regexp_extract({col}, {rx}, 1), '') AS INTEGER)"
                     for col in ("status_message", "exception_message")]
        error_class = f"regexp_extract({coalesce([self.attr('error.type'), 'exception_type'])}, " \
                      "'([A-Za-z]+Error)$', 1)"
        whens = " ".join(f"WHEN {q(c)} THEN {n}"
                         for c, n in cv.HTTP_STATUS_OF_ERROR_CLASS.items())
        inferred = coalesce([*from_text, f"CASE {error_class} {whens} END"])
        failed = f"(status_code = 2 OR {coalesce([self.attr('error.type'), 'exception_type'])} " \
                 "IS NOT NULL)"
        return coalesce([explicit, f"CASE WHEN {failed} THEN {inferred} END"])

    def error_message(self) -> str:
        parts = ["_xm", "CASE WHEN status_code = 2 THEN _sm END"]
        level = self.attr(cv.LANGFUSE_LEVEL.name)
        message = self.attr(cv.LANGFUSE_STATUS_MESSAGE.name)
        if level is not None and message is not None:
            parts.append(f"CASE WHEN upper({level}) = 'ERROR' THEN {message} END")
        return coalesce(parts)

    def stage2_fields(self) -> dict[str, str]:
        fields = {
            "step_kind": self.step_kind(),
            "operation": self.operation(),
            "request_model": self.request_model(),
            "response_model": self.response_model(),
            "provider": self.provider(),
            "ttft_ms": self.ttft_ms(),
            "finish_reason": self.finish_reason(),
            "_reported_cost_usd": self.reported_cost(),
            "tool_call_id": self.first(cv.TOOL_CALL_ID),
            "session_id": self.first(cv.SESSION_ID),
            "user_id": self.first(cv.USER_ID),
            "prompt_name": self.first_of(self.config.prompt.name_attributes),
            "prompt_version": self.first_of(self.config.prompt.version_attributes),
            "error_type": coalesce([self.first(cv.ERROR_TYPE), "exception_type"]),
            "error_message": self.error_message(),
            "http_status": self.http_status(),
            "service_name": coalesce(self.res(k.name) for k in cv.SERVICE_NAME),
            "service_version": coalesce(self.res(k.name) for k in cv.SERVICE_VERSION),
            "environment": coalesce([*(self.res(k.name) for k in cv.ENVIRONMENT),
                                     self.first(cv.SPAN_ENVIRONMENT)]),
            "input_content": self.content("input"),
            "output_content": self.content("output"),
            **self.token_fields(),
        }
        return fields

    # -- stage 3: kind-dependent and trace-level fields ------------------------------------

    def root_fields(self) -> dict[str, str]:
        wf = self.config.workflow
        workflow = coalesce([*(self.attr(k) for k in wf.attributes),
                             "name" if wf.fallback_to_root_name else None])
        oc = self.config.outcome
        value = self.attr(oc.attribute)
        status_outcome = "CASE WHEN status_code = 2 THEN 'failed' ELSE 'completed' END"
        if value is None:
            outcome, source = status_outcome, "'status'"
        else:
            norm = f"lower(trim({value}))"
            whens = " ".join(
                f"WHEN {norm} IN ({', '.join(q(v.lower()) for v in values)}) THEN {q(name)}"
                for name, values in (("completed", oc.completed), ("escalated", oc.escalated),
                                     ("failed", oc.failed)) if values
            )
            outcome = f"CASE WHEN {value} IS NULL THEN {status_outcome} {whens} ELSE 'unknown' END"
            source = f"CASE WHEN {value} IS NULL THEN 'status' ELSE 'attribute' END"
        tenant = coalesce([*(self.attr(k) for k in self.config.tenant.attributes),
                           *(self.res(k) for k in self.config.tenant.attributes)])
        return {"workflow": workflow, "outcome": outcome, "outcome_source": source,
                "tenant_id": tenant}

    def final_columns(self, ingested_at: str) -> dict[str, str]:
        """Every steps column (in schema order) plus the attribute lists for the maps."""
        model_call = f"step_kind IN ({', '.join(q(k) for k in MODEL_CALL_KINDS)})"
        aggregate = f"step_kind IN ({', '.join(q(k) for k in AGGREGATE_KINDS)})"
        root = {name: f"CASE WHEN is_root THEN {expr} END"
                for name, expr in self.root_fields().items()}
        cols = {
            "trace_id": "trace_id",
            "span_id": "span_id",
            "parent_span_id": "parent_span_id",
            "is_root": "is_root",
            "start_time_ns": "start_time_ns",
            "end_time_ns": "end_time_ns",
            "start_time": "make_timestamp(start_time_ns // 1000)",
            "duration_ms": "(end_time_ns - start_time_ns) / 1e6",
            "name": "name",
            "span_kind": _SPAN_KINDS,
            "step_kind": "step_kind",
            "operation": "operation",
            "status_code": _STATUS,
            "status_message": "_sm",
            "error_type": "error_type",
            "error_message": "error_message",
            "http_status": "http_status",
            "service_name": "service_name",
            "service_version": "service_version",
            "environment": "environment",
            "scope_name": "scope_name",
            "scope_version": "scope_version",
            "request_model": "request_model",
            "response_model": "response_model",
            "provider": "provider",
            **{name: f"CASE WHEN {model_call} THEN _{name} END" for name in (
                "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                "reasoning_tokens")},
            "ttft_ms": "ttft_ms",
            "finish_reason": "finish_reason",
            "reported_cost_usd": f"CASE WHEN NOT ({aggregate}) THEN _reported_cost_usd END",
            "tool_name": self.first(cv.TOOL_NAME),
            "tool_call_id": "tool_call_id",
            "agent_name": self.first(cv.AGENT_NAME),
            "prompt_name": "prompt_name",
            "prompt_version": "prompt_version",
            **root,
            "session_id": "session_id",
            "user_id": "user_id",
            "input_content": "input_content",
            # An embedding call answers with vectors, not text.
            "output_content": "CASE WHEN step_kind <> 'embedding' THEN output_content END",
            "source_file": "source_file",
            "source_batch": "source_batch",
            "ingested_at": f"TIMESTAMP {q(ingested_at)}",
        }
        return cols

    def query(self, source: str, ingested_at: str) -> str:
        ids = ("SELECT * REPLACE (CASE WHEN parent_span_id = '' OR parent_span_id = "
               "'0000000000000000' THEN NULL ELSE parent_span_id END AS parent_span_id), "
               f"(parent_span_id IS NULL OR parent_span_id IN ('', '0000000000000000')) AS is_root "
               f"FROM {source}")
        s1 = self.stage1(f"({ids})")
        s2 = ", ".join(f"{expr} AS {name}" for name, expr in self.stage2_fields().items())
        final = ", ".join(f"{expr} AS {name}"
                          for name, expr in self.final_columns(ingested_at).items())
        if self.shared:
            shared = ", ".join(f"{expr} AS {name}" for expr, name in self.shared.items())
            s1 = f"SELECT *, {shared} FROM ({s1})"
        return f"SELECT {final} FROM (SELECT *, {s2} FROM ({s1}))"
