-- One row per run (trace), from the per-segment run_parts: a run held in one segment is
-- its part; a run split over segments (split_runs) sums its parts and takes its root
-- facts from the part with the earliest root span.
--
-- A trace without a root row is still running: outcome `running`, no latency, and the
-- KPIs leave it out of every rate. The user comes from the root span, else from any
-- step. Tokens are of chat/completion calls (embeddings apart); cost_usd is of every
-- model call that could be priced, NULL when none could.
WITH whole AS (
    SELECT rp.*
    FROM run_parts rp
    WHERE {{touched}} AND rp.trace_id NOT IN (SELECT trace_id FROM split_runs)
),
pieces AS (
    SELECT rp.*
    FROM run_parts rp
    WHERE rp.trace_id IN (SELECT trace_id FROM split_runs)
),
first_root AS (
    SELECT *
    FROM (
        SELECT pc.*,
               row_number() OVER (PARTITION BY pc.trace_id
                                  ORDER BY pc.root_start NULLS LAST, pc.root_span_id) AS rank_
        FROM pieces pc
    ) ranked
    WHERE ranked.rank_ = 1
),
sums AS (
    SELECT
        pc.trace_id,
        max(pc.has_root) AS has_root,
        min(pc.first_start) AS first_start,
        min(pc.any_user_id) AS any_user_id,
        CAST(sum(pc.steps) AS BIGINT) AS steps,
        CAST(sum(pc.llm_calls) AS BIGINT) AS llm_calls,
        CAST(sum(pc.llm_errors) AS BIGINT) AS llm_errors,
        CAST(sum(pc.embedding_calls) AS BIGINT) AS embedding_calls,
        CAST(sum(pc.tool_calls) AS BIGINT) AS tool_calls,
        CAST(sum(pc.tool_errors) AS BIGINT) AS tool_errors,
        CAST(sum(pc.error_steps) AS BIGINT) AS error_steps,
        CAST(sum(pc.input_tokens) AS BIGINT) AS input_tokens,
        CAST(sum(pc.output_tokens) AS BIGINT) AS output_tokens,
        CAST(sum(pc.cached_input_tokens) AS BIGINT) AS cached_input_tokens,
        sum(pc.cost_usd) AS cost_usd,
        CAST(sum(pc.priced_calls) AS BIGINT) AS priced_calls,
        CAST(sum(pc.unpriced_calls) AS BIGINT) AS unpriced_calls,
        sum(pc.reported_cost_usd) AS reported_cost_usd
    FROM pieces pc
    GROUP BY pc.trace_id
),
merged AS (
    SELECT
        w.trace_id, w.has_root, w.root_start, w.first_start, w.workflow, w.outcome, w.tenant_id,
        w.root_user_id, w.any_user_id, w.session_id, w.service_name, w.service_version,
        w.environment, w.latency_ms, w.steps, w.llm_calls, w.llm_errors, w.embedding_calls,
        w.tool_calls, w.tool_errors, w.error_steps, w.input_tokens, w.output_tokens,
        w.cached_input_tokens, w.cost_usd, w.priced_calls, w.unpriced_calls, w.reported_cost_usd
    FROM whole w
    UNION ALL
    SELECT
        su.trace_id, su.has_root, fr.root_start, su.first_start, fr.workflow, fr.outcome,
        fr.tenant_id, fr.root_user_id, su.any_user_id, fr.session_id, fr.service_name,
        fr.service_version, fr.environment, fr.latency_ms, su.steps, su.llm_calls,
        su.llm_errors, su.embedding_calls, su.tool_calls, su.tool_errors, su.error_steps,
        su.input_tokens, su.output_tokens, su.cached_input_tokens, su.cost_usd,
        su.priced_calls, su.unpriced_calls, su.reported_cost_usd
    FROM sums su
    JOIN first_root fr ON fr.trace_id = su.trace_id
)
SELECT
    m.trace_id,
    m.has_root = 1 AS finished,
    coalesce(m.root_start, m.first_start) AS run_start,
    m.workflow,
    CASE WHEN m.has_root = 1 THEN coalesce(m.outcome, 'unknown') ELSE 'running' END AS outcome,
    m.tenant_id,
    coalesce(m.root_user_id, m.any_user_id) AS user_id,
    m.session_id,
    m.service_name,
    m.service_version,
    m.environment,
    m.latency_ms,
    m.steps,
    m.llm_calls,
    m.llm_errors,
    m.embedding_calls,
    m.tool_calls,
    m.tool_errors,
    m.error_steps,
    m.input_tokens,
    m.output_tokens,
    m.cached_input_tokens,
    m.cost_usd,
    m.priced_calls,
    m.unpriced_calls,
    m.reported_cost_usd
FROM merged m
