-- Per store segment, run, step kind and price row: the model calls with their tokens and
-- cost, as sums that merge over segments. The price row names model, provider and source.
SELECT
    CAST({{segment}} AS INTEGER) AS segment,
    ps.trace_id,
    ps.step_kind,
    ps.price_id,
    count(*) AS calls,
    CAST(sum(CASE WHEN ps.status_code = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors,
    CAST(sum(coalesce(ps.input_tokens, 0)) AS BIGINT) AS input_tokens,
    CAST(sum(coalesce(ps.output_tokens, 0)) AS BIGINT) AS output_tokens,
    CAST(sum(coalesce(ps.cached_input_tokens, 0)) AS BIGINT) AS cached_input_tokens,
    CAST(sum(coalesce(ps.cache_write_tokens, 0)) AS BIGINT) AS cache_write_tokens,
    sum(ps.cost_usd) AS cost_usd,
    CAST(sum(CASE WHEN ps.cost_usd IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS priced_calls,
    CAST(sum(CASE WHEN ps.unpriced THEN 1 ELSE 0 END) AS BIGINT) AS unpriced_calls,
    sum(ps.reported_cost_usd) AS reported_cost_usd,
    sum(CASE WHEN ps.reported_cost_usd IS NOT NULL THEN ps.cost_usd END) AS cost_usd_where_reported
FROM {{priced_steps}} ps
WHERE ps.step_kind IN ('llm', 'embedding') AND {{where}}
GROUP BY ps.trace_id, ps.step_kind, ps.price_id
