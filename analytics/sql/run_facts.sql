-- One row per run (trace), merged from the per-segment run_parts, root_rows and
-- cost_parts (of the touched runs only, when updating).
--
-- A trace without a root row is still running: outcome `running`, no latency, and the
-- KPIs leave it out of every rate. The user comes from the root span, else from any
-- step. Tokens are of chat/completion calls (embeddings apart); cost_usd is of every
-- model call that could be priced, NULL when none could.
WITH steps_merged AS (
    SELECT
        rp.trace_id,
        max(rp.has_root) = 1 AS finished,
        min(rp.first_start) AS first_start,
        min(rp.any_user_id) AS any_user_id,
        CAST(sum(rp.steps) AS BIGINT) AS steps,
        CAST(sum(rp.tool_calls) AS BIGINT) AS tool_calls,
        CAST(sum(rp.tool_errors) AS BIGINT) AS tool_errors,
        CAST(sum(rp.error_steps) AS BIGINT) AS error_steps
    FROM run_parts rp
    WHERE {{touched}}
    GROUP BY rp.trace_id
),
-- A trace should have one root span; when a broken context propagation gave it several,
-- the earliest one is the run (merged the same way whichever segments hold them).
several_roots AS (
    SELECT rr.trace_id
    FROM root_rows rr
    WHERE {{touched}}
    GROUP BY rr.trace_id
    HAVING count(*) > 1
),
roots AS (
    SELECT rr.trace_id, rr.start_time, rr.duration_ms, rr.workflow, rr.outcome, rr.tenant_id,
           rr.user_id, rr.session_id, rr.service_name, rr.service_version, rr.environment
    FROM root_rows rr
    WHERE {{touched}} AND rr.trace_id NOT IN (SELECT trace_id FROM several_roots)
    UNION ALL
    SELECT rr.trace_id, rr.start_time, rr.duration_ms, rr.workflow, rr.outcome, rr.tenant_id,
           rr.user_id, rr.session_id, rr.service_name, rr.service_version, rr.environment
    FROM root_rows rr
    JOIN (
        SELECT r2.trace_id, min(CAST(r2.start_time AS VARCHAR) || '/' || r2.span_id) AS first_root
        FROM root_rows r2
        WHERE r2.trace_id IN (SELECT trace_id FROM several_roots)
        GROUP BY r2.trace_id
    ) f ON f.trace_id = rr.trace_id AND f.first_root = CAST(rr.start_time AS VARCHAR) || '/' || rr.span_id
),
calls AS (
    SELECT
        cp.trace_id,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.calls ELSE 0 END) AS BIGINT) AS llm_calls,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.errors ELSE 0 END) AS BIGINT) AS llm_errors,
        CAST(sum(CASE WHEN cp.step_kind = 'embedding' THEN cp.calls ELSE 0 END) AS BIGINT) AS embedding_calls,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.input_tokens ELSE 0 END) AS BIGINT) AS input_tokens,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.output_tokens ELSE 0 END) AS BIGINT) AS output_tokens,
        CAST(sum(CASE WHEN cp.step_kind = 'llm' THEN cp.cached_input_tokens ELSE 0 END) AS BIGINT) AS cached_input_tokens,
        sum(cp.cost_usd) AS cost_usd,
        CAST(sum(cp.priced_calls) AS BIGINT) AS priced_calls,
        CAST(sum(cp.unpriced_calls) AS BIGINT) AS unpriced_calls,
        sum(cp.reported_cost_usd) AS reported_cost_usd
    FROM cost_parts cp
    WHERE {{touched}}
    GROUP BY cp.trace_id
)
SELECT
    sm.trace_id,
    sm.finished,
    coalesce(ro.start_time, sm.first_start) AS run_start,
    ro.workflow,
    CASE WHEN sm.finished THEN coalesce(ro.outcome, 'unknown') ELSE 'running' END AS outcome,
    ro.tenant_id,
    coalesce(ro.user_id, sm.any_user_id) AS user_id,
    ro.session_id,
    ro.service_name,
    ro.service_version,
    ro.environment,
    ro.duration_ms AS latency_ms,
    sm.steps,
    coalesce(ca.llm_calls, 0) AS llm_calls,
    coalesce(ca.llm_errors, 0) AS llm_errors,
    coalesce(ca.embedding_calls, 0) AS embedding_calls,
    sm.tool_calls,
    sm.tool_errors,
    sm.error_steps,
    coalesce(ca.input_tokens, 0) AS input_tokens,
    coalesce(ca.output_tokens, 0) AS output_tokens,
    coalesce(ca.cached_input_tokens, 0) AS cached_input_tokens,
    ca.cost_usd,
    coalesce(ca.priced_calls, 0) AS priced_calls,
    coalesce(ca.unpriced_calls, 0) AS unpriced_calls,
    ca.reported_cost_usd
FROM steps_merged sm
LEFT JOIN roots ro ON ro.trace_id = sm.trace_id
LEFT JOIN calls ca ON ca.trace_id = sm.trace_id
