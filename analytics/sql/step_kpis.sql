-- Step-level figures per model (chat and embedding calls apart) or per tool, over the
-- steps of the selected runs: calls, error rate, latency and time to first token of
-- streamed calls (percentiles by linear interpolation), tokens and cost, with the
-- cost the spans reported themselves beside ours where they did. `steps` is
-- priced_steps.sql, or unpriced_steps.sql for tool steps; the runs are joined only when
-- a filter or group key needs them.
SELECT
    {{group_select}}
    count(*) AS calls,
    CAST(sum(CASE WHEN ps.status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE)
        / nullif(count(*), 0) AS error_rate,
    quantile_cont(ps.duration_ms, 0.5) AS latency_p50_ms,
    quantile_cont(ps.duration_ms, 0.95) AS latency_p95_ms,
    sum(CASE WHEN ps.ttft_ms IS NOT NULL THEN 1 ELSE 0 END) AS streamed_calls,
    quantile_cont(ps.ttft_ms, 0.5) AS ttft_p50_ms,
    quantile_cont(ps.ttft_ms, 0.95) AS ttft_p95_ms,
    sum(ps.input_tokens) AS input_tokens,
    sum(ps.output_tokens) AS output_tokens,
    sum(ps.cached_input_tokens) AS cached_input_tokens,
    CASE WHEN sum(CASE WHEN ps.cost_usd IS NOT NULL THEN 1 ELSE 0 END) = 0
              AND sum(CASE WHEN ps.unpriced THEN 1 ELSE 0 END) > 0 THEN NULL
         WHEN sum(CASE WHEN ps.step_kind IN ('llm', 'embedding') THEN 1 ELSE 0 END) = 0 THEN NULL
         ELSE coalesce(sum(ps.cost_usd), 0) END AS cost_usd,
    sum(CASE WHEN ps.unpriced THEN 1 ELSE 0 END) AS unpriced_calls,
    sum(ps.reported_cost_usd) AS reported_cost_usd,
    sum(ps.reported_cost_usd)
        - sum(CASE WHEN ps.reported_cost_usd IS NOT NULL THEN ps.cost_usd END)
        AS reported_minus_ours_usd,
    string_agg(DISTINCT ps.price_source, '; ' ORDER BY ps.price_source) AS price_sources
FROM {{steps}} ps
{{run_join}}
WHERE {{step_filter}} AND {{where}}
{{group_by}}
{{order_by}}
