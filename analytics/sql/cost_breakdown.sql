-- Spend per time bucket and keys (model, provider, workflow, tenant, ...) over the selected
-- runs, with tokens, unpriced calls, the price sources behind the figure, and the cost
-- the spans reported themselves beside ours where they did. Calls are bucketed by the
-- start of their run, as every KPI is. Equal costs in a bucket come in key order.
SELECT
    {{bucket}} AS bucket_start,
    {{keys_select}}
    sum(CASE WHEN c.step_kind = 'llm' THEN c.calls ELSE 0 END) AS llm_calls,
    sum(CASE WHEN c.step_kind = 'embedding' THEN c.calls ELSE 0 END) AS embedding_calls,
    sum(c.input_tokens) AS input_tokens,
    sum(c.cached_input_tokens) AS cached_input_tokens,
    sum(c.cache_write_tokens) AS cache_write_tokens,
    sum(c.output_tokens) AS output_tokens,
    CASE WHEN sum(c.priced_calls) = 0 AND sum(c.unpriced_calls) > 0 THEN NULL
         ELSE coalesce(sum(c.cost_usd), 0) END AS cost_usd,
    sum(c.unpriced_calls) AS unpriced_calls,
    sum(c.reported_cost_usd) AS reported_cost_usd,
    sum(c.reported_cost_usd) - sum(c.cost_usd_where_reported) AS reported_minus_ours_usd,
    string_agg(DISTINCT c.price_source, '; ' ORDER BY c.price_source) AS price_sources
FROM run_model_costs c
JOIN run_facts r ON r.trace_id = c.trace_id
WHERE {{where}}
GROUP BY {{bucket}}{{keys_group}}
ORDER BY bucket_start, cost_usd DESC NULLS LAST{{keys_group}}
