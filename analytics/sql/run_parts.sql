-- Per store segment and run (trace): everything the run table needs from the segment's
-- steps, so that a run held in one segment (almost every run) needs no merge at all.
-- Step counts are sums; the root span's facts (workflow, outcome, tenant, session,
-- service, latency: the steps contract writes them on the root only) come from the
-- segment's earliest root span of the trace; model calls are summed from the segment's
-- cost_parts, which are computed first.
WITH counts AS (
    SELECT
        s.trace_id,
        max(CASE WHEN s.is_root THEN 1 ELSE 0 END) AS has_root,
        min(s.start_time) AS first_start,
        min(s.user_id) AS any_user_id,
        count(*) AS steps,
        CAST(sum(CASE WHEN s.step_kind = 'tool' THEN 1 ELSE 0 END) AS BIGINT) AS tool_calls,
        CAST(sum(CASE WHEN s.step_kind = 'tool' AND s.status_code = 'error' THEN 1 ELSE 0 END)
             AS BIGINT) AS tool_errors,
        CAST(sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS error_steps
    FROM {{step_source}} s
    WHERE {{where}}
    GROUP BY s.trace_id
),
roots AS (
    SELECT
        s.trace_id,
        s.span_id AS root_span_id,
        s.start_time AS root_start,
        s.duration_ms AS latency_ms,
        s.workflow,
        s.outcome,
        s.tenant_id,
        s.user_id AS root_user_id,
        s.session_id,
        s.service_name,
        s.service_version,
        s.environment,
        row_number() OVER (PARTITION BY s.trace_id ORDER BY s.start_time, s.span_id) AS root_rank
    FROM {{step_source}} s
    WHERE s.is_root AND {{where}}
),
calls AS (
    SELECT
        cp.trace_id,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.calls ELSE 0 END) AS BIGINT) AS llm_calls,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.errors ELSE 0 END) AS BIGINT) AS llm_errors,
        CAST(sum(CASE WHEN cp.step_kind = 'embedding' THEN cp.calls ELSE 0 END) AS BIGINT)
            AS embedding_calls,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.input_tokens ELSE 0 END) AS BIGINT)
            AS input_tokens,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.output_tokens ELSE 0 END) AS BIGINT)
            AS output_tokens,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.cached_input_tokens ELSE 0 END) AS BIGINT)
            AS cached_input_tokens,
        sum(cp.cost_usd) AS cost_usd,
        CAST(sum(cp.priced_calls) AS BIGINT) AS priced_calls,
        CAST(sum(cp.unpriced_calls) AS BIGINT) AS unpriced_calls,
        sum(cp.reported_cost_usd) AS reported_cost_usd
    FROM cost_parts cp
    WHERE cp.segment = {{segment}}
    GROUP BY cp.trace_id
)
SELECT
    CAST({{segment}} AS INTEGER) AS segment,
    c.trace_id,
    c.has_root,
    ro.root_span_id,
    ro.root_start,
    c.first_start,
    ro.workflow,
    ro.outcome,
    ro.tenant_id,
    ro.root_user_id,
    c.any_user_id,
    ro.session_id,
    ro.service_name,
    ro.service_version,
    ro.environment,
    ro.latency_ms,
    c.steps,
    coalesce(ca.llm_calls, 0) AS llm_calls,
    coalesce(ca.llm_errors, 0) AS llm_errors,
    coalesce(ca.embedding_calls, 0) AS embedding_calls,
    c.tool_calls,
    c.tool_errors,
    c.error_steps,
    coalesce(ca.input_tokens, 0) AS input_tokens,
    coalesce(ca.output_tokens, 0) AS output_tokens,
    coalesce(ca.cached_input_tokens, 0) AS cached_input_tokens,
    ca.cost_usd,
    coalesce(ca.priced_calls, 0) AS priced_calls,
    coalesce(ca.unpriced_calls, 0) AS unpriced_calls,
    ca.reported_cost_usd
FROM counts c
LEFT JOIN roots ro ON ro.trace_id = c.trace_id AND ro.root_rank = 1
LEFT JOIN calls ca ON ca.trace_id = c.trace_id
