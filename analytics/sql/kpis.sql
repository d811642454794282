-- The run KPIs of stepscope.analytics.kpis.KPI_KEYS, per group of runs.
--
-- Counts and sums (runs, llm_calls, tool_calls, tokens, cost_usd, unpriced_llm_calls)
-- cover every run of the group; runs still running (no root span yet) are left out of
-- every rate and ratio. Rates without a denominator are NULL. Percentiles interpolate
-- linearly between order statistics (quantile_cont, as numpy's default). cost_usd is the
-- priced part; it is NULL only when the group has model calls and none could be priced.
WITH g AS (
    SELECT
        {{group_select}}
        count(*) AS runs,
        sum(CASE WHEN r.finished THEN 1 ELSE 0 END) AS finished,
        sum(CASE WHEN r.outcome = 'completed' THEN 1 ELSE 0 END) AS completed,
        sum(CASE WHEN r.outcome = 'escalated' THEN 1 ELSE 0 END) AS escalated,
        sum(CASE WHEN r.outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
        quantile_cont(r.latency_ms, 0.5) AS latency_p50_ms,
        quantile_cont(r.latency_ms, 0.95) AS latency_p95_ms,
        quantile_cont(r.latency_ms, 0.99) AS latency_p99_ms,
        sum(r.llm_calls) AS llm_calls,
        sum(CASE WHEN r.finished THEN r.llm_calls ELSE 0 END) AS finished_llm_calls,
        sum(CASE WHEN r.finished THEN r.llm_errors ELSE 0 END) AS finished_llm_errors,
        sum(r.tool_calls) AS tool_calls,
        sum(CASE WHEN r.finished THEN r.tool_calls ELSE 0 END) AS finished_tool_calls,
        sum(CASE WHEN r.finished THEN r.tool_errors ELSE 0 END) AS finished_tool_errors,
        sum(r.input_tokens) AS input_tokens,
        sum(r.output_tokens) AS output_tokens,
        sum(r.cached_input_tokens) AS cached_input_tokens,
        sum(CASE WHEN r.finished THEN r.input_tokens + r.output_tokens ELSE 0 END)
            AS finished_tokens,
        sum(r.cost_usd) AS priced_cost_usd,
        sum(r.priced_calls) AS priced_calls,
        sum(r.unpriced_calls) AS unpriced_llm_calls,
        sum(CASE WHEN r.finished THEN r.cost_usd END) AS finished_cost_usd,
        sum(CASE WHEN r.finished THEN r.priced_calls ELSE 0 END) AS finished_priced_calls,
        sum(CASE WHEN r.finished THEN r.unpriced_calls ELSE 0 END) AS finished_unpriced_calls
    FROM run_facts r
    {{model_join}}
    WHERE {{where}}
    {{group_by}}
),
c AS (
    SELECT
        g.*,
        CASE WHEN g.priced_calls = 0 AND g.unpriced_llm_calls > 0 THEN NULL
             ELSE coalesce(g.priced_cost_usd, 0) END AS cost_usd,
        CASE WHEN g.finished_priced_calls = 0 AND g.finished_unpriced_calls > 0 THEN NULL
             ELSE coalesce(g.finished_cost_usd, 0) END AS finished_cost
    FROM g
)
SELECT
    {{group_names}}
    c.runs,
    c.completed,
    c.escalated,
    c.failed,
    CAST(c.completed AS DOUBLE) / nullif(c.finished, 0) AS completion_rate,
    CAST(c.escalated AS DOUBLE) / nullif(c.finished, 0) AS escalation_rate,
    c.latency_p50_ms,
    c.latency_p95_ms,
    c.latency_p99_ms,
    c.llm_calls,
    CAST(c.finished_llm_errors AS DOUBLE) / nullif(c.finished_llm_calls, 0) AS llm_error_rate,
    c.tool_calls,
    CAST(c.finished_tool_calls - c.finished_tool_errors AS DOUBLE)
        / nullif(c.finished_tool_calls, 0) AS tool_success_rate,
    c.input_tokens,
    c.output_tokens,
    c.cached_input_tokens,
    CAST(c.finished_tokens AS DOUBLE) / nullif(c.completed, 0) AS tokens_per_completed_task,
    c.cost_usd,
    c.finished_cost / nullif(c.finished, 0) AS cost_per_run_usd,
    c.finished_cost / nullif(c.completed, 0) AS cost_per_completed_task_usd,
    c.unpriced_llm_calls
FROM c
{{order_by}}
